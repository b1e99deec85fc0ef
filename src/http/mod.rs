//! The HTTP front door of `durable-node dev`: hyper serves HTTP/1.1 on the core's network thread.
//! Each request is queued for JS, which is woken once per batch (as for WebSocket frames) and
//! answers with synchronous calls. Bodies stream both ways with bounded buffering: a request body
//! is read only as fast as JS pulls it, a response body is held back once a megabyte waits. An
//! upgrade to WebSocket hands the connection to the runtime's socket hub.

pub mod body;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::error::CoreError;
use crate::websocket::{net, Hub};
use body::{ResponseBody, Writer};

/// Request body chunks read ahead of JS.
const BODY_WINDOW: usize = 4;

/// What the front door reports to JS.
pub enum Event {
    /// A request head: method, target, client address, then header names and values (as
    /// Latin-1, the bytes HTTP allows).
    Request {
        id: u32,
        head: Vec<String>,
        has_body: bool,
    },
    Chunk {
        id: u32,
        data: Bytes,
    },
    End {
        id: u32,
    },
    /// The request body failed or the client went away before the response was complete.
    Failed {
        id: u32,
        message: String,
    },
    /// A streamed response body that was told to wait may be written again.
    Drain {
        id: u32,
    },
}

/// One request in flight, from its head until its response is complete.
struct Exchange {
    respond: Option<oneshot::Sender<Response<ResponseBody>>>,
    upgrade: Option<OnUpgrade>,
    /// Permits for the request body reader: one per chunk JS is ready for.
    pull: Arc<Semaphore>,
    writer: Option<Writer>,
}

pub struct FrontDoor {
    address: SocketAddr,
    inbox: Mutex<Vec<Event>>,
    /// Dropped at close: the threadsafe function keeps Node running while the door is open.
    wake: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    exchanges: Mutex<HashMap<u32, Exchange>>,
    next_id: AtomicU32,
    stop: watch::Sender<bool>,
    closed: AtomicBool,
}

