//! durable-node's Rust core, loaded by Node as a napi-rs addon.
//!
//! Design (see DESIGN.md): JS-originated work never waits on a Rust thread. The core owns the state
//! that must outlive a JS instance and exposes it through few, coarse, synchronous calls:
//!
//! - [`Namespace`] derives and validates DurableObjectIds (HMAC-SHA256, as workerd does).
//! - `actor_*` functions drive every object's FIFO event queue and input gate ([`actor::Actor`]),
//!   kept in a thread-local table per runtime. JS enqueues opaque event tokens, drains the ones the
//!   gate lets through and runs their handlers on its own thread; storage and
//!   `blockConcurrencyWhile` hold and release the gate.
//! - `storage_*` functions reach one object's SQLite database ([`storage::Database`]) by handle:
//!   user SQL, the `_cf_KV` table, the implicit per-turn transaction, savepoints, the alarm row.
//! - [`Alarms`] is the runtime-wide alarm index ([`alarm::AlarmIndex`]); JS keeps one timer for
//!   its earliest entry, so no Rust thread ever calls into JS.
//! - [`RuntimeStore`] is `runtime.sqlite` of a persisted runtime (namespace keys).
//! - `ws_*` functions ([`websocket_napi`]) reach a runtime's WebSocket hub ([`websocket::Hub`]):
//!   sockets that outlive their object's JS instance (hibernation), and network connections
//!   served on the core's own thread, whose frames wake JS once per batch.
//! - `http_*` functions ([`http_napi`]) reach the HTTP front door of `durable-node dev`
//!   ([`http::FrontDoor`]): hyper on the same thread, requests queued for JS in batches, bodies
//!   streamed with bounded buffers, upgrades handed to a WebSocket hub.
//!
//! Logic lives in plain modules (`id`, `actor`, `storage`, `alarm`, `runtime_db`, `websocket`, `http`) tested with
//! `cargo test`; this file only converts values and errors ([`error::CoreError`] → `napi::Error`).

#![deny(clippy::all)]

pub mod actor;
pub mod alarm;

pub mod error;
pub mod http;
pub mod http_napi;
pub mod id;
pub mod runtime_db;
pub mod storage;
pub mod storage_napi;
pub mod websocket;
pub mod websocket_napi;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::actor::Registry;
use crate::error::CoreError;
use crate::id::NamespaceKeys;
use crate::runtime_db::RuntimeDb;

#[napi]
pub struct Namespace {
    keys: NamespaceKeys,
}

#[napi(object)]
pub struct ParsedId {
    pub hex: String,
    pub jurisdiction: Option<String>,
}

#[napi]
impl Namespace {
    #[napi(constructor)]
    pub fn new(unique_key: String) -> Self {
        Namespace {
            keys: NamespaceKeys::new(&unique_key),
        }
    }

    #[napi(catch_unwind)]
    pub fn id_from_name(&self, name: String, jurisdiction: Option<String>) -> Result<String> {
        Ok(hex::encode(
            self.keys.from_name(&name, jurisdiction.as_deref())?,
        ))
    }

    #[napi(catch_unwind)]
    pub fn new_unique_id(&self, jurisdiction: Option<String>) -> Result<String> {
        Ok(hex::encode(self.keys.unique(jurisdiction.as_deref())?))
    }

    #[napi(catch_unwind)]
    pub fn parse_id(&self, text: String) -> Result<ParsedId> {
        let (bytes, jurisdiction) = self.keys.parse(&text)?;
        Ok(ParsedId {
            hex: hex::encode(bytes),
            jurisdiction: jurisdiction.map(str::to_owned),
        })
    }
}

/// A fresh random unique key, for namespaces of a runtime that does not persist.
#[napi(catch_unwind)]
pub fn random_unique_key() -> Result<String> {
    Ok(runtime_db::random_key()?)
}

