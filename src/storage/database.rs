//! The connection of one object: opening, Cloudflare's limits, the implicit transaction,
//! savepoints for `transactionSync`/`transaction`, `deleteAll` and `databaseSize`.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{ffi, limits::Limit, Connection};

use super::authorizer::{self, AuthState};
use super::bookmarks::{self, History};
use super::codes::code_name;
use super::sql::Prepared;
use crate::error::CoreError;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// WAL + synchronous=NORMAL: survives a killed process.
    Normal,
    /// WAL + synchronous=FULL: survives power loss.
    Full,
}

/// Cloudflare's `sqlite3_limit` values (spec §12). The length limit is what workerd
/// 1.20261117.1 was measured to allow: 8 MiB plus the KV serializer's 34-byte cushion.
const LIMITS: [(Limit, i32); 10] = [
    (Limit::SQLITE_LIMIT_LENGTH, 8 * 1024 * 1024 + 34),
    (Limit::SQLITE_LIMIT_SQL_LENGTH, 100_000),
    (Limit::SQLITE_LIMIT_COLUMN, 100),
    (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
    (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 5),
    (Limit::SQLITE_LIMIT_VDBE_OP, 25_000),
    (Limit::SQLITE_LIMIT_FUNCTION_ARG, 127),
    (Limit::SQLITE_LIMIT_ATTACHED, 0),
    (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 50),
    (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 100),
];
const TRIGGER_DEPTH: i32 = 10;

pub struct Database {
    pub(super) conn: Connection,
    pub(super) auth: Arc<AuthState>,
    /// Compiled statements of user SQL, by handle; the JS side decides what stays cached.
    statements: Vec<Option<Prepared>>,
    free: Vec<u32>,
    savepoints: u32,
    pub(super) kv_table: bool,
    /// Point-in-time recovery (persisted databases only).
    history: Option<History>,
}

impl Database {
    /// Opens (creating) the database at `path`, or an in-memory one.
    pub fn open(path: Option<&Path>, durability: Durability) -> Result<Self, CoreError> {
        let mut conn = match path {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        CoreError::Storage(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                Connection::open(path)?
            }
            None => Connection::open_in_memory()?,
        };
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        // The first query reads the file: a corrupt one fails here, not later.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON;"
        ))?;
        for (limit, value) in LIMITS {
            conn.set_limit(limit, value)?;
        }
        conn.set_limit(Limit::SQLITE_LIMIT_TRIGGER_DEPTH, TRIGGER_DEPTH)?;
        let auth = Arc::new(AuthState::default());
        conn.authorizer(Some(authorizer::hook(auth.clone())))?;
        let mut db = Database {
            conn,
            auth,
            statements: Vec::new(),
            free: Vec::new(),
            savepoints: 0,
            kv_table: false,
            history: None,
        };
        if let Some(path) = path {
            let history = db.internal(|conn| History::open(conn, path))?;
            db.history = Some(history);
        }
        db.refresh_kv_table()?;
        Ok(db)
    }

    /// Whether `_cf_KV` exists, known again after anything that may have undone its creation.
    fn refresh_kv_table(&mut self) -> Result<(), CoreError> {
        self.kv_table = self.internal(|conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = '_cf_KV'",
                [],
                |row| row.get::<_, i64>(0),
            )? > 0)
        })?;
        Ok(())
    }

    pub(super) fn handle(&self) -> *mut ffi::sqlite3 {
        // SAFETY: the handle is only used while `self.conn` is alive and on this thread.
        unsafe { self.conn.handle() }
    }

    /// Runs the runtime's own statements with the authorizer bypassed.
    pub(super) fn internal<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        self.auth.internal.store(true, Ordering::Relaxed);
        let result = f(&self.conn);
        self.auth.internal.store(false, Ordering::Relaxed);
        result
    }

    /// Opens the implicit transaction before the first write of a turn.
    pub(super) fn begin_write(&self) -> Result<(), CoreError> {
        if self.conn.is_autocommit() {
            self.internal(|conn| Ok(conn.execute_batch("BEGIN")?))?;
        }
        Ok(())
    }

    /// Writes not yet committed.
    pub fn dirty(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// Commits the implicit transaction. A failure (a deferred foreign key left violated, a full
    /// disk) rolls it back and is returned in workerd's message form.
    pub fn commit(&mut self) -> Result<(), CoreError> {
        if !self.dirty() || self.savepoints > 0 {
            return Ok(());
        }
        let result = self.internal(|conn| Ok(conn.execute_batch("COMMIT")?));
        if result.is_ok() {
            // The commit stands either way: a bookmark not recorded now is only a gap in history.
            let _ = self.record_history(false);
        }
        if let Err(CoreError::Sqlite(_)) = result {
            // SAFETY: this connection's live handle; read before the rollback below.
            let (message, extended) = unsafe {
                let db = self.handle();
                let message = std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db))
                    .to_string_lossy()
                    .into_owned();
                (message, ffi::sqlite3_extended_errcode(db))
            };
            self.rollback();
            return Err(CoreError::CommitFailed {
                message,
                code: extended,
            });
        }
        result
    }

    fn record_history(&mut self, force: bool) -> Result<(), CoreError> {
        let Some(mut history) = self.history.take() else {
            return Ok(());
        };
        let result = self.internal(|conn| history.record(conn, now_ms(), force));
        self.history = Some(history);
        result
    }

    fn history(&self) -> Result<&History, CoreError> {
        self.history
            .as_ref()
            .ok_or_else(|| CoreError::Storage(bookmarks::NOT_AVAILABLE.into()))
    }

    /// A bookmark of the state committed now (what was written so far is committed first).
    pub fn current_bookmark(&mut self) -> Result<String, CoreError> {
        self.history()?;
        if self.savepoints > 0 {
            return Err(CoreError::Storage(
                "getCurrentBookmark() cannot be called inside a transaction: its state is not committed yet."
                    .into(),
            ));
        }
        self.commit()?;
        self.record_history(true)?;
        self.history()?.current()
    }

    /// The bookmark of the latest recorded state at or before `time` (ms since the epoch).
    pub fn bookmark_for_time(&mut self, time: i64) -> Result<String, CoreError> {
        self.history()?.for_time(time)
    }

    /// Arranges for the object to start from `bookmark` next time it starts; returns the bookmark
    /// of the state now, which undoes it.
    pub fn schedule_restore(&mut self, bookmark: &str) -> Result<String, CoreError> {
        self.history()?.validate(bookmark)?;
        let undo = self.current_bookmark()?;
        self.history()?.schedule(bookmark)?;
        Ok(undo)
    }

    /// Restores the bookmark scheduled by `schedule_restore`, if any: the object is starting.
    /// True when a restore happened. A restore that cannot happen (its bookmark expired) fails
    /// this start and is dropped, so that the next start is not stuck on it.
    pub fn apply_pending_restore(&mut self) -> Result<bool, CoreError> {
        let Some(history) = self.history.as_ref() else {
            return Ok(false);
        };
        let file = history.restore_file();
        let Ok(bookmark) = std::fs::read_to_string(&file) else {
            return Ok(false);
        };
        self.commit()?;
        let history = self.history.as_ref().expect("checked above");
        let restored = self.internal(|conn| history.restore(conn, bookmark.trim()));
        std::fs::remove_file(&file)
            .map_err(|e| CoreError::Storage(format!("cannot remove {}: {e}", file.display())))?;
        restored?;
        self.refresh_kv_table()?;
        self.record_history(true)?;
        Ok(true)
    }

    /// Discards uncommitted writes (abort, a failed commit, a reset).
    pub fn rollback(&mut self) {
        self.savepoints = 0;
        if self.dirty() {
            let _ = self.internal(|conn| Ok(conn.execute_batch("ROLLBACK")?));
        }
        let _ = self.refresh_kv_table();
    }

    /// Opens a nested savepoint (transactionSync, transaction); returns its depth.
    pub fn savepoint(&mut self) -> Result<u32, CoreError> {
        self.begin_write()?;
        let depth = self.savepoints + 1;
        self.internal(|conn| Ok(conn.execute_batch(&format!("SAVEPOINT _cf_sp{depth}"))?))?;
        self.savepoints = depth;
        Ok(depth)
    }

    /// Ends the savepoint at `depth`, keeping (release) or undoing (rollback) its writes.
    pub fn end_savepoint(&mut self, depth: u32, keep: bool) -> Result<(), CoreError> {
        if depth == 0 || depth > self.savepoints {
            return Ok(());
        }
        let sql = if keep {
            format!("RELEASE _cf_sp{depth}")
        } else {
            format!("ROLLBACK TO _cf_sp{depth}; RELEASE _cf_sp{depth}")
        };
        self.internal(|conn| Ok(conn.execute_batch(&sql)?))?;
        self.savepoints = depth - 1;
        if !keep {
            self.refresh_kv_table()?;
        }
        Ok(())
    }

    /// Undoes the writes of the savepoint at `depth` and keeps it open (`txn.rollback()`).
    pub fn rollback_savepoint(&mut self, depth: u32) -> Result<(), CoreError> {
        if depth == 0 || depth > self.savepoints {
            return Ok(());
        }
        self.internal(|conn| Ok(conn.execute_batch(&format!("ROLLBACK TO _cf_sp{depth}"))?))?;
        self.refresh_kv_table()
    }

    /// `PRAGMA max_page_count` (workerd's experimental `sql.setMaxPageCountForTest`): lets a test
    /// fill the database to reach SQLITE_FULL. Returns the limit now in force.
    pub fn set_max_page_count(&self, pages: i64) -> Result<i64, CoreError> {
        self.internal(|conn| {
            Ok(
                conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                    r.get(0)
                })?,
            )
        })
    }

    /// (page_count − freelist_count) × page_size; a fresh database has its first page.
    pub fn database_size(&self) -> Result<f64, CoreError> {
        let pragma = |name: &str| -> Result<i64, CoreError> {
            self.internal(|conn| Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?))
        };
        let pages = (pragma("page_count")? - pragma("freelist_count")?).max(1);
        Ok((pages * pragma("page_size")?) as f64)
    }

    /// The whole database as bytes (SQLite's own serialization), for the vitest integration's
    /// per-test isolation. Uncommitted writes are not part of it.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, CoreError> {
        if !self.conn.is_autocommit() {
            return Err(CoreError::Storage(
                "cannot snapshot a database with a transaction open".into(),
            ));
        }
        // SQLite runs its own PRAGMA to serialize, which the authorizer would refuse.
        self.auth.internal.store(true, Ordering::Relaxed);
        let bytes = self
            .conn
            .serialize(rusqlite::MAIN_DB)
            .map(|data| data.to_vec());
        self.auth.internal.store(false, Ordering::Relaxed);
        Ok(bytes?)
    }

    /// Replaces the whole database with `bytes` from `snapshot`; compiled statements are dropped
    /// (the JS side forgets its cache with them).
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        if !self.conn.is_autocommit() {
            self.rollback();
        }
        self.statements.clear();
        self.free.clear();
        self.savepoints = 0;
        let size = bytes.len().max(1);
        // SAFETY: a fresh sqlite3_malloc64 block of `size` bytes, which SQLite frees on close.
        let data = unsafe {
            let ptr = ffi::sqlite3_malloc64(size as u64).cast::<u8>();
            let ptr = std::ptr::NonNull::new(ptr)
                .ok_or_else(|| CoreError::Storage("out of memory restoring a snapshot".into()))?;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr(), bytes.len());
            rusqlite::serialize::OwnedData::from_raw_nonnull(ptr, bytes.len())
        };
        // SQLite reattaches `main` with its own ATTACH, which the authorizer would refuse.
        self.auth.internal.store(true, Ordering::Relaxed);
        let restored = self.conn.deserialize(rusqlite::MAIN_DB, data, false);
        self.auth.internal.store(false, Ordering::Relaxed);
        restored?;
        self.refresh_kv_table()
    }

    /// Drops every table, index, view and trigger, `_cf_KV` included, in one transaction.
    pub fn delete_all(&mut self) -> Result<(), CoreError> {
        if self.savepoints > 0 {
            return Err(CoreError::Storage(
                "Cannot call deleteAll() within a transaction".into(),
            ));
        }
        // Foreign keys can only be switched off outside a transaction, so what came before is
        // committed first; the drops are one transaction, so a crash leaves all or nothing.
        self.commit()?;
        self.internal(|conn| {
            conn.execute_batch("PRAGMA foreign_keys=OFF")?;
            let dropped = drop_everything(conn);
            let restored = conn.execute_batch("PRAGMA foreign_keys=ON");
            dropped?;
            Ok(restored?)
        })?;
        self.kv_table = false;
        Ok(())
    }

    /// `<message>[ at offset N]: <CODE>[ (extended: <EXTENDED>)]`, as workerd words SQLite errors.
    pub(super) fn last_error_message(&self) -> String {
        let db = self.handle();
        // SAFETY: `db` is this connection's live handle; errmsg is copied before any other call.
        unsafe {
            let extended = ffi::sqlite3_extended_errcode(db);
            let message = std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db))
                .to_string_lossy()
                .into_owned();
            let offset = ffi::sqlite3_error_offset(db);
            format_error(&message, offset, extended)
        }
    }

    pub(super) fn keep(&mut self, prepared: Prepared) -> u32 {
        match self.free.pop() {
            Some(handle) => {
                self.statements[handle as usize] = Some(prepared);
                handle
            }
            None => {
                self.statements.push(Some(prepared));
                (self.statements.len() - 1) as u32
            }
        }
    }

    pub(super) fn kept(&mut self, handle: u32) -> Option<&mut Prepared> {
        self.statements.get_mut(handle as usize)?.as_mut()
    }

    /// Forgets a compiled statement (the JS side evicted it from its cache).
    pub fn finalize(&mut self, handle: u32) {
        if let Some(slot) = self.statements.get_mut(handle as usize) {
            if slot.take().is_some() {
                self.free.push(handle);
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Statements must be finalized before the connection closes.
        self.statements.clear();
    }
}

/// Drops every table and view (virtual tables' shadow tables go with them) in one transaction.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn drop_everything(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    let outcome = (|| {
        let objects: Vec<(String, String)> = conn
            .prepare(
                "SELECT type, name FROM sqlite_master
                 WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            )?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        objects.iter().try_for_each(|(kind, name)| {
            let quoted = name.replace('"', "\"\"");
            let kind = if kind == "view" { "VIEW" } else { "TABLE" };
            match conn.execute_batch(&format!("DROP {kind} IF EXISTS \"{quoted}\"")) {
                Err(_) if !table_exists(conn, name) => Ok(()),
                other => other,
            }
        })
    })();
    conn.execute_batch(if outcome.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    })?;
    outcome
}

