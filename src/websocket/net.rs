//! Network WebSocket connections, each served by one tokio task (reading and writing) on the
//! core's own runtime thread. The upgrade request is parsed either by a Node HTTP server (the core
//! then takes over the TCP socket, a duplicate of its descriptor, and writes the 101 response) or
//! by the core's own front door (`crate::http`, hyper writes the 101). From there the core speaks
//! the protocol: pings are answered here, oversized messages close the connection with 1009, a
//! peer that stops reading is disconnected once its backlog passes a bound.

use std::future::Future;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
/// Small, because idle connections are the common case and tungstenite zero-fills the whole buffer
/// on its first read (RSS per connection); a frame larger than this reserves its own length.
const READ_BUFFER_BYTES: usize = 1024;

/// How long a connection closed for bad input waits for the peer to take its Close frame.
const LINGER: Duration = Duration::from_secs(2);

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

/// The hub's handle on a connection: the queue to its task, counting the bytes not yet handed to
/// the socket.
pub struct Link {
    tx: mpsc::UnboundedSender<Outbound>,
    backlog: Arc<AtomicUsize>,
    /// The connection's task (reading and writing).
    task: AbortHandle,
    cut: AtomicBool,
}

impl Link {
    /// Queues a message; false when the peer has stopped reading (the link is then cut, once).
    pub fn send(&self, message: Outbound) -> bool {
        if self.cut.load(Ordering::Acquire) || self.task.is_finished() {
            return true; // gone already; its end was reported
        }
        if !self.push(message) {
            self.cut();
            return false;
        }
        true
    }

    /// Sends a Close frame; reading goes on until the peer answers or hangs up.
    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.push(Outbound::Close(code, reason.to_owned()));
    }

    /// Drops the connection without a Close frame.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.task.abort();
    }

    /// False when the backlog would pass the bound (nothing is queued then).
    fn push(&self, message: Outbound) -> bool {
        let len = message.len();
        if self.backlog.fetch_add(len, Ordering::AcqRel) + len > MAX_BACKLOG_BYTES {
            self.backlog.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        let _ = self.tx.send(message);
        true
    }
}

/// The core's network thread: one current-thread runtime, driven by a thread of its own, for
/// WebSocket connections and the HTTP front door alike.
pub fn runtime() -> &'static tokio::runtime::Handle {
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("durable-node: could not start the network runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("durable-node-net".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("durable-node: could not start the network thread");
        handle
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
    let stream = {
        let _entered = runtime().enter();
        tokio::net::TcpStream::from_std(stream)?
    };
    Ok(spawn_link(hub, id, async move {
        let mut stream = stream;
        stream.write_all(&response).await?;
        drop(response);
        let ws = WebSocketStream::from_partially_read(stream, head, Role::Server, Some(config()));
        Ok(ws.await)
    }))
}

/// Serves socket `id` over a connection that `upgraded` yields once the HTTP upgrade completes
/// (the front door's, whose 101 response hyper writes). Messages sent meanwhile wait in the link.
pub fn adopt<S>(
    hub: &Arc<Hub>,
    id: u32,
    upgraded: impl Future<Output = std::io::Result<S>> + Send + 'static,
) -> Link
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    spawn_link(hub, id, async move {
        let stream = upgraded.await?;
        Ok(WebSocketStream::from_raw_socket(stream, Role::Server, Some(config())).await)
    })
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// The connection's task, started on the core's network thread, and the hub's link to it.
fn spawn_link<S>(
    hub: &Arc<Hub>,
    id: u32,
    connect: impl Future<Output = std::io::Result<WebSocketStream<S>>> + Send + 'static,
) -> Link
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    let task = runtime().spawn({
        let hub = hub.clone();
        let backlog = backlog.clone();
        async move {
            match connect.await {
                Ok(ws) => serve(hub, id, ws, backlog, rx).await,
                Err(_) => hub.push(id, disconnected()),
            }
        }
    });
    Link {
        tx,
        backlog,
        task: task.abort_handle(),
        cut: AtomicBool::new(false),
    }
}

