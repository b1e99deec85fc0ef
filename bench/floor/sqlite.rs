//! The raw SQLite floor of the storage bench: bench/workers/store.mjs's workloads done directly with rusqlite.
//!
//! Same schema and bytes as a Durable Object's storage (`_cf_KV` WITHOUT ROWID with 20-byte V8-serialized
//! values; `t(id INTEGER PRIMARY KEY, v TEXT)`), an in-memory database, cached prepared statements, and one
//! transaction around each loop, as durable-node's implicit per-turn transaction has. No JS, no value
//! serialization, no N-API: what is left is SQLite's own cost, which the runtimes cannot go below.
//!
//! Usage: `sqlite-floor <samples> <kv ops> <insert rows> <select calls> <list keys> <list repeats>`
//! (bench/run.mjs passes its storage plan); prints one `BENCH_RESULT {...}` line (bench/lib/protocol.mjs) with
//! every sample and their medians.

use std::hint::black_box;
use std::time::Instant;

use rusqlite::{Connection, Result};

/// The sizes of one run: the same numbers bench/run.mjs gives the runtimes.
struct Plan {
    samples: usize,
    kv_ops: usize,
    insert_rows: usize,
    select_calls: usize,
    list_keys: usize,
    list_repeats: usize,
}

const USAGE: &str =
    "usage: sqlite-floor <samples> <kv ops> <insert rows> <select calls> <list keys> <list repeats>";

impl Plan {
    fn from_args() -> Plan {
        let numbers: Vec<usize> = std::env::args()
            .skip(1)
            .map(|arg| arg.parse().expect(USAGE))
            .collect();
        let [samples, kv_ops, insert_rows, select_calls, list_keys, list_repeats] = numbers[..]
        else {
            panic!("{USAGE}");
        };
        Plan {
            samples,
            kv_ops,
            insert_rows,
            select_calls,
            list_keys,
            list_repeats,
        }
    }
}

/// Key i, as bench/workers/store.mjs makes it.
fn key(i: usize) -> String {
    format!("key:{i:08}")
}

/// Value i as a runtime stores it: V8's serialization (header 0xFF 0x0F, one-byte string tag, length) of
/// store.mjs's 16-character string, 20 bytes.
fn value(i: usize) -> Vec<u8> {
    let text = format!("value-{i:010}");
    let mut bytes = vec![0xFF, 0x0F, b'"', text.len() as u8];
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

fn open_kv() -> Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch("CREATE TABLE _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID")?;
    Ok(conn)
}

/// Runs `f` inside BEGIN … COMMIT; returns its duration in µs.
fn timed_transaction(conn: &Connection, f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    conn.execute_batch("BEGIN")?;
    f()?;
    conn.execute_batch("COMMIT")?;
    Ok(start.elapsed().as_secs_f64() * 1e6)
}

fn put_all(conn: &Connection, keys: &[String], values: &[Vec<u8>]) -> Result<()> {
    for (k, v) in keys.iter().zip(values) {
        conn.prepare_cached("INSERT OR REPLACE INTO _cf_KV (key, value) VALUES (?1, ?2)")?
            .execute((k, v))?;
    }
    Ok(())
}

/// µs per put and per get of `n` keys on a new database.
fn kv_put_get(n: usize) -> Result<(f64, f64)> {
    let conn = open_kv()?;
    let keys: Vec<String> = (0..n).map(key).collect();
    let values: Vec<Vec<u8>> = (0..n).map(value).collect();
    let put = timed_transaction(&conn, || put_all(&conn, &keys, &values))?;
    let get = timed_transaction(&conn, || {
        for (k, v) in keys.iter().zip(&values) {
            let read: Vec<u8> = conn
                .prepare_cached("SELECT value FROM _cf_KV WHERE key = ?1")?
                .query_row([k], |row| row.get(0))?;
            assert_eq!(&read, v);
        }
        Ok(())
    })?;
    Ok((put / n as f64, get / n as f64))
}

/// µs per INSERT of `rows` rows into a new table, then µs per point SELECT by primary key.
fn sql_insert_select(rows: usize, selects: usize) -> Result<(f64, f64)> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")?;
    let insert = timed_transaction(&conn, || {
        for i in 0..rows {
            conn.prepare_cached("INSERT INTO t VALUES (?1, ?2)")?
                .execute((i as i64, "x"))?;
        }
        Ok(())
    })?;
    let select = timed_transaction(&conn, || {
        let mut found = 0;
        // The same stride through the table as store.mjs.
        for j in 0..selects {
            let v: String = conn
                .prepare_cached("SELECT v FROM t WHERE id = ?1")?
                .query_row([((j * 7919) % rows) as i64], |row| row.get(0))?;
            found += v.len();
        }
        assert_eq!(found, selects);
        Ok(())
    })?;
    Ok((insert / rows as f64, select / selects as f64))
}

/// ms per full scan of a database holding exactly `n` keys, into owned keys and values as list() returns them.
fn list_all(n: usize, repeats: usize) -> Result<f64> {
    let conn = open_kv()?;
    let keys: Vec<String> = (0..n).map(key).collect();
    let values: Vec<Vec<u8>> = (0..n).map(value).collect();
    timed_transaction(&conn, || put_all(&conn, &keys, &values))?;
    let us = timed_transaction(&conn, || {
        for _ in 0..repeats {
            let rows: Vec<(String, Vec<u8>)> = conn
                .prepare_cached("SELECT key, value FROM _cf_KV ORDER BY key")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_>>()?;
            assert_eq!(black_box(rows).len(), n);
        }
        Ok(())
    })?;
    Ok(us / 1000.0 / repeats as f64)
}

/// The fields of one sample, in the order `main` collects them.
const NAMES: [&str; 5] = ["putUs", "getUs", "insertUs", "selectUs", "listMs"];

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn main() -> Result<()> {
    let plan = Plan::from_args();
    let mut samples: [Vec<f64>; 5] = Default::default();
    // The first round warms caches and the allocator and is not kept, as the runtimes' warm-up sample is not.
    for round in 0..=plan.samples {
        let (put, get) = kv_put_get(plan.kv_ops)?;
        let (insert, select) = sql_insert_select(plan.insert_rows, plan.select_calls)?;
        let list = list_all(plan.list_keys, plan.list_repeats)?;
        if round > 0 {
            for (kept, value) in samples.iter_mut().zip([put, get, insert, select, list]) {
                kept.push(value);
            }
        }
    }
    // The shape bench/storage.mjs reports, plus the medians.
    let object = |values: &dyn Fn(usize) -> f64| {
        let fields: Vec<String> = NAMES
            .iter()
            .enumerate()
            .map(|(k, name)| format!("\"{name}\":{:.4}", values(k)))
            .collect();
        format!("{{{}}}", fields.join(","))
    };
    let rows: Vec<String> = (0..plan.samples)
        .map(|i| object(&|k| samples[k][i]))
        .collect();
    let medians = object(&|k| median(&samples[k]));
    println!(
        "BENCH_RESULT {{\"samples\":[{}],\"medians\":{medians}}}",
        rows.join(",")
    );
    Ok(())
}