fn table_exists(conn: &Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE name = ?1",
        [name],
        |_| Ok(()),
    )
    .is_ok()
}

pub fn format_error(message: &str, offset: i32, extended: i32) -> String {
    let primary = extended & 0xff;
    let mut out = String::from(message);
    if offset >= 0 {
        out.push_str(&format!(" at offset {offset}"));
    }
    out.push_str(": ");
    out.push_str(code_name(primary));
    if extended != primary {
        out.push_str(&format!(" (extended: {})", code_name(extended)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_worded_as_workerd_does() {
        assert_eq!(
            format_error("CHECK constraint failed: x > 0", -1, 275),
            "CHECK constraint failed: x > 0: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)"
        );
        assert_eq!(
            format_error("near \"SELEC\": syntax error", 0, 1),
            "near \"SELEC\": syntax error at offset 0: SQLITE_ERROR"
        );
    }

    #[test]
    fn a_fresh_database_is_one_page_and_grows_by_a_page_per_table() {
        let db = Database::open(None, Durability::Normal).unwrap();
        assert_eq!(db.database_size().unwrap(), 4096.0);
        db.conn.execute_batch("CREATE TABLE t(x)").unwrap();
        assert_eq!(db.database_size().unwrap(), 8192.0);
    }

    #[test]
    fn delete_all_is_refused_inside_a_transaction_and_keeps_foreign_keys_on() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let depth = db.savepoint().unwrap();
        let err = db.delete_all().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot call deleteAll() within a transaction"
        );
        db.end_savepoint(depth, true).unwrap();
        db.delete_all().unwrap();
        let on: i64 = db
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(on, 1);
    }

    #[test]
    fn delete_all_drops_tables_even_with_foreign_keys() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        db.conn
            .execute_batch(
                "CREATE TABLE p(id INTEGER PRIMARY KEY);
                 CREATE TABLE c(p REFERENCES p(id));
                 INSERT INTO p VALUES (1); INSERT INTO c VALUES (1);
                 CREATE VIRTUAL TABLE f USING fts5(body);",
            )
            .unwrap();
        db.delete_all().unwrap();
        let left: i64 = db
            .conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        assert_eq!(db.database_size().unwrap(), 4096.0);
    }

    #[test]
    fn restore_brings_back_the_snapshot_and_later_writes_still_work() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        db.conn
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        let bytes = db.snapshot().unwrap();
        db.conn
            .execute_batch("INSERT INTO t VALUES (2); CREATE TABLE u(y);")
            .unwrap();
        db.restore(&bytes).unwrap();
        let rows: i64 = db
            .conn
            .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        assert!(!table_exists(&db.conn, "u"));
        db.conn.execute_batch("INSERT INTO t VALUES (5)").unwrap();
        assert_eq!(db.database_size().unwrap(), 8192.0);
        // A second restore from the same bytes after more writes.
        db.restore(&bytes).unwrap();
        let rows: i64 = db
            .conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_snapshot_is_refused_while_a_transaction_is_open() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        db.begin_write().unwrap();
        assert!(db.snapshot().is_err());
    }
}
