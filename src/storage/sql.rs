//! `sql.exec()`: runs every statement of a string in order, the last one with the bindings, and
//! returns the last one's rows in one pass (columns, a flat row-major value list, counters).
//!
//! Statements are compiled with `sqlite3_prepare_v3` directly: only it gives the tail of a
//! multi-statement string and the error offset that workerd's messages carry.

use std::ffi::{c_char, c_int, CStr};
use std::ptr;
use std::sync::atomic::Ordering;

use rusqlite::ffi;

use super::authorizer::renames_to_reserved;
use super::database::Database;
use crate::error::CoreError;

/// A value bound to a parameter, after the JS side applied Cloudflare's coercions.
pub enum Bind {
    Null,
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

pub struct ExecResult {
    /// `None`: the same names as the statement's previous run.
    pub columns: Option<Vec<String>>,
    pub values: Vec<SqlValue>,
    pub rows_read: u64,
    pub rows_written: u64,
}

impl ExecResult {
    /// One flat list for JS, since crossing one array is far cheaper than an object of arrays:
    /// the row values, then the column names if they changed, then the column count (-1 when the
    /// names are left out), rows read and rows written.
    pub fn into_flat(self) -> Vec<SqlValue> {
        let mut out = self.values;
        let count = match self.columns {
            Some(columns) => {
                let count = columns.len() as f64;
                out.extend(columns.into_iter().map(SqlValue::Text));
                count
            }
            None => -1.0,
        };
        out.push(SqlValue::Real(count));
        out.push(SqlValue::Real(self.rows_read as f64));
        out.push(SqlValue::Real(self.rows_written as f64));
        out
    }
}

/// An owned compiled statement, finalized on drop.
pub struct RawStatement(*mut ffi::sqlite3_stmt);

/// A statement kept for repeated runs, with the column names its last run reported.
pub struct Prepared {
    raw: RawStatement,
    columns: Option<Vec<String>>,
}

impl Drop for RawStatement {
    fn drop(&mut self) {
        // SAFETY: the statement is ours; the cache drops statements before the connection.
        unsafe { ffi::sqlite3_finalize(self.0) };
    }
}

const NO_STATEMENT: &str = "SQL code did not contain a statement.";
const PARAMS_NOT_LAST: &str =
    "When executing multiple SQL statements in a single call, only the last statement can have parameters.";
const WRONG_BINDINGS: &str = "Wrong number of parameter bindings for SQL query.";
const TRANSACTION_SQL: &str = "To execute a transaction, please use the state.storage.transaction() or state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements. The JavaScript API is safer because it will automatically roll back on exceptions, and because it interacts correctly with Durable Objects' automatic atomic write coalescing.";

impl Database {
    /// Compiles `sql` for repeated runs when it is exactly one statement; `None` otherwise (it then
    /// goes through `exec`, which also gives the errors of empty or multi-statement SQL).
    pub fn prepare_single(&mut self, sql: &str) -> Result<Option<u32>, CoreError> {
        let (stmt, tail) = self.prepare(sql)?;
        match stmt {
            Some(raw) if is_blank(tail) => Ok(Some(self.keep(Prepared { raw, columns: None }))),
            _ => Ok(None),
        }
    }

    /// Runs a statement compiled by `prepare_single`; column names come only when they changed
    /// since its previous run (the JS side keeps them).
    pub fn run_prepared(&mut self, handle: u32, binds: &[Bind]) -> Result<ExecResult, CoreError> {
        let prepared = self
            .kept(handle)
            .ok_or_else(|| CoreError::Storage(format!("no compiled statement {handle}")))?;
        let stmt = prepared.raw.0;
        let known = prepared.columns.take();
        let result = self.run_last(stmt, binds, known.as_deref());
        let prepared = self.kept(handle).expect("checked above");
        prepared.columns = match &result {
            Ok(ExecResult {
                columns: Some(columns),
                ..
            }) => Some(columns.clone()),
            _ => known,
        };
        result
    }

    pub fn exec(&mut self, sql: &str, binds: &[Bind]) -> Result<ExecResult, CoreError> {
        let mut rest = sql;
        let mut earlier = (0, 0);
        loop {
            let (stmt, tail) = self.prepare(rest)?;
            let Some(stmt) = stmt else {
                return Err(CoreError::Sql(NO_STATEMENT.into()));
            };
            if !holds_no_statement(tail) {
                // SAFETY: `stmt` is a live statement of this connection.
                if unsafe { ffi::sqlite3_bind_parameter_count(stmt.0) } > 0 {
                    return Err(CoreError::Sql(PARAMS_NOT_LAST.into()));
                }
                let (read, written) = self.run(stmt.0, &mut |_| Ok(()))?;
                earlier = (earlier.0 + read, earlier.1 + written);
                rest = tail;
                continue;
            }
            let mut result = self.run_last(stmt.0, binds, None)?;
            // A comment after the last statement fails, once the statement has run (spec 126).
            if !is_blank(tail) {
                return Err(CoreError::Sql(NO_STATEMENT.into()));
            }
            result.rows_read += earlier.0;
            result.rows_written += earlier.1;
            return Ok(result);
        }
    }