impl FrontDoor {
    /// Binds `ip:port` now (so a taken port is an error here) and serves it on the network thread.
    pub fn listen(
        ip: &str,
        port: u16,
        wake: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Arc<FrontDoor>, CoreError> {
        let ip_addr: std::net::IpAddr = ip
            .parse()
            .map_err(|_| CoreError::Http(format!("--ip: \"{ip}\" is not an IP address")))?;
        let listener = StdListener::bind((ip_addr, port))
            .map_err(|e| CoreError::Http(format!("cannot listen on {ip}:{port}: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| CoreError::Http(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| CoreError::Http(e.to_string()))?;
        let runtime = net::runtime();
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| CoreError::Http(e.to_string()))?
        };
        let (stop, stopped) = watch::channel(false);
        let door = Arc::new(FrontDoor {
            address,
            inbox: Mutex::new(Vec::new()),
            wake: Mutex::new(Some(wake)),
            exchanges: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            stop,
            closed: AtomicBool::new(false),
        });
        runtime.spawn(accept(door.clone(), listener, stopped));
        Ok(door)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops listening and drops every connection; no more events are queued.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        self.exchanges.lock().clear();
        self.wake.lock().take();
    }

    fn push(&self, event: Event) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let first = {
            let mut inbox = self.inbox.lock();
            inbox.push(event);
            inbox.len() == 1
        };
        if first {
            if let Some(wake) = self.wake.lock().as_ref() {
                wake();
            }
        }
    }

    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.inbox.lock())
    }

    /// Sends the response head, with the whole body or (`streaming`) a body written later.
    /// A request whose client has gone is answered into the void.
    pub fn respond(
        self: &Arc<Self>,
        id: u32,
        status: u16,
        headers: &[String],
        body: Option<Bytes>,
        streaming: bool,
    ) -> Result<(), CoreError> {
        let mut response = Response::new(ResponseBody::Full(None));
        *response.status_mut() = StatusCode::from_u16(status)
            .map_err(|_| CoreError::Http(format!("the response status {status} is not valid")))?;
        set_headers(&mut response, headers)?;
        let sender = {
            let mut exchanges = self.exchanges.lock();
            let Some(exchange) = exchanges.get_mut(&id) else {
                return Ok(());
            };
            let Some(sender) = exchange.respond.take() else {
                return Err(CoreError::Http(format!("request {id} was answered twice")));
            };
            if streaming {
                let (writer, reader) = body::channel(
                    Box::new(self.reporter(id, |id| Event::Drain { id })),
                    Box::new(self.reporter(id, |id| Event::Failed {
                        id,
                        message: "The client disconnected before the response was complete.".into(),
                    })),
                );
                exchange.writer = Some(writer);
                *response.body_mut() = ResponseBody::Stream(reader);
            } else {
                *response.body_mut() = ResponseBody::Full(body.filter(|b| !b.is_empty()));
                finish(&mut exchanges, id);
            }
            sender
        };
        // Outside the lock: a response hyper no longer wants is dropped here, and a streamed
        // body's drop reports the client gone, which takes the lock again.
        let _ = sender.send(response);
        Ok(())
    }

    /// Writes a chunk of a streamed response body; false asks JS to wait for a drain.
    pub fn write(&self, id: u32, chunk: Bytes) -> bool {
        match self
            .exchanges
            .lock()
            .get(&id)
            .and_then(|e| e.writer.as_ref())
        {
            Some(writer) => writer.write(chunk),
            None => true, // the client has gone; JS has been told
        }
    }

    /// Ends a streamed response body (or, with `error`, cuts it off).
    pub fn end(&self, id: u32, error: Option<&str>) {
        let exchange = finish(&mut self.exchanges.lock(), id);
        let writer = exchange.and_then(|e| e.writer);
        if let (Some(writer), Some(message)) = (writer, error) {
            writer.abort(message);
        }
    }

    /// JS is ready for another chunk of the request body.
    pub fn pull(&self, id: u32) {
        if let Some(exchange) = self.exchanges.lock().get(&id) {
            exchange.pull.add_permits(1);
        }
    }

    /// Answers an upgrade request with 101 and `headers`, and hands the connection to socket
    /// `socket` of `hub`.
    pub fn upgrade(
        &self,
        id: u32,
        headers: &[String],
        hub: &Arc<Hub>,
        socket: u32,
    ) -> Result<(), CoreError> {
        let mut response = Response::new(ResponseBody::Full(None));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        set_headers(&mut response, headers)?;
        let (sender, on_upgrade) = {
            let mut exchanges = self.exchanges.lock();
            let Some(exchange) = exchanges.get_mut(&id) else {
                return Err(CoreError::Http(
                    "The client disconnected before the WebSocket upgrade.".into(),
                ));
            };
            let Some(on_upgrade) = exchange.upgrade.take() else {
                return Err(CoreError::Http(format!(
                    "request {id} did not ask for an upgrade"
                )));
            };
            let sender = exchange.respond.take();
            finish(&mut exchanges, id);
            (sender, on_upgrade)
        };
        let Some(sender) = sender else {
            return Err(CoreError::Http(format!("request {id} was answered twice")));
        };
        let link = net::adopt(hub, socket, async move {
            on_upgrade
                .await
                .map(TokioIo::new)
                .map_err(std::io::Error::other)
        });
        hub.state.lock().get_mut(socket)?.link = Some(link);
        let _ = sender.send(response);
        Ok(())
    }

    /// A callback that queues `event(id)`, for hyper's side of a body.
    fn reporter(
        self: &Arc<Self>,
        id: u32,
        event: fn(u32) -> Event,
    ) -> impl Fn() + Send + Sync + 'static {
        let door = Arc::downgrade(self);
        move || {
            if let Some(door) = door.upgrade() {
                door.push(event(id));
            }
        }
    }
}

