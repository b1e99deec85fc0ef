//! One SQLite database per object: user SQL (`ctx.storage.sql`), the `_cf_KV` table behind both KV
//! APIs, and the implicit transaction that makes a turn's writes atomic.

mod authorizer;
mod bookmarks;
mod codes;
mod database;
mod kv;
mod metadata;

pub(crate) mod napi_values;
mod sql;

pub use database::{format_error, Database, Durability};
pub use kv::{KvPage, ListRange};
pub use napi_values::{Bytes, Latin1, StoredValue};

pub use sql::{Bind, ExecResult, Prepared, SqlValue};
