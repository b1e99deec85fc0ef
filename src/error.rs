//! One table: every error the core can raise → the JS class it becomes and its exact message.
//!
//! Errors cross the napi boundary as a `napi::Error` whose message is `<JS class>\0<message>`;
//! the TypeScript side (`fromNative` in `lib/native.ts`) turns that into the real class.

use std::fmt;

#[derive(Debug)]
pub enum CoreError {
    IdFormat,
    IdForeign,
    UnknownJurisdiction(String),
    Random(String),
    NoSuchActor(u32),
    NoSuchRuntime(u32),
    RuntimeDb(String),
    /// An SQLite failure of the runtime's own statements, in workerd's wording.
    Sqlite(String),
    /// An error of user SQL, already worded.
    Sql(String),
    /// Opening or reading an object's database.
    Storage(String),
    /// An argument out of range (a bookmark that is unknown or too old).
    RangeError(String),
    /// The implicit transaction could not commit (SQLite's message and extended code); it was
    /// rolled back and the object is reset with this error.
    CommitFailed {
        message: String,
        code: i32,
    },
    /// A WebSocket rule (the per-object socket cap), already worded.
    WebSocket(String),
    NoSuchSocket(u32),
    /// The HTTP front door: a port that cannot be bound, a response it cannot send; worded.
    Http(String),
}

impl CoreError {
    pub fn js_class(&self) -> &'static str {
        match self {
            CoreError::IdFormat | CoreError::IdForeign | CoreError::UnknownJurisdiction(_) => {
                "TypeError"
            }
            CoreError::RangeError(_) => "RangeError",
            CoreError::Random(_)
            | CoreError::NoSuchActor(_)
            | CoreError::NoSuchRuntime(_)
            | CoreError::RuntimeDb(_)
            | CoreError::Sqlite(_)
            | CoreError::Sql(_)
            | CoreError::Storage(_)
            | CoreError::CommitFailed { .. }
            | CoreError::WebSocket(_)
            | CoreError::NoSuchSocket(_)
            | CoreError::Http(_) => "Error",
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::IdFormat => f.write_str("Invalid Durable Object ID: must be 64 hex digits"),
            CoreError::IdForeign => {
                f.write_str("Durable Object ID is not valid for this namespace.")
            }
            CoreError::UnknownJurisdiction(j) => write!(
                f,
                "durable-node internal: unknown jurisdiction {j:?} (the TS layer validates jurisdictions)"
            ),
            CoreError::Random(e) => write!(f, "could not get random bytes for a unique id: {e}"),
            CoreError::NoSuchActor(h) => {
                write!(f, "durable-node internal: no actor with handle {h}")
            }
            CoreError::NoSuchRuntime(r) => write!(f, "durable-node internal: runtime {r} was disposed"),
            CoreError::RuntimeDb(e) => write!(f, "runtime database: {e}"),
            CoreError::Sqlite(m)
            | CoreError::RangeError(m)
            | CoreError::Sql(m)
            | CoreError::Storage(m)
            | CoreError::WebSocket(m)
            | CoreError::Http(m) => f.write_str(m),
            CoreError::NoSuchSocket(id) => write!(
                f,
                "This WebSocket is no longer known to its Durable Object (socket {id} was closed)."
            ),
            // Constraints left violated at commit (deferred foreign keys): workerd's reset
            // message, which names the primary code only (spec 100).
            CoreError::CommitFailed { message, code }
                if code & 0xff == rusqlite::ffi::SQLITE_CONSTRAINT =>
            {
                write!(
                    f,
                    "Durable Object was reset and rolled back to its last known good state because the application left the database in a state where constraints were violated: {}",
                    crate::storage::format_error(message, -1, code & 0xff)
                )
            }
            CoreError::CommitFailed { message, code } => {
                f.write_str(&crate::storage::format_error(message, -1, *code))
            }
        }
    }
}

impl std::error::Error for CoreError {}

impl From<rusqlite::Error> for CoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(code, message) => {
                let text = message.clone().unwrap_or_else(|| code.to_string());
                CoreError::Sqlite(crate::storage::format_error(&text, -1, code.extended_code))
            }
            _ => CoreError::Sqlite(e.to_string()),
        }
    }
}

impl From<CoreError> for napi::Error {
    fn from(e: CoreError) -> Self {
        napi::Error::new(
            napi::Status::GenericFailure,
            format!("{}\u{0}{e}", e.js_class()),
        )
    }
}