/// Forgets an exchange; its request body stops being read.
fn finish(exchanges: &mut HashMap<u32, Exchange>, id: u32) -> Option<Exchange> {
    let exchange = exchanges.remove(&id)?;
    exchange.pull.close();
    Some(exchange)
}

/// Headers from JS, `[name, value, …]`, values as Latin-1 (what the fetch API's ByteString holds).
fn set_headers(response: &mut Response<ResponseBody>, headers: &[String]) -> Result<(), CoreError> {
    let map = response.headers_mut();
    for pair in headers.chunks_exact(2) {
        let name = HeaderName::from_bytes(pair[0].as_bytes())
            .map_err(|_| CoreError::Http(format!("invalid response header name {:?}", pair[0])))?;
        let bytes: Option<Vec<u8>> = pair[1].chars().map(|c| u8::try_from(c).ok()).collect();
        let value = bytes
            .and_then(|b| HeaderValue::from_bytes(&b).ok())
            .ok_or_else(|| {
                CoreError::Http(format!("invalid value for response header {:?}", pair[0]))
            })?;
        map.append(name, value);
    }
    Ok(())
}

async fn accept(
    door: Arc<FrontDoor>,
    listener: tokio::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of descriptors, most likely: wait rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let door = door.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| exchange(door.clone(), remote, req));
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// Reports a request to JS and waits for its answer.
async fn exchange(
    door: Arc<FrontDoor>,
    remote: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let id = door.next_id.fetch_add(1, Ordering::Relaxed);
    let upgrade = request
        .headers()
        .contains_key(hyper::header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let has_body = !hyper::body::Body::is_end_stream(&body);
    let (respond, answer) = oneshot::channel();
    let pull = Arc::new(Semaphore::new(BODY_WINDOW));
    door.exchanges.lock().insert(
        id,
        Exchange {
            respond: Some(respond),
            upgrade,
            pull: pull.clone(),
            writer: None,
        },
    );
    let _abandoned = Abandoned { door: &door, id };
    let mut head = Vec::with_capacity(3 + 2 * parts.headers.len());
    head.push(parts.method.as_str().to_owned());
    head.push(parts.uri.to_string());
    head.push(remote.ip().to_string());
    for (name, value) in &parts.headers {
        head.push(name.as_str().to_owned());
        head.push(value.as_bytes().iter().map(|&b| char::from(b)).collect());
    }
    door.push(Event::Request { id, head, has_body });
    if has_body {
        tokio::spawn(read_body(door.clone(), id, body, pull));
    }
    Ok(answer.await.unwrap_or_else(|_| {
        let mut response = Response::new(ResponseBody::Full(Some(Bytes::from_static(
            b"durable-node dev is shutting down.",
        ))));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
    }))
}

/// Hyper drops the exchange's future when the client leaves before the response: JS hears of it.
struct Abandoned<'a> {
    door: &'a Arc<FrontDoor>,
    id: u32,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let mut exchanges = self.door.exchanges.lock();
        if exchanges.get(&self.id).is_some_and(|e| e.respond.is_some()) {
            finish(&mut exchanges, self.id);
            drop(exchanges);
            self.door.push(Event::Failed {
                id: self.id,
                message: "The client disconnected before the response was sent.".into(),
            });
        }
    }
}

/// Reads the request body one chunk per permit, so a client sending faster than the Worker reads
/// waits in TCP rather than in memory.
async fn read_body(door: Arc<FrontDoor>, id: u32, mut body: Incoming, pull: Arc<Semaphore>) {
    loop {
        match pull.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return, // the exchange is over
        }
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => door.push(Event::Chunk { id, data }),
                _ => pull.add_permits(1), // trailers, or an empty chunk: JS needs nothing
            },
            Some(Err(e)) => {
                door.push(Event::Failed {
                    id,
                    message: format!("The request body could not be read: {e}"),
                });
                return;
            }
            None => {
                door.push(Event::End { id });
                return;
            }
        }
    }
}