async fn serve<S>(
    hub: Arc<Hub>,
    id: u32,
    mut ws: WebSocketStream<S>,
    backlog: Arc<AtomicUsize>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // One task reads and writes: no lock between two halves, no hand-off to a writer task.
    let mut writing = true;
    let mut closed = false;
    let mut failure = None;
    loop {
        tokio::select! {
            out = rx.recv(), if writing => match out {
                Some(first) => match write(&mut ws, first, &mut rx, &backlog).await {
                    Ok(sent_close) => writing = !sent_close,
                    Err(()) => break,
                },
                // The hub forgot the socket: finish the closing handshake (a Close reply may still
                // be pending in tungstenite) rather than drop the connection under it.
                None => {
                    let _ = tokio::time::timeout(LINGER, ws.close(None)).await;
                    break;
                }
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    // A matching auto-response is answered here; the object never hears of it.
                    let reply = hub.state.lock().auto_reply(id, text.as_str(), now_ms());
                    match reply {
                        Some(pair) if writing => {
                            if ws.send(Message::text(pair.response.as_str())).await.is_err() {
                                break;
                            }
                        }
                        Some(_) => {}
                        None => hub.push(id, Inbound::Text(text.as_str().to_owned())),
                    }
                }
                Some(Ok(Message::Binary(bytes))) => hub.push(id, Inbound::Binary(bytes.to_vec())),
                Some(Ok(Message::Close(frame))) => {
                    closed = true;
                    if let Ok(socket) = hub.state.lock().get_mut(id) {
                        socket.peer_closed = true;
                    }
                    let (code, reason) = match frame {
                        Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                        None => (1005, String::new()),
                    };
                    hub.push(id, Inbound::Close { code, reason, clean: true });
                }
                Some(Ok(_)) => {} // pings are answered by tungstenite itself; pongs need nothing
                Some(Err(WsError::Capacity(e))) => {
                    failure = Some((1009, format!("WebSocket message too large: {e}; the limit is 32 MiB.")));
                    break;
                }
                Some(Err(WsError::Protocol(e))) if !is_reset(&e) => {
                    failure = Some((1002, format!("WebSocket protocol error: {e}")));
                    break;
                }
                Some(Err(WsError::Utf8(e))) => {
                    failure = Some((1007, format!("WebSocket text message is not valid UTF-8: {e}")));
                    break;
                }
                Some(Err(_)) | None => break,
            },
        }
    }
    match failure {
        // The peer gets a Close frame with the code, the object `webSocketError`.
        Some((code, message)) => {
            hub.push(id, Inbound::Error(message));
            let close = CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            };
            if ws.send(Message::Close(Some(close))).await.is_ok() {
                linger(ws.get_mut()).await;
            }
        }
        None if !closed => hub.push(id, disconnected()),
        None => {}
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

/// After a Close sent because of bad input, the rest of that input is read and dropped until the
/// peer hangs up: closing with unread bytes would reset the connection before the peer reads the
/// Close frame.
async fn linger(stream: &mut (impl AsyncRead + Unpin)) {
    let mut buffer = vec![0u8; 64 * 1024];
    let drain = async { while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Sends `first` and whatever else JS has queued meanwhile, flushing once. Returns whether a Close
/// frame went out (nothing may follow it); Err when the connection failed.
async fn write(
    ws: &mut WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>,
    first: Outbound,
    rx: &mut mpsc::UnboundedReceiver<Outbound>,
    backlog: &AtomicUsize,
) -> Result<bool, ()> {
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
        let last = matches!(message, Message::Close(_));
        ws.feed(message).await.map_err(|_| ())?;
        backlog.fetch_sub(len, Ordering::AcqRel);
        if last {
            ws.flush().await.map_err(|_| ())?;
            return Ok(true);
        }
        next = rx.try_recv().ok();
    }
    ws.flush().await.map_err(|_| ())?;
    Ok(false)
}