// The queue and gate calls are the hot path of every event, so they are free functions over a
// thread-local table rather than methods of a napi class: napi-rs 3 registers a borrow for each
// class-method call, which measured ~500 ns against ~50 ns for a free function here. Each Node
// thread (main or worker) has its own table, as it has its own runtimes.
thread_local! {
    static REGISTRIES: RefCell<Vec<Option<Registry>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on an actor of the runtime's registry.
fn with_actor<T>(runtime: u32, handle: u32, f: impl FnOnce(&mut actor::Actor) -> T) -> Result<T> {
    REGISTRIES.with_borrow_mut(|registries| {
        let actor = registries
            .get_mut(runtime as usize)
            .and_then(Option::as_mut)
            .and_then(|registry| registry.get(handle))
            .ok_or(CoreError::NoSuchActor(handle))?;
        Ok(f(actor))
    })
}

fn with_registry<T>(runtime: u32, f: impl FnOnce(&mut Registry) -> T) -> Result<T> {
    REGISTRIES.with_borrow_mut(|registries| {
        let registry = registries
            .get_mut(runtime as usize)
            .and_then(Option::as_mut)
            .ok_or(CoreError::NoSuchRuntime(runtime))?;
        Ok(f(registry))
    })
}

/// A new registry of actors (one per runtime); returns its number.
#[napi]
pub fn actors_create() -> u32 {
    REGISTRIES.with_borrow_mut(|registries| {
        registries.push(Some(Registry::default()));
        (registries.len() - 1) as u32
    })
}

#[napi]
pub fn actors_free(runtime: u32) {
    REGISTRIES.with_borrow_mut(|registries| {
        if let Some(slot) = registries.get_mut(runtime as usize) {
            *slot = None;
        }
    })
}

#[napi]
pub fn actor_open(runtime: u32) -> Result<u32> {
    with_registry(runtime, Registry::open)
}

#[napi]
pub fn actor_close(runtime: u32, handle: u32) -> Result<()> {
    with_registry(runtime, |registry| registry.close(handle))
}

/// Queues an event token; true when the caller must schedule a drain.
#[napi]
pub fn actor_enqueue(runtime: u32, handle: u32, token: u32) -> Result<bool> {
    with_actor(runtime, handle, |a| a.enqueue(token))
}

/// The next token the gate lets through, or -1 (which ends the drain).
#[napi]
pub fn actor_next_event(runtime: u32, handle: u32) -> Result<i64> {
    with_actor(runtime, handle, |a| a.next_event().map_or(-1, i64::from))
}

/// After starting `token`: true (and the event is back at the front) if the gate closed meanwhile.
#[napi]
pub fn actor_wait_for_gate(runtime: u32, handle: u32, token: u32) -> Result<bool> {
    with_actor(runtime, handle, |a| a.wait_for_gate(token))
}

#[napi]
pub fn actor_finish(runtime: u32, handle: u32, epoch: u32) -> Result<()> {
    with_actor(runtime, handle, |a| a.finish(epoch, Instant::now()))
}

#[napi]
pub fn actor_keep_alive(runtime: u32, handle: u32) -> Result<()> {
    with_actor(runtime, handle, |a| a.keep_alive())
}

/// Closes the input gate once more; returns the epoch to release it with.
#[napi]
pub fn actor_hold(runtime: u32, handle: u32) -> Result<u32> {
    with_actor(runtime, handle, |a| a.hold())
}

/// True when the caller must schedule a drain.
#[napi]
pub fn actor_release(runtime: u32, handle: u32, epoch: u32) -> Result<bool> {
    with_actor(runtime, handle, |a| a.release(epoch))
}

/// Forgets the live instance (abort, failed critical section, eviction); true when the caller
/// must schedule a drain for events that were queued behind it.
#[napi]
pub fn actor_reset(runtime: u32, handle: u32) -> Result<bool> {
    with_actor(runtime, handle, |a| a.reset(Instant::now()))
}

#[napi]
pub fn actor_epoch(runtime: u32, handle: u32) -> Result<u32> {
    with_actor(runtime, handle, |a| a.epoch())
}

#[napi]
pub fn actor_set_live(runtime: u32, handle: u32, live: bool) -> Result<()> {
    with_actor(runtime, handle, |a| a.set_live(live, Instant::now()))
}

/// Handles of live objects with nothing to do for at least `idle_ms`.
#[napi]
pub fn actors_idle(runtime: u32, idle_ms: u32) -> Result<Vec<u32>> {
    with_registry(runtime, |registry| {
        registry.idle(Duration::from_millis(idle_ms.into()))
    })
}

#[napi]
pub struct RuntimeStore {
    db: Option<RuntimeDb>,
}

#[napi]
impl RuntimeStore {
    #[napi(constructor, catch_unwind)]
    pub fn new(dir: String) -> Result<Self> {
        Ok(RuntimeStore {
            db: Some(RuntimeDb::open(std::path::Path::new(&dir))?),
        })
    }

    #[napi(catch_unwind)]
    pub fn namespace_key(&self, name: String) -> Result<String> {
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| CoreError::RuntimeDb("closed".into()))?;
        Ok(db.namespace_key(&name)?)
    }

    /// Applies a wrangler migration of Worker `worker` to the state in `dir` unless its tag was
    /// applied before: `renames` are `[from, to, …]` (renamed and transferred classes), `deletes`
    /// class names. Returns whether it was applied now.
    #[napi(catch_unwind)]
    pub fn migrate(
        &mut self,
        dir: String,
        worker: String,
        tag: String,
        renames: Vec<String>,
        deletes: Vec<String>,
    ) -> Result<bool> {
        let db = self
            .db
            .as_mut()
            .ok_or_else(|| CoreError::RuntimeDb("closed".into()))?;
        let migration = runtime_db::Migration {
            worker: &worker,
            tag: &tag,
            renames: renames
                .chunks_exact(2)
                .map(|pair| (pair[0].as_str(), pair[1].as_str()))
                .collect(),
            deletes: deletes.iter().map(String::as_str).collect(),
        };
        Ok(db.migrate(std::path::Path::new(&dir), &migration)?)
    }

    #[napi]
    pub fn close(&mut self) {
        self.db = None;
    }
}