    /// Compiles the first statement of `sql`; `None` when it holds only whitespace or comments.
    fn prepare<'s>(&self, sql: &'s str) -> Result<(Option<RawStatement>, &'s str), CoreError> {
        let db = self.handle();
        let mut stmt = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        self.auth.saw_transaction.store(false, Ordering::Relaxed);
        self.auth.saw_alter.store(false, Ordering::Relaxed);
        // SAFETY: `sql` outlives the call and its length is given; `tail` points into it.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                sql.len() as c_int,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            if rc == ffi::SQLITE_AUTH && self.auth.saw_transaction.load(Ordering::Relaxed) {
                return Err(CoreError::Sql(TRANSACTION_SQL.into()));
            }
            return Err(CoreError::Sql(self.last_error_message()));
        }
        let consumed = if tail.is_null() {
            sql.len()
        } else {
            tail as usize - sql.as_ptr() as usize
        };
        let statement = (!stmt.is_null()).then_some(RawStatement(stmt));
        if self.auth.saw_alter.load(Ordering::Relaxed) && renames_to_reserved(&sql[..consumed]) {
            return Err(CoreError::Sql("not authorized: SQLITE_AUTH".into()));
        }
        Ok((statement, &sql[consumed..]))
    }

    /// Binds and runs the last statement. `known`: the column names its previous run reported;
    /// the result carries names only when they differ (none are built otherwise).
    fn run_last(
        &mut self,
        stmt: *mut ffi::sqlite3_stmt,
        binds: &[Bind],
        known: Option<&[String]>,
    ) -> Result<ExecResult, CoreError> {
        // SAFETY: `stmt` is a live statement of this connection, reset before reuse.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
            if ffi::sqlite3_bind_parameter_count(stmt) as usize != binds.len() {
                return Err(CoreError::Sql(WRONG_BINDINGS.into()));
            }
            for (i, bind) in binds.iter().enumerate() {
                let index = i as c_int + 1;
                let rc = match bind {
                    Bind::Null => ffi::sqlite3_bind_null(stmt, index),
                    Bind::Real(v) => ffi::sqlite3_bind_double(stmt, index, *v),
                    Bind::Text(s) => ffi::sqlite3_bind_text64(
                        stmt,
                        index,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Bind::Blob(b) => ffi::sqlite3_bind_blob64(
                        stmt,
                        index,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                    ),
                };
                if rc != ffi::SQLITE_OK {
                    return Err(CoreError::Sql(self.last_error_message()));
                }
            }
        }
        // Names are read once the first step has run: a cached statement is recompiled there
        // when the schema changed since (ALTER TABLE … ADD COLUMN and `SELECT *`, spec 154).
        let mut columns: Option<Option<Vec<String>>> = None;
        let mut values = Vec::new();
        let (rows_read, rows_written) = self.run(stmt, &mut |stmt| {
            columns.get_or_insert_with(|| changed_columns(stmt, known));
            // SAFETY: `stmt` is on a row.
            let width = unsafe { ffi::sqlite3_column_count(stmt) };
            for col in 0..width {
                values.push(column_value(stmt, col));
            }
            Ok(())
        })?;
        Ok(ExecResult {
            columns: columns.unwrap_or_else(|| changed_columns(stmt, known)),
            values,
            rows_read,
            rows_written,
        })
    }

    /// Steps `stmt` to completion inside the implicit transaction when it writes; returns
    /// (rows read, rows changed). Stock SQLite has no rows-read counter (workerd patches one in):
    /// rows visited by table scans, or the rows produced when that is more, come closest.
    fn run(
        &mut self,
        stmt: *mut ffi::sqlite3_stmt,
        on_row: &mut dyn FnMut(*mut ffi::sqlite3_stmt) -> Result<(), CoreError>,
    ) -> Result<(u64, u64), CoreError> {
        let db = self.handle();
        // SAFETY: `stmt` and `db` are live; the statement is reset on every exit.
        unsafe {
            if ffi::sqlite3_stmt_readonly(stmt) == 0 {
                self.begin_write()?;
            }
            let before = ffi::sqlite3_total_changes64(db);
            let mut rows = 0;
            loop {
                match ffi::sqlite3_step(stmt) {
                    ffi::SQLITE_ROW => {
                        rows += 1;
                        on_row(stmt)?;
                    }
                    ffi::SQLITE_DONE => break,
                    _ => {
                        let message = self.last_error_message();
                        ffi::sqlite3_reset(stmt);
                        return Err(CoreError::Sql(message));
                    }
                }
            }
            ffi::sqlite3_reset(stmt);
            let written = (ffi::sqlite3_total_changes64(db) - before).max(0) as u64;
            // A scan's first row is positioned by Rewind, which the counter does not count.
            let scanned =
                ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_FULLSCAN_STEP, 1) as u64;
            let visited = if scanned > 0 { scanned + 1 } else { 0 };
            Ok((rows.max(visited), written))
        }
    }
}

