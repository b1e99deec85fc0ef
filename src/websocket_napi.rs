//! The `ws_*` functions: JS's synchronous calls into a runtime's WebSocket hub
//! ([`crate::websocket::Hub`]), by hub number, as free functions like the `actor_*` ones.

use std::cell::RefCell;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Status};
use napi_derive::napi;

use crate::error::CoreError;
use crate::storage::napi_values::{Batch, FlatArray};
use crate::storage::Bytes;
use crate::websocket::net::{self, Outbound};
use crate::websocket::{AutoResponse, Event, Hub, Inbound};

thread_local! {
    static HUBS: RefCell<Vec<Option<Arc<Hub>>>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn hub(number: u32) -> Result<Arc<Hub>> {
    HUBS.with_borrow(|hubs| {
        hubs.get(number as usize)
            .and_then(Option::clone)
            .ok_or_else(|| CoreError::NoSuchRuntime(number).into())
    })
}

/// Runs `f` on the hub's socket table.
fn with_state<T>(
    number: u32,
    f: impl FnOnce(&mut crate::websocket::HubState) -> std::result::Result<T, CoreError>,
) -> Result<T> {
    let hub = hub(number)?;
    let mut state = hub.state.lock();
    Ok(f(&mut state)?)
}

type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

/// A runtime's hub; `wake` is called (from any thread, with no arguments) when events wait in
/// its inbox. It must not throw.
#[napi(catch_unwind, ts_args_type = "wake: () => void")]
pub fn ws_hub_create(wake: Function<(), ()>) -> Result<u32> {
    let tsfn: Wake = wake
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .build()?;
    let hub = Arc::new(Hub::new(Box::new(move || {
        tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
    })));
    HUBS.with_borrow_mut(|hubs| {
        hubs.push(Some(hub));
        Ok((hubs.len() - 1) as u32)
    })
}

/// Closes every connection (1001) and frees the hub.
#[napi(catch_unwind)]
pub fn ws_hub_free(number: u32) {
    let hub = HUBS.with_borrow_mut(|hubs| hubs.get_mut(number as usize).and_then(Option::take));
    if let Some(hub) = hub {
        hub.close();
    }
}

/// Registers a socket of object `owner`; hibernatable ones count against the per-object cap.
#[napi(catch_unwind)]
pub fn ws_add(number: u32, owner: u32, hibernatable: bool, tags: Vec<String>) -> Result<u32> {
    with_state(number, |s| s.add(owner, hibernatable, tags))
}

#[napi(catch_unwind)]
pub fn ws_list(number: u32, owner: u32, tag: Option<String>) -> Result<Vec<u32>> {
    with_state(number, |s| Ok(s.list(owner, tag.as_deref())))
}

#[napi(catch_unwind)]
pub fn ws_count(number: u32, owner: u32) -> Result<u32> {
    with_state(number, |s| Ok(s.count(owner) as u32))
}

#[napi(catch_unwind)]
pub fn ws_tags(number: u32, id: u32) -> Result<Vec<String>> {
    with_state(number, |s| Ok(s.get(id)?.tags.clone()))
}

#[napi(catch_unwind)]
pub fn ws_set_attachment(number: u32, id: u32, serialized: &[u8]) -> Result<()> {
    with_state(number, |s| {
        s.get_mut(id)?.attachment = Some(serialized.to_vec());
        Ok(())
    })
}

/// The serialized attachment, or null when none was ever set.
#[napi(catch_unwind, ts_return_type = "ArrayBuffer | null")]
pub fn ws_attachment(number: u32, id: u32) -> Result<Option<Bytes>> {
    with_state(number, |s| Ok(s.get(id)?.attachment.clone().map(Bytes)))
}

/// Sets (both given) or clears (neither) the object's auto-response pair.
#[napi(catch_unwind)]
pub fn ws_set_auto_response(
    number: u32,
    owner: u32,
    request: Option<String>,
    response: Option<String>,
) -> Result<()> {
    let pair = request
        .zip(response)
        .map(|(request, response)| AutoResponse { request, response });
    with_state(number, |s| {
        s.set_auto_response(owner, pair);
        Ok(())
    })
}

/// `[request, response]`, or null.
#[napi(catch_unwind)]
pub fn ws_auto_response(number: u32, owner: u32) -> Result<Option<Vec<String>>> {
    with_state(number, |s| {
        Ok(s.auto_response(owner)
            .map(|p| vec![p.request.clone(), p.response.clone()]))
    })
}

/// For a message from an in-process peer: the auto-response to send back, if `text` matches.
#[napi(catch_unwind)]
pub fn ws_auto_reply(number: u32, id: u32, text: String) -> Result<Option<String>> {
    with_state(number, |s| {
        Ok(s.auto_reply(id, &text, net::now_ms())
            .map(|p| p.response.clone()))
    })
}

#[napi(catch_unwind)]
pub fn ws_auto_response_at(number: u32, id: u32) -> Result<Option<f64>> {
    with_state(number, |s| Ok(s.get(id)?.auto_response_at))
}

#[napi(catch_unwind)]
pub fn ws_set_event_timeout(number: u32, owner: u32, ms: Option<f64>) -> Result<()> {
    with_state(number, |s| {
        s.set_event_timeout(owner, ms);
        Ok(())
    })
}

#[napi(catch_unwind)]
pub fn ws_event_timeout(number: u32, owner: u32) -> Result<Option<f64>> {
    with_state(number, |s| Ok(s.event_timeout(owner)))
}

fn send(number: u32, id: u32, message: Outbound) -> Result<()> {
    let hub = hub(number)?;
    // A socket already forgotten (its peer left) takes nothing more: the message is dropped.
    let delivered = match hub.state.lock().get(id).ok().and_then(|s| s.link.as_ref()) {
        Some(link) => link.send(message),
        None => true,
    };
    if !delivered {
        // Outside the lock: the event names the socket's owner, which push looks up.
        hub.push(
            id,
            Inbound::Error(format!(
                "The WebSocket peer stopped reading: more than {} MiB waited to be sent, so the connection was closed.",
                net::MAX_BACKLOG_BYTES >> 20
            )),
        );
    }
    Ok(())
}

/// Queues a text message to the network peer of socket `id` (no-op for in-process sockets).
#[napi(catch_unwind)]
pub fn ws_send_text(number: u32, id: u32, text: String) -> Result<()> {
    send(number, id, Outbound::Text(text))
}

#[napi(catch_unwind)]
pub fn ws_send_binary(number: u32, id: u32, data: &[u8]) -> Result<()> {
    send(number, id, Outbound::Binary(data.to_vec()))
}

/// Records that this side sent its Close frame (and sends it to a network peer); returns whether
/// it had been sent before (a socket already forgotten counts as closed).
#[napi(catch_unwind)]
pub fn ws_close(number: u32, id: u32, code: Option<u32>, reason: String) -> Result<bool> {
    with_state(number, |s| {
        let Ok(socket) = s.get_mut(id) else {
            return Ok(true);
        };
        let before = socket.close_sent;
        socket.close_sent = true;
        if let (false, false, Some(link)) = (before, socket.peer_closed, &socket.link) {
            link.close(code.map_or(1005, |c| c as u16), &reason);
        }
        Ok(before)
    })
}

#[napi(catch_unwind)]
pub fn ws_close_sent(number: u32, id: u32) -> Result<bool> {
    with_state(number, |s| Ok(s.get(id)?.close_sent))
}

/// Forgets a socket once its close or error has been dispatched.
#[napi(catch_unwind)]
pub fn ws_remove(number: u32, id: u32) -> Result<()> {
    with_state(number, |s| {
        s.remove(id);
        Ok(())
    })
}

/// Hands the TCP connection behind `fd` to the core as socket `id` (see `net::attach`).
#[napi(catch_unwind)]
pub fn ws_attach(number: u32, id: u32, fd: i32, head: &[u8], response: &[u8]) -> Result<()> {
    let hub = hub(number)?;
    let link = net::attach(&hub, id, fd, head.to_vec(), response.to_vec())
        .map_err(|e| CoreError::WebSocket(format!("could not take over the connection: {e}")))?;
    let mut state = hub.state.lock();
    state.get_mut(id)?.link = Some(link);
    Ok(())
}

/// Events waiting in the inbox, flat: `[socket, owner, kind, a, b, …]` — kind 0 text (a: string),
/// 1 binary (a: ArrayBuffer), 2 clean close and 3 unclean close (a: code, b: reason), 4 error
/// (a: message).
#[napi(catch_unwind, ts_return_type = "Array<number | string | ArrayBuffer>")]
pub fn ws_take_events(number: u32) -> Result<Batch<Event>> {
    Ok(Batch(hub(number)?.take()))
}

impl ToNapiValue for Batch<Event> {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        let mut array = FlatArray::new(env, value.0.len() * 5)?;
        for event in value.0 {
            array.push(u32::to_napi_value(env, event.socket)?)?;
            array.push(u32::to_napi_value(env, event.owner)?)?;
            let (kind, a, b) = match event.what {
                Inbound::Text(t) => (0, String::to_napi_value(env, t)?, None),
                Inbound::Binary(bytes) => (1, Bytes::to_napi_value(env, Bytes(bytes))?, None),
                Inbound::Close {
                    code,
                    reason,
                    clean,
                } => (
                    if clean { 2 } else { 3 },
                    u32::to_napi_value(env, u32::from(code))?,
                    Some(String::to_napi_value(env, reason)?),
                ),
                Inbound::Error(message) => (4, String::to_napi_value(env, message)?, None),
            };
            array.push(u32::to_napi_value(env, kind)?)?;
            array.push(a)?;
            array.push(match b {
                Some(b) => b,
                None => <()>::to_napi_value(env, ())?,
            })?;
        }
        Ok(array.into_value())
    }
}