/// Key-value pairs, packed so that crossing costs a few values rather than two per pair: the keys
/// end to end in one string; the values that are Latin-1 strings end to end in another (`texts`),
/// the other values' serialized bytes end to end in one buffer; and `ends` a buffer of f64 triples,
/// one per pair: where its key ends (in UTF-16 units, as JS counts), its kind (`KV_TEXT`,
/// `KV_NUMBER`, `KV_BYTES`), then where its text or bytes end, or the number itself. Strings and
/// numbers, most values, are so read without a decoding call per value in JS. The ends travel as
/// bytes because a JS array of numbers is built one element per call.
#[napi(object, object_from_js = false)]
pub struct KvRows {
    pub keys: String,
    #[napi(ts_type = "string")]
    pub texts: storage::Latin1,
    #[napi(ts_type = "ArrayBuffer")]
    pub values: storage::Bytes,
    #[napi(ts_type = "ArrayBuffer")]
    pub ends: storage::Bytes,
}

const KV_TEXT: f64 = 0.0;
const KV_NUMBER: f64 = 1.0;
const KV_BYTES: f64 = 2.0;

#[napi(object)]
pub struct KvListOptions {
    pub start: Option<String>,
    pub start_after: Option<String>,
    pub end: Option<String>,
    pub prefix: Option<String>,
    pub reverse: bool,
    pub limit: Option<u32>,
}

