//! The `http_*` functions: JS's synchronous calls into a front door ([`crate::http::FrontDoor`]),
//! by door number, as free functions like the `ws_*` ones.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes as Chunk;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Status};
use napi_derive::napi;

use crate::error::CoreError;
use crate::http::{Event, FrontDoor};
use crate::storage::napi_values::{array_buffer, Batch, FlatArray};

thread_local! {
    static DOORS: RefCell<Vec<Option<Arc<FrontDoor>>>> = const { RefCell::new(Vec::new()) };
}

fn door(number: u32) -> Result<Arc<FrontDoor>> {
    DOORS.with_borrow(|doors| {
        doors
            .get(number as usize)
            .and_then(Option::clone)
            .ok_or_else(|| {
                CoreError::Http(format!(
                    "durable-node internal: front door {number} is closed"
                ))
                .into()
            })
    })
}

// Not weak: an open front door keeps Node running, as a listening Node server does.
type Wake = ThreadsafeFunction<(), (), (), Status, false>;

/// Listens on `ip:port` (0: a free port); `wake` is called, with no arguments, when events wait.
#[napi(
    catch_unwind,
    ts_args_type = "ip: string, port: number, wake: () => void"
)]
pub fn http_listen(ip: String, port: u32, wake: Function<(), ()>) -> Result<u32> {
    let port = u16::try_from(port).map_err(|_| {
        CoreError::Http(format!("--port: {port} is not a port number (0 to 65535)"))
    })?;
    let tsfn: Wake = wake.build_threadsafe_function::<()>().build()?;
    let door = FrontDoor::listen(
        &ip,
        port,
        Box::new(move || {
            tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }),
    )?;
    DOORS.with_borrow_mut(|doors| {
        doors.push(Some(door));
        Ok((doors.len() - 1) as u32)
    })
}

/// The port actually bound (the one asked for, or the free one chosen for 0).
#[napi(catch_unwind)]
pub fn http_port(number: u32) -> Result<u32> {
    Ok(u32::from(door(number)?.address().port()))
}

/// Stops listening and drops the door's connections (WebSockets handed to a hub stay open).
#[napi(catch_unwind)]
pub fn http_close(number: u32) {
    let door = DOORS.with_borrow_mut(|doors| doors.get_mut(number as usize).and_then(Option::take));
    if let Some(door) = door {
        door.close();
    }
}

#[napi(catch_unwind)]
pub fn http_respond(
    number: u32,
    id: u32,
    status: u32,
    headers: Vec<String>,
    body: Option<&[u8]>,
    streaming: bool,
) -> Result<()> {
    let status = u16::try_from(status).unwrap_or(0);
    Ok(door(number)?.respond(
        id,
        status,
        &headers,
        body.map(Chunk::copy_from_slice),
        streaming,
    )?)
}

/// Writes a chunk of a streamed response; false: wait for the drain event before the next.
#[napi(catch_unwind)]
pub fn http_write(number: u32, id: u32, chunk: &[u8]) -> Result<bool> {
    Ok(door(number)?.write(id, Chunk::copy_from_slice(chunk)))
}

/// Ends a streamed response; with `error`, the connection is cut instead (a failed stream).
#[napi(catch_unwind)]
pub fn http_end(number: u32, id: u32, error: Option<String>) -> Result<()> {
    door(number)?.end(id, error.as_deref());
    Ok(())
}

#[napi(catch_unwind)]
pub fn http_pull(number: u32, id: u32) -> Result<()> {
    door(number)?.pull(id);
    Ok(())
}

/// Answers request `id` with 101 and hands its connection to socket `socket` of hub `hub`.
#[napi(catch_unwind)]
pub fn http_upgrade(
    number: u32,
    id: u32,
    headers: Vec<String>,
    hub: u32,
    socket: u32,
) -> Result<()> {
    let hub = crate::websocket_napi::hub(hub)?;
    Ok(door(number)?.upgrade(id, &headers, &hub, socket)?)
}

/// Events waiting, flat: `[id, kind, a, …]` — kind 0 a request without a body and 1 with one
/// (a: `[method, target, client address, name, value, …]`), 2 a body chunk (a: ArrayBuffer),
/// 3 the body's end, 4 a failure (a: message), 5 a drain.
#[napi(
    catch_unwind,
    ts_return_type = "Array<number | string[] | string | ArrayBuffer | undefined>"
)]
pub fn http_take_events(number: u32) -> Result<Batch<Event>> {
    Ok(Batch(door(number)?.take()))
}

impl ToNapiValue for Batch<Event> {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        let mut array = FlatArray::new(env, value.0.len() * 3)?;
        for event in value.0 {
            let (id, kind, a) = match event {
                Event::Request { id, head, has_body } => (
                    id,
                    u32::from(has_body),
                    Vec::<String>::to_napi_value(env, head)?,
                ),
                Event::Chunk { id, data } => (id, 2, array_buffer(env, &data)?),
                Event::End { id } => (id, 3, <()>::to_napi_value(env, ())?),
                Event::Failed { id, message } => (id, 4, String::to_napi_value(env, message)?),
                Event::Drain { id } => (id, 5, <()>::to_napi_value(env, ())?),
            };
            array.push(u32::to_napi_value(env, id)?)?;
            array.push(u32::to_napi_value(env, kind)?)?;
            array.push(a)?;
        }
        Ok(array.into_value())
    }
}
