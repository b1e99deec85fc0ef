//! Response bodies of the front door: whole (the common case, one buffer from JS) or streamed
//! chunk by chunk from a JS `ReadableStream`, with a bound on what waits to be sent.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Past this many unsent bytes JS is asked to wait for a drain before writing more.
const HIGH_WATER: usize = 1 << 20;
/// The drain is reported once the backlog falls to this.
const LOW_WATER: usize = 256 << 10;

pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(Reader),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(reader) => reader.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

struct Backlog {
    bytes: AtomicUsize,
    /// JS was told to wait; the next fall below the low-water mark reports a drain.
    waiting: AtomicBool,
}

/// JS's end of a streamed body.
pub struct Writer {
    tx: mpsc::UnboundedSender<io::Result<Bytes>>,
    backlog: Arc<Backlog>,
}

/// hyper's end: it polls the chunks out as the client takes them.
pub struct Reader {
    rx: mpsc::UnboundedReceiver<io::Result<Bytes>>,
    backlog: Arc<Backlog>,
    on_drain: Box<dyn Fn() + Send + Sync>,
    /// Called when hyper drops the body before its end: the client went away.
    on_abandon: Option<Box<dyn FnOnce() + Send + Sync>>,
}

pub fn channel(
    on_drain: Box<dyn Fn() + Send + Sync>,
    on_abandon: Box<dyn FnOnce() + Send + Sync>,
) -> (Writer, Reader) {
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(Backlog {
        bytes: AtomicUsize::new(0),
        waiting: AtomicBool::new(false),
    });
    let writer = Writer {
        tx,
        backlog: backlog.clone(),
    };
    let reader = Reader {
        rx,
        backlog,
        on_drain,
        on_abandon: Some(on_abandon),
    };
    (writer, reader)
}

impl Writer {
    /// Queues a chunk; false when JS should wait for the drain before writing more.
    pub fn write(&self, chunk: Bytes) -> bool {
        let len = chunk.len();
        let total = self.backlog.bytes.fetch_add(len, Ordering::SeqCst) + len;
        let _ = self.tx.send(Ok(chunk));
        if total <= HIGH_WATER {
            return true;
        }
        self.backlog.waiting.store(true, Ordering::SeqCst);
        // The reader may have emptied the queue before `waiting` was set, and then reports no
        // drain: look again, and take the wait back if so.
        self.backlog.bytes.load(Ordering::SeqCst) <= LOW_WATER
            && self.backlog.waiting.swap(false, Ordering::SeqCst)
    }

    /// Ends the body with an error: hyper cuts the connection rather than pass a truncated body
    /// off as whole.
    pub fn abort(self, message: &str) {
        let _ = self.tx.send(Err(io::Error::other(message.to_owned())));
    }
}

impl Reader {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let left =
                    self.backlog.bytes.fetch_sub(chunk.len(), Ordering::SeqCst) - chunk.len();
                if left <= LOW_WATER && self.backlog.waiting.swap(false, Ordering::SeqCst) {
                    (self.on_drain)();
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.on_abandon = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.on_abandon = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(abandon) = self.on_abandon.take() {
            abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn counted() -> (Arc<AtomicU32>, Box<dyn Fn() + Send + Sync>) {
        let count = Arc::new(AtomicU32::new(0));
        let inner = count.clone();
        (
            count,
            Box::new(move || {
                inner.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    #[tokio::test]
    async fn a_writer_past_the_high_water_mark_waits_for_one_drain() {
        let (drains, on_drain) = counted();
        let (writer, reader) = channel(on_drain, Box::new(|| {}));
        let mut body = ResponseBody::Stream(reader);
        let chunk = Bytes::from(vec![0u8; 512 << 10]);
        assert!(writer.write(chunk.clone()));
        assert!(writer.write(chunk.clone()));
        assert!(
            !writer.write(chunk.clone()),
            "1.5 MiB waiting is past the mark"
        );
        for _ in 0..3 {
            let frame = http_body_util::BodyExt::frame(&mut body)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(frame.into_data().unwrap().len(), 512 << 10);
        }
        assert_eq!(drains.load(Ordering::SeqCst), 1);
        drop(writer);
        assert!(http_body_util::BodyExt::frame(&mut body).await.is_none());
    }

    #[test]
    fn a_body_dropped_before_its_end_reports_the_client_gone() {
        let (gone, on_gone) = counted();
        let (_writer, reader) = channel(Box::new(|| {}), on_gone);
        drop(reader);
        assert_eq!(gone.load(Ordering::SeqCst), 1);
    }
}