fn kv_rows(page: storage::KvPage) -> KvRows {
    use storage::napi_values::{primitive, Primitive};
    let mut ends = Vec::with_capacity(page.len() * 24);
    let mut texts = Vec::new();
    let mut values = Vec::new();
    let mut value_start = 0;
    for (key_end, &value_end) in page.key_ends.iter().zip(&page.value_ends) {
        let value = &page.values[value_start..value_end as usize];
        value_start = value_end as usize;
        let (kind, end) = match primitive(value) {
            Some(Primitive::Latin1(chars)) => {
                texts.extend_from_slice(chars);
                (KV_TEXT, texts.len() as f64)
            }
            Some(Primitive::Number(n)) => (KV_NUMBER, n),
            None => {
                values.extend_from_slice(value);
                (KV_BYTES, values.len() as f64)
            }
        };
        for field in [f64::from(*key_end), kind, end] {
            ends.extend_from_slice(&field.to_ne_bytes());
        }
    }
    KvRows {
        keys: page.keys,
        texts: storage::Latin1(texts),
        values: storage::Bytes(values),
        ends: storage::Bytes(ends),
    }
}

// One object's SQLite database (`ctx.storage`, see [`storage::Database`]), by handle. Free
// functions over a thread-local table, like the actors': every storage operation is one of these
// calls, and napi-rs 3's class methods cost ten times a free function's crossing.
thread_local! {
    static DATABASES: RefCell<Vec<Option<storage::Database>>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn with_db<T>(
    handle: u32,
    f: impl FnOnce(&mut storage::Database) -> std::result::Result<T, CoreError>,
) -> Result<T> {
    DATABASES.with_borrow_mut(|dbs| {
        let db = dbs
            .get_mut(handle as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| CoreError::Storage("this object's database is closed".into()))?;
        Ok(f(db)?)
    })
}

/// The hot storage calls as plain N-API functions (see [`storage_napi`]).
#[napi(
    ts_return_type = "{ run(handle: number, statement: number, ...binds: Array<null | number | string | Uint8Array>): unknown; kvGet(handle: number, key: string): string | number | ArrayBuffer | null; kvPut(handle: number, key: string, value: number | string | Uint8Array): boolean; status(): Float64Array }"
)]
pub fn storage_fast_calls() -> storage_napi::FastCalls {
    storage_napi::FastCalls
}

/// Opens the database file at `path` (created if missing), or an in-memory one; returns its handle.
#[napi(catch_unwind)]
pub fn storage_open(path: Option<String>, full_sync: bool) -> Result<u32> {
    let durability = if full_sync {
        storage::Durability::Full
    } else {
        storage::Durability::Normal
    };
    let db = storage::Database::open(path.as_deref().map(std::path::Path::new), durability)?;
    Ok(
        DATABASES.with_borrow_mut(|dbs| match dbs.iter().position(Option::is_none) {
            Some(free) => {
                dbs[free] = Some(db);
                free as u32
            }
            None => {
                dbs.push(Some(db));
                (dbs.len() - 1) as u32
            }
        }),
    )
}

/// Closes the file; uncommitted writes are discarded.
#[napi(catch_unwind)]
pub fn storage_close(handle: u32) {
    let closed =
        DATABASES.with_borrow_mut(|dbs| dbs.get_mut(handle as usize).and_then(Option::take));
    drop(closed);
}

/// The committed state of the database as bytes (vitest's isolated storage).
#[napi(catch_unwind)]
pub fn storage_snapshot(handle: u32) -> Result<Buffer> {
    with_db(handle, |db| Ok(db.snapshot()?.into()))
}

/// Replaces the database's whole content with a `storage_snapshot`.
#[napi(catch_unwind)]
pub fn storage_restore(handle: u32, bytes: &[u8]) -> Result<()> {
    with_db(handle, |db| db.restore(bytes))
}

/// Runs every statement of `sql`; the last one's result, flat (see `ExecResult::into_flat`).
#[napi(
    catch_unwind,
    ts_args_type = "handle: number, sql: string, binds: Array<null | number | string | Uint8Array>",
    ts_return_type = "Array<null | number | string | ArrayBuffer>"
)]
pub fn storage_exec(
    handle: u32,
    sql: String,
    binds: Vec<storage::Bind>,
) -> Result<Vec<storage::SqlValue>> {
    with_db(handle, |db| Ok(db.exec(&sql, &binds)?.into_flat()))
}