/// Whether `sql` is only whitespace, comments and semicolons: nothing SQLite would run.
fn holds_no_statement(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b';' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |p| i + 2 + p + 2);
            }
            _ => return false,
        }
    }
    true
}

fn is_blank(sql: &str) -> bool {
    sql.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// The statement's column names, or `None` when they are `known` already.
fn changed_columns(stmt: *mut ffi::sqlite3_stmt, known: Option<&[String]>) -> Option<Vec<String>> {
    if let Some(known) = known {
        // SAFETY: `stmt` is live; the names are only compared.
        let same = unsafe {
            ffi::sqlite3_column_count(stmt) as usize == known.len()
                && known.iter().enumerate().all(|(i, name)| {
                    let ptr = ffi::sqlite3_column_name(stmt, i as c_int);
                    !ptr.is_null() && CStr::from_ptr(ptr).to_bytes() == name.as_bytes()
                })
        };
        if same {
            return None;
        }
    }
    Some(column_names(stmt))
}

fn column_names(stmt: *mut ffi::sqlite3_stmt) -> Vec<String> {
    // SAFETY: `stmt` is live; names are copied out before the next call on it.
    unsafe {
        (0..ffi::sqlite3_column_count(stmt))
            .map(|i| {
                let name = ffi::sqlite3_column_name(stmt, i);
                if name.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                }
            })
            .collect()
    }
}

fn column_value(stmt: *mut ffi::sqlite3_stmt, col: c_int) -> SqlValue {
    // SAFETY: `stmt` is on a row; text and blob bytes are copied before the next step.
    unsafe {
        match ffi::sqlite3_column_type(stmt, col) {
            ffi::SQLITE_INTEGER => SqlValue::Integer(ffi::sqlite3_column_int64(stmt, col)),
            ffi::SQLITE_FLOAT => SqlValue::Real(ffi::sqlite3_column_double(stmt, col)),
            ffi::SQLITE_TEXT => {
                let ptr = ffi::sqlite3_column_text(stmt, col);
                let len = ffi::sqlite3_column_bytes(stmt, col) as usize;
                let bytes = if ptr.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(ptr, len)
                };
                SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
            }
            ffi::SQLITE_BLOB => {
                let ptr = ffi::sqlite3_column_blob(stmt, col) as *const u8;
                let len = ffi::sqlite3_column_bytes(stmt, col) as usize;
                let bytes = if ptr.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(ptr, len)
                };
                SqlValue::Blob(bytes.to_vec())
            }
            _ => SqlValue::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Durability;

    fn exec(db: &mut Database, sql: &str) -> Result<ExecResult, CoreError> {
        db.exec(sql, &[])
    }

    #[test]
    fn rename_to_a_reserved_name_is_refused_and_others_work() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        exec(&mut db, "CREATE TABLE t(a)").unwrap();
        exec(&mut db, "ALTER TABLE t RENAME TO u").unwrap();
        let err = exec(&mut db, "ALTER TABLE u RENAME TO _cf_x")
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "not authorized: SQLITE_AUTH");
    }

    #[test]
    fn alter_table_works_and_temp_objects_are_refused() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        exec(&mut db, "CREATE TABLE a(x INTEGER)").unwrap();
        exec(&mut db, "ALTER TABLE a ADD COLUMN y INTEGER").unwrap();
        exec(&mut db, "ALTER TABLE a RENAME COLUMN y TO z").unwrap();
        exec(&mut db, "ALTER TABLE a DROP COLUMN z").unwrap();
        let err = exec(&mut db, "CREATE TABLE temp.t(a)").err().unwrap();
        assert_eq!(err.to_string(), "not authorized: SQLITE_AUTH");
    }

    #[test]
    fn math_functions_are_compiled_in() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let result = exec(&mut db, "SELECT sqrt(16) AS r").unwrap();
        assert!(matches!(result.values[..], [SqlValue::Real(r)] if r == 4.0));
    }
}
