//! Network WebSocket connections, each served by two tokio tasks (reader and writer) on the
//! core's own runtime thread. Node's HTTP server parses the upgrade request; the core takes over
//! the TCP socket (a duplicate of its descriptor), writes the 101 response and speaks the
//! protocol from there: pings are answered here, oversized messages close the connection with
//! 1009, a peer that stops reading is disconnected once its backlog passes a bound.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::{Hub, Inbound};

/// Cloudflare's limit on an incoming message (spec 246).
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;
/// A peer whose unsent backlog passes this is not reading; it is disconnected.
pub const MAX_BACKLOG_BYTES: usize = 64 << 20;
/// Small, because idle connections are the common case; it grows for large messages.
const READ_BUFFER_BYTES: usize = 4096;

const NO_CLOSE_FRAME: &str = "WebSocket disconnected without sending Close frame.";

pub enum Outbound {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, String),
}

impl Outbound {
    fn len(&self) -> usize {
        match self {
            Outbound::Text(t) => t.len(),
            Outbound::Binary(b) => b.len(),
            Outbound::Close(_, r) => r.len(),
        }
    }
}

/// The hub's handle on a connection: a queue to its writer.
pub struct Link {
    tx: mpsc::UnboundedSender<Outbound>,
    backlog: Arc<AtomicUsize>,
    reader: AbortHandle,
}

impl Link {
    /// Queues a message; false when the peer has stopped reading (the link is then cut).
    pub fn send(&self, message: Outbound) -> bool {
        let len = message.len();
        if self.backlog.fetch_add(len, Ordering::AcqRel) + len > MAX_BACKLOG_BYTES {
            self.cut();
            return false;
        }
        self.tx.send(message).is_ok()
    }

    /// Sends a Close frame; the reader goes on until the peer answers or hangs up.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.tx.send(Outbound::Close(code, reason.to_owned()));
    }

    /// Drops the connection without a Close frame.
    pub fn cut(&self) {
        self.reader.abort();
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("durable-node-ws")
            .enable_io()
            .build()
            .expect("durable-node: could not start the WebSocket thread")
    })
}

pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Takes over the TCP connection `fd` (duplicated; the caller closes its own descriptor): writes
/// `response` (the 101 head), then serves socket `id`, whose first bytes `head` were already read.
pub fn attach(
    hub: &Arc<Hub>,
    id: u32,
    fd: RawFd,
    head: Vec<u8>,
    response: Vec<u8>,
) -> std::io::Result<Link> {
    // SAFETY: the caller passes the descriptor of a live socket it keeps open during this call.
    let owned = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
    let stream = std::net::TcpStream::from(owned);
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    let runtime = runtime();
    let stream = {
        let _entered = runtime.enter();
        tokio::net::TcpStream::from_std(stream)?
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    let reader = runtime.spawn(serve(
        hub.clone(),
        id,
        stream,
        head,
        response,
        rx,
        backlog.clone(),
    ));
    Ok(Link {
        tx,
        backlog,
        reader: reader.abort_handle(),
    })
}

async fn serve(
    hub: Arc<Hub>,
    id: u32,
    mut stream: tokio::net::TcpStream,
    head: Vec<u8>,
    response: Vec<u8>,
    rx: mpsc::UnboundedReceiver<Outbound>,
    backlog: Arc<AtomicUsize>,
) {
    if stream.write_all(&response).await.is_err() {
        hub.push(id, disconnected());
        return;
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let ws = WebSocketStream::from_partially_read(stream, head, Role::Server, Some(config)).await;
    let (sink, mut frames) = ws.split();
    let writer = tokio::spawn(write(sink, rx, backlog));
    // Aborting this task (a peer that stopped reading) drops the connection with it.
    let _writer_guard = AbortOnDrop(writer.abort_handle());
    let mut closed = false;
    while let Some(frame) = frames.next().await {
        match frame {
            Ok(Message::Text(text)) => {
                // A matching auto-response is answered here; the object never hears of it.
                let answered = {
                    let mut state = hub.state.lock();
                    match state.auto_reply(id, text.as_str(), now_ms()) {
                        Some(pair) => {
                            if let Some(link) = state.get(id).ok().and_then(|s| s.link.as_ref()) {
                                link.send(Outbound::Text(pair.response.clone()));
                            }
                            true
                        }
                        None => false,
                    }
                };
                if !answered {
                    hub.push(id, Inbound::Text(text.as_str().to_owned()));
                }
            }
            Ok(Message::Binary(bytes)) => hub.push(id, Inbound::Binary(bytes.to_vec())),
            Ok(Message::Close(frame)) => {
                closed = true;
                if let Ok(socket) = hub.state.lock().get_mut(id) {
                    socket.peer_closed = true;
                }
                let (code, reason) = match frame {
                    Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                    None => (1005, String::new()),
                };
                hub.push(
                    id,
                    Inbound::Close {
                        code,
                        reason,
                        clean: true,
                    },
                );
            }
            Ok(_) => {} // pings are answered by tungstenite itself; pongs need nothing
            Err(WsError::Capacity(e)) => {
                fail(
                    &hub,
                    id,
                    1009,
                    format!("WebSocket message too large: {e}; the limit is 32 MiB."),
                );
                return;
            }
            Err(WsError::Protocol(e)) if !is_reset(&e) => {
                fail(&hub, id, 1002, format!("WebSocket protocol error: {e}"));
                return;
            }
            Err(WsError::Utf8(e)) => {
                fail(
                    &hub,
                    id,
                    1007,
                    format!("WebSocket text message is not valid UTF-8: {e}"),
                );
                return;
            }
            Err(_) => break,
        }
    }
    if !closed {
        hub.push(id, disconnected());
    }
}

fn is_reset(e: &tokio_tungstenite::tungstenite::error::ProtocolError) -> bool {
    matches!(
        e,
        tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
    )
}

fn disconnected() -> Inbound {
    Inbound::Close {
        code: 1006,
        reason: NO_CLOSE_FRAME.to_owned(),
        clean: false,
    }
}

/// A transport error: the peer gets a Close frame with `code`, the object `webSocketError`.
fn fail(hub: &Hub, id: u32, code: u16, message: String) {
    if let Ok(socket) = hub.state.lock().get(id) {
        if let Some(link) = &socket.link {
            link.close(code, "");
        }
    }
    hub.push(id, Inbound::Error(message));
}

type Sink = futures_util::stream::SplitSink<WebSocketStream<tokio::net::TcpStream>, Message>;

/// Sends what JS queued, flushing once per batch of ready messages.
async fn write(
    mut sink: Sink,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    backlog: Arc<AtomicUsize>,
) {
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            let len = out.len();
            let message = match out {
                Outbound::Text(t) => Message::text(t),
                Outbound::Binary(b) => Message::binary(b),
                Outbound::Close(code, reason) => Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                })),
            };
            if sink.feed(message).await.is_err() {
                return;
            }
            backlog.fetch_sub(len, Ordering::AcqRel);
            next = rx.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