/// Compiles one statement for `run` (see [`storage_napi`]); -1 when `sql` is not exactly one statement.
#[napi(catch_unwind)]
pub fn storage_prepare(handle: u32, sql: String) -> Result<i64> {
    with_db(handle, |db| {
        Ok(db.prepare_single(&sql)?.map_or(-1, i64::from))
    })
}

#[napi(catch_unwind)]
pub fn storage_finalize(handle: u32, statement: u32) -> Result<()> {
    with_db(handle, |db| {
        db.finalize(statement);
        Ok(())
    })
}

#[napi(catch_unwind)]
pub fn storage_kv_get_many(handle: u32, keys: Vec<String>) -> Result<KvRows> {
    with_db(handle, |db| Ok(kv_rows(db.kv_get_many(&keys)?)))
}

#[napi(catch_unwind)]
pub fn storage_kv_put(handle: u32, keys: Vec<String>, values: Vec<&[u8]>) -> Result<()> {
    let entries: Vec<_> = keys
        .into_iter()
        .zip(values.into_iter().map(<[u8]>::to_vec))
        .collect();
    with_db(handle, |db| db.kv_put(&entries))
}

#[napi(catch_unwind)]
pub fn storage_kv_delete(handle: u32, keys: Vec<String>) -> Result<u32> {
    with_db(handle, |db| db.kv_delete(&keys))
}

#[napi(catch_unwind)]
pub fn storage_kv_list(handle: u32, options: KvListOptions) -> Result<KvRows> {
    let range = storage::ListRange {
        start: options.start,
        start_after: options.start_after,
        end: options.end,
        prefix: options.prefix,
        reverse: options.reverse,
        limit: options.limit,
    };
    with_db(handle, |db| Ok(kv_rows(db.kv_list(&range)?)))
}

#[napi(catch_unwind)]
pub fn storage_get_alarm(handle: u32) -> Result<Option<f64>> {
    with_db(handle, |db| Ok(db.get_alarm()?.map(|t| t as f64)))
}

#[napi(catch_unwind)]
pub fn storage_set_alarm(handle: u32, time: Option<f64>) -> Result<()> {
    with_db(handle, |db| db.set_alarm(time.map(|t| t as i64)))
}

#[napi(catch_unwind)]
pub fn storage_get_name(handle: u32) -> Result<Option<String>> {
    with_db(handle, |db| db.get_name())
}

#[napi(catch_unwind)]
pub fn storage_set_name(handle: u32, name: String) -> Result<()> {
    with_db(handle, |db| db.set_name(&name))
}

#[napi(catch_unwind)]
pub fn storage_commit(handle: u32) -> Result<()> {
    with_db(handle, storage::Database::commit)
}

#[napi(catch_unwind)]
pub fn storage_rollback(handle: u32) -> Result<()> {
    with_db(handle, |db| {
        db.rollback();
        Ok(())
    })
}

#[napi(catch_unwind)]
pub fn storage_savepoint(handle: u32) -> Result<u32> {
    with_db(handle, storage::Database::savepoint)
}

#[napi(catch_unwind)]
pub fn storage_end_savepoint(handle: u32, depth: u32, keep: bool) -> Result<()> {
    with_db(handle, |db| db.end_savepoint(depth, keep))
}

#[napi(catch_unwind)]
pub fn storage_rollback_savepoint(handle: u32, depth: u32) -> Result<()> {
    with_db(handle, |db| db.rollback_savepoint(depth))
}

#[napi(catch_unwind)]
pub fn storage_set_max_page_count(handle: u32, pages: f64) -> Result<f64> {
    with_db(handle, |db| Ok(db.set_max_page_count(pages as i64)? as f64))
}

#[napi(catch_unwind)]
pub fn storage_database_size(handle: u32) -> Result<f64> {
    with_db(handle, |db| db.database_size())
}

/// A bookmark of the state committed now (point-in-time recovery, persisted objects only).
#[napi(catch_unwind)]
pub fn storage_current_bookmark(handle: u32) -> Result<String> {
    with_db(handle, storage::Database::current_bookmark)
}

#[napi(catch_unwind)]
pub fn storage_bookmark_for_time(handle: u32, time: f64) -> Result<String> {
    with_db(handle, |db| db.bookmark_for_time(time as i64))
}

/// Schedules a restore for the object's next start; returns the bookmark that undoes it.
#[napi(catch_unwind)]
pub fn storage_schedule_restore(handle: u32, bookmark: String) -> Result<String> {
    with_db(handle, |db| db.schedule_restore(&bookmark))
}

/// True when a scheduled restore happened (the object is starting).
#[napi(catch_unwind)]
pub fn storage_apply_pending_restore(handle: u32) -> Result<bool> {
    with_db(handle, storage::Database::apply_pending_restore)
}

#[napi(catch_unwind)]
pub fn storage_delete_all(handle: u32) -> Result<()> {
    with_db(handle, storage::Database::delete_all)
}

/// The runtime-wide alarm index ([`alarm::AlarmIndex`]), persisted in `runtime.sqlite` when the
/// runtime persists.
#[napi]
pub struct Alarms {
    index: alarm::AlarmIndex,
    db: Option<RuntimeDb>,
}

#[napi(object, object_from_js = false)]
pub struct DueAlarm {
    pub namespace: String,
    pub id: String,
    pub time: f64,
}

fn id_bytes(hex: &str) -> Result<id::IdBytes> {
    Ok(alarm::parse_hex(hex).ok_or(CoreError::IdFormat)?)
}

#[napi]
impl Alarms {
    /// An empty index, or the one persisted under `dir`.
    #[napi(constructor, catch_unwind)]
    pub fn new(dir: Option<String>) -> Result<Self> {
        let mut index = alarm::AlarmIndex::default();
        let db = match dir {
            Some(dir) => {
                let db = RuntimeDb::open(std::path::Path::new(&dir))?;
                index.load(&db)?;
                Some(db)
            }
            None => None,
        };
        Ok(Alarms { index, db })
    }

    #[napi]
    pub fn namespace(&mut self, name: String) -> u32 {
        self.index.namespace(&name)
    }

    fn persist(&self, ns: u32, id: &id::IdBytes, time: Option<i64>) -> Result<()> {
        if let (Some(db), Some(name)) = (&self.db, self.index.namespace_name(ns)) {
            db.set_alarm(name, id, time)?;
        }
        Ok(())
    }

    /// Files the object for `time` unless it is filed earlier; returns the time filed.
    #[napi(catch_unwind)]
    pub fn lower(&mut self, ns: u32, id: String, time: f64) -> Result<f64> {
        let id = id_bytes(&id)?;
        let before = self.index.get(ns, &id);
        let filed = self.index.lower(ns, id, time as i64);
        if before != Some(filed) {
            self.persist(ns, &id, Some(filed))?;
        }
        Ok(filed as f64)
    }

    /// Files the object for exactly `time`, or forgets it.
    #[napi(catch_unwind)]
    pub fn set(&mut self, ns: u32, id: String, time: Option<f64>) -> Result<()> {
        let id = id_bytes(&id)?;
        let time = time.map(|t| t as i64);
        self.index.set(ns, id, time);
        self.persist(ns, &id, time)
    }

    #[napi]
    pub fn next(&self) -> Option<f64> {
        self.index.next().map(|t| t as f64)
    }

    /// Up to `max` entries due at `now`, taken out of memory (their persisted rows stay).
    #[napi]
    pub fn take_due(&mut self, now: f64, max: u32) -> Vec<DueAlarm> {
        let due = self.index.take_due(now as i64, max as usize);
        due.into_iter()
            .map(|d| DueAlarm {
                namespace: self
                    .index
                    .namespace_name(d.namespace)
                    .unwrap_or_default()
                    .to_owned(),
                id: hex::encode(d.id),
                time: d.time as f64,
            })
            .collect()
    }

    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.index.len() as u32
    }

    #[napi]
    pub fn close(&mut self) {
        self.db = None;
    }
}
