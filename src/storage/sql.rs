//! `sql.exec()`: runs every statement of a string in order, the last one with the bindings, and
//! returns the last one's rows in one pass (columns, a flat row-major value list, counters).
//!
//! Statements are compiled with `sqlite3_prepare_v3` directly: only it gives the tail of a
//! multi-statement string and the error offset that workerd's messages carry.
//!
//! `rowsWritten` follows workerd's patched SQLite, which counts b-tree writes (`WritePlan`).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{ffi, Connection, OptionalExtension};

use super::authorizer::{renames_to_reserved, Write};
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
    plan: Option<Arc<WritePlan>>,
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
            Some(raw) if is_blank(tail) => {
                let plan = self.write_plan(&sql[..sql.len() - tail.len()])?;
                Ok(Some(self.keep(Prepared {
                    raw,
                    columns: None,
                    plan,
                })))
            }
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
        let mut plan = prepared.plan.take();
        let result = self.run_last(stmt, &mut plan, binds, known.as_deref());
        let prepared = self.kept(handle).expect("checked above");
        prepared.plan = plan;
        prepared.columns = match &result {
            Ok(ExecResult {
                columns: Some(columns),
                ..
            }) => Some(columns.clone()),
            _ => known,
        };
        result
    }

    /// The counters are the last statement's alone, as in workerd.
    pub fn exec(&mut self, sql: &str, binds: &[Bind]) -> Result<ExecResult, CoreError> {
        let mut rest = sql;
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
                self.run(stmt.0, &mut None, &mut |_| Ok(()))?;
                rest = tail;
                continue;
            }
            let mut plan = self.write_plan(&rest[..rest.len() - tail.len()])?;
            let result = self.run_last(stmt.0, &mut plan, binds, None)?;
            // A comment after the last statement fails, once the statement has run (spec 126).
            if !is_blank(tail) {
                return Err(CoreError::Sql(NO_STATEMENT.into()));
            }
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
        self.auth.writes.lock().clear();
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
        plan: &mut Option<Arc<WritePlan>>,
        binds: &[Bind],
        known: Option<&[String]>,
    ) -> Result<ExecResult, CoreError> {
        let result = self
            .bind(stmt, binds)
            .and_then(|()| self.step_all(stmt, plan, known));
        // The text and blobs were bound without a copy (SQLITE_STATIC): they are the caller's, so
        // the statement lets go of them before this returns, whatever happened.
        // SAFETY: `stmt` is a live statement of this connection.
        unsafe { ffi::sqlite3_clear_bindings(stmt) };
        result
    }

    /// Binds every parameter of `stmt`, without copying text or blobs (see `run_last`).
    fn bind(&self, stmt: *mut ffi::sqlite3_stmt, binds: &[Bind]) -> Result<(), CoreError> {
        // SAFETY: `stmt` is a live statement of this connection, reset before reuse.
        unsafe {
            ffi::sqlite3_reset(stmt);
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
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Bind::Blob(b) => ffi::sqlite3_bind_blob64(
                        stmt,
                        index,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_STATIC(),
                    ),
                };
                if rc != ffi::SQLITE_OK {
                    return Err(CoreError::Sql(self.last_error_message()));
                }
            }
        }
        Ok(())
    }

    /// Runs the bound statement, collecting its rows.
    fn step_all(
        &mut self,
        stmt: *mut ffi::sqlite3_stmt,
        plan: &mut Option<Arc<WritePlan>>,
        known: Option<&[String]>,
    ) -> Result<ExecResult, CoreError> {
        // Names are read once the first step has run: a cached statement is recompiled there
        // when the schema changed since (ALTER TABLE … ADD COLUMN and `SELECT *`, spec 154).
        let mut columns: Option<Option<Vec<String>>> = None;
        let mut values = Vec::new();
        let (rows_read, rows_written) = self.run(stmt, plan, &mut |stmt| {
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
    /// (rows read, rows written). Stock SQLite has no rows-read counter (workerd patches one in):
    /// rows visited by table scans, or the rows produced when that is more, come closest.
    /// `plan`: what the statement writes (rebuilt here when SQLite recompiled the statement).
    fn run(
        &mut self,
        stmt: *mut ffi::sqlite3_stmt,
        plan: &mut Option<Arc<WritePlan>>,
        on_row: &mut dyn FnMut(*mut ffi::sqlite3_stmt) -> Result<(), CoreError>,
    ) -> Result<(u64, u64), CoreError> {
        let db = self.handle();
        // SAFETY: `stmt` and `db` are live; the statement is reset on every exit.
        unsafe {
            if ffi::sqlite3_stmt_readonly(stmt) == 0 {
                self.begin_write()?;
            }
            let schema_rows = match plan {
                Some(plan) if !plan.creates.is_empty() => self.internal(|conn| {
                    Ok(conn
                        .prepare_cached("SELECT ifnull(max(rowid), 0) FROM sqlite_master")?
                        .query_row([], |row| row.get::<_, i64>(0))?)
                })?,
                _ => 0,
            };
            let recompiled = match plan {
                Some(_) => ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0),
                None => 0,
            };
            let tallied = plan.as_ref().is_some_and(|plan| plan.needs_tally());
            if tallied {
                Tally::start(db, plan.as_ref().expect("checked above"));
            }
            let before = ffi::sqlite3_total_changes64(db);
            let mut rows = 0;
            loop {
                match ffi::sqlite3_step(stmt) {
                    ffi::SQLITE_ROW => {
                        rows += 1;
                        if let Err(err) = on_row(stmt) {
                            Tally::stop(tallied);
                            ffi::sqlite3_reset(stmt);
                            return Err(err);
                        }
                    }
                    ffi::SQLITE_DONE => break,
                    _ => {
                        Tally::stop(tallied);
                        let message = self.last_error_message();
                        ffi::sqlite3_reset(stmt);
                        return Err(CoreError::Sql(message));
                    }
                }
            }
            Tally::stop(tallied);
            let changed = (ffi::sqlite3_total_changes64(db) - before).max(0) as u64;
            ffi::sqlite3_reset(stmt);
            if plan.is_some()
                && ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0) != recompiled
            {
                self.replan(stmt, plan);
            }
            let written = match plan.as_deref() {
                None => changed,
                Some(plan) => {
                    // `changes()` is left as it was by statements that count none (DROP TABLE).
                    let top_level = (ffi::sqlite3_changes64(db).max(0) as u64).min(changed);
                    if tallied {
                        TALLY.with_borrow(|tally| {
                            self.written(plan, Some(tally), changed, top_level, schema_rows)
                        })?
                    } else {
                        self.written(plan, None, changed, top_level, schema_rows)?
                    }
                }
            };
            // A scan's first row is positioned by Rewind, which the counter does not count.
            let scanned =
                ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_FULLSCAN_STEP, 1) as u64;
            let visited = if scanned > 0 { scanned + 1 } else { 0 };
            Ok((rows.max(visited), written))
        }
    }

    /// Makes `plan` again when SQLite recompiled `stmt` because the schema changed since (an
    /// index or trigger may have come or gone). DDL keeps its plan: what it creates is fixed by
    /// its text, which would not compile again once it ran.
    fn replan(&self, stmt: *mut ffi::sqlite3_stmt, plan: &mut Option<Arc<WritePlan>>) {
        if plan
            .as_ref()
            .is_some_and(|p| !p.creates.is_empty() || p.adds_column)
        {
            return;
        }
        // SAFETY: `stmt` is live; its text is copied before anything else runs.
        let sql = unsafe { CStr::from_ptr(ffi::sqlite3_sql(stmt)) }
            .to_string_lossy()
            .into_owned();
        if let Ok((Some(_), tail)) = self.prepare(&sql) {
            if let Ok(fresh) = self.write_plan(&sql[..sql.len() - tail.len()]) {
                *plan = fresh;
            }
        }
    }

    /// What the statement whose text is `sql`, compiled last, writes.
    fn write_plan(&self, sql: &str) -> Result<Option<Arc<WritePlan>>, CoreError> {
        let writes = std::mem::take(&mut *self.auth.writes.lock());
        self.plan_of(writes, sql)
    }

    fn plan_of(&self, writes: Vec<Write>, sql: &str) -> Result<Option<Arc<WritePlan>>, CoreError> {
        if writes.is_empty() {
            return Ok(None);
        }
        // Per table: whether rows are inserted, and the columns updated.
        let mut tables: Vec<(String, bool, Vec<String>)> = Vec::new();
        let mut creates = Vec::new();
        let mut adds_column = false;
        let mut triggered = false;
        for write in writes {
            let (table, column, inserts, trigger) = match write {
                Write::Insert { table, trigger } => (table, None, true, trigger),
                Write::Update {
                    table,
                    column,
                    trigger,
                } => (table, Some(column), false, trigger),
                Write::Delete { table, trigger } => (table, None, false, trigger),
                Write::AlterTable { .. } => {
                    adds_column = adds_column || alter_adds_column(sql);
                    continue;
                }
                // DROP deletes the table's rows too, uncounted.
                Write::Drop => return Ok(Some(Arc::new(WritePlan::default()))),
                create => {
                    creates.push(create);
                    continue;
                }
            };
            let at = match tables
                .iter()
                .position(|(t, ..)| t.eq_ignore_ascii_case(&table))
            {
                Some(at) => at,
                None => {
                    tables.push((table, false, Vec::new()));
                    tables.len() - 1
                }
            };
            triggered |= trigger;
            tables[at].1 |= inserts;
            if let Some(column) = column {
                tables[at].2.push(column);
            }
        }
        let targets = self.internal(|conn| {
            let mut targets = Vec::with_capacity(tables.len());
            for (name, inserts, columns) in tables {
                if let Some(shape) = TableShape::read(conn, &name)? {
                    targets.push(shape.target(name, inserts, &columns));
                }
            }
            Ok(targets)
        })?;
        Ok(Some(Arc::new(WritePlan {
            targets,
            creates,
            adds_column,
            triggered,
        })))
    }

    /// Rows written by one run, from what the update hook saw (`tally`, if the plan needed it),
    /// the rows changed (`changed`: `total_changes`, triggers included; `top_level`: `changes()`)
    /// and, for DDL, the `sqlite_master` rows past `schema_rows`.
    fn written(
        &self,
        plan: &WritePlan,
        tally: Option<&Tally>,
        changed: u64,
        top_level: u64,
        schema_rows: i64,
    ) -> Result<u64, CoreError> {
        let mut written = match tally {
            Some(tally) => self.tallied_rows(plan, tally, changed, top_level)?,
            // One table, rows only inserted or only updated (or deleted): each writes the same.
            None => plan.targets.first().map_or(0, |t| {
                top_level
                    * (1 + if t.inserts {
                        t.per_insert
                    } else {
                        t.per_update
                    })
            }),
        };
        if plan.adds_column {
            written += 1;
        }
        if !plan.creates.is_empty() {
            written += self.internal(|conn| created_rows(conn, &plan.creates, schema_rows))?;
        }
        Ok(written)
    }

    fn tallied_rows(
        &self,
        plan: &WritePlan,
        tally: &Tally,
        changed: u64,
        top_level: u64,
    ) -> Result<u64, CoreError> {
        let targets = &plan.targets;
        let single = targets.len() == 1 && !plan.triggered;
        // Rows changed by the statement itself. `changed` also holds those of the statements a
        // virtual table's module runs meanwhile (FTS5 writing its shadow tables, even for a
        // statement on another table when it flushes): without triggers the statement's own count
        // is exact; with them, the module's rows the update hook saw are taken off.
        let mut written = if targets.is_empty() {
            0
        } else if single || targets.iter().all(|t| t.is_virtual) {
            top_level
        } else {
            changed.saturating_sub(tally.foreign)
        };
        // Rows of WITHOUT ROWID tables reach no update hook: they are the changes it did not see.
        let unseen = if single {
            top_level.saturating_sub(tally.events - tally.foreign)
        } else {
            changed.saturating_sub(tally.events)
        };
        let mut unseen_counted = false;
        let counted = tally.plan.as_ref().map_or(&[][..], |p| &p.targets[..]);
        for (counted, counts) in counted.iter().zip(&tally.counts) {
            // By name: the plan may have been made again since the counting started.
            let Some(target) = targets.iter().find(|t| t.name == counted.name) else {
                continue;
            };
            written += counts.inserts * target.per_insert + counts.updates * target.per_update;
            if !target.rowid && !target.is_virtual && !unseen_counted {
                let per_row = if target.inserts {
                    target.per_insert
                } else {
                    target.per_update
                };
                written += unseen * per_row;
                unseen_counted = per_row > 0;
            }
            if target.autoincrement && counts.inserts > 0 {
                // `sqlite_sequence` is written once when the statement raised the table's
                // largest rowid, which it then holds.
                let seq = self.internal(|conn| {
                    Ok(conn
                        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = ?1")?
                        .query_row([&target.name], |row| row.get::<_, i64>(0))
                        .optional()?)
                })?;
                if seq == Some(counts.max_rowid) {
                    written += 1;
                }
            }
        }
        Ok(written)
    }
}

/// What a statement writes, read from the schema when it compiled, so that one run counts rows
/// written as workerd's patched SQLite does: one per table row inserted, updated or deleted, one
/// per index entry inserted (entries deleted are not counted), none for temp b-trees, and the
/// `sqlite_master` rows of DDL. Stock SQLite counts rows changed; the update hook tells per table
/// how many rows were inserted and updated, and the plan how many index entries each one writes.
#[derive(Default)]
struct WritePlan {
    targets: Vec<Target>,
    /// CREATE TABLE, INDEX, VIEW, TRIGGER, VIRTUAL TABLE.
    creates: Vec<Write>,
    /// ALTER TABLE … ADD COLUMN rewrites the table's `sqlite_master` row.
    adds_column: bool,
    /// Triggers write too: rows changed then include theirs.
    triggered: bool,
}

impl WritePlan {
    /// Whether rows must be counted per table as they are written (the update hook): not for
    /// one table without triggers whose rows all write the same, the common case.
    fn needs_tally(&self) -> bool {
        match &self.targets[..] {
            [] => false,
            [t] if !self.triggered => (t.inserts && t.updates) || t.autoincrement || t.is_virtual,
            _ => true,
        }
    }
}

/// A table the statement writes (trigger bodies and foreign key actions included).
struct Target {
    name: String,
    /// False for WITHOUT ROWID tables, which the update hook does not report.
    rowid: bool,
    is_virtual: bool,
    autoincrement: bool,
    inserts: bool,
    updates: bool,
    /// Index entries written per row inserted.
    per_insert: u64,
    /// Index entries written per row updated: those of the indexes on an updated column.
    per_update: u64,
}

/// What the counting needs of one table's schema.
struct TableShape {
    rowid: bool,
    is_virtual: bool,
    autoincrement: bool,
    /// The column that is the rowid (INTEGER PRIMARY KEY), or the PRIMARY KEY of a WITHOUT
    /// ROWID table: changing it rewrites every index entry.
    key: Vec<String>,
    indexes: Vec<IndexShape>,
}

struct IndexShape {
    /// Key columns; `None` for an expression.
    columns: Vec<Option<String>>,
    /// Expressions and a partial index's WHERE may use any column: its text is checked.
    sql: Option<String>,
    partial: bool,
}

impl TableShape {
    fn read(conn: &Connection, table: &str) -> rusqlite::Result<Option<TableShape>> {
        let found = conn
            .prepare_cached(
                "SELECT t.type, t.wr, m.sql FROM pragma_table_list(?1) AS t
                 LEFT JOIN sqlite_master AS m ON m.type = 'table' AND m.name = t.name
                 WHERE t.schema = 'main'",
            )?
            .query_row([table], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        let Some((kind, without_rowid, sql)) = found else {
            return Ok(None);
        };
        if kind == "view" {
            return Ok(None);
        }
        let is_virtual = kind == "virtual";
        let autoincrement = sql.is_some_and(|sql| contains_word(&sql, "AUTOINCREMENT"));
        let mut pk: Vec<(String, String)> = Vec::new();
        let mut columns = conn.prepare_cached(
            "SELECT name, type FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
        )?;
        let mut rows = columns.query([table])?;
        while let Some(row) = rows.next()? {
            pk.push((row.get(0)?, row.get(1)?));
        }
        let key = if without_rowid {
            pk.into_iter().map(|(name, _)| name).collect()
        } else {
            match &pk[..] {
                [(name, kind)] if kind.eq_ignore_ascii_case("INTEGER") => vec![name.clone()],
                _ => Vec::new(),
            }
        };
        let mut indexes: Vec<(String, IndexShape)> = Vec::new();
        let mut list = conn.prepare_cached(
            "SELECT l.name, l.partial, i.name, m.sql
             FROM pragma_index_list(?1) AS l JOIN pragma_index_info(l.name) AS i
             LEFT JOIN sqlite_master AS m ON m.type = 'index' AND m.name = l.name
             WHERE NOT (l.origin = 'pk' AND ?2) ORDER BY l.seq, i.seqno",
        )?;
        let mut rows = list.query((table, without_rowid))?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let column: Option<String> = row.get(2)?;
            if indexes.last().is_none_or(|(last, _)| *last != name) {
                let index = IndexShape {
                    columns: Vec::new(),
                    partial: row.get(1)?,
                    sql: row.get(3)?,
                };
                indexes.push((name, index));
            }
            indexes
                .last_mut()
                .expect("pushed above")
                .1
                .columns
                .push(column);
        }
        Ok(Some(TableShape {
            rowid: !without_rowid && !is_virtual,
            is_virtual,
            autoincrement,
            key,
            indexes: indexes.into_iter().map(|(_, index)| index).collect(),
        }))
    }

    /// `columns`: the columns an UPDATE of this table sets (SQLite's rule in `sqlite3Update`).
    fn target(self, name: String, inserts: bool, columns: &[String]) -> Target {
        let set = |column: &str| columns.iter().any(|c| c.eq_ignore_ascii_case(column));
        let key_changes = set("ROWID") || self.key.iter().any(|k| set(k));
        let per_update = if columns.is_empty() {
            0
        } else {
            self.indexes
                .iter()
                .filter(|index| {
                    key_changes
                        || index.columns.iter().flatten().any(|c| set(c))
                        || ((index.partial || index.columns.iter().any(Option::is_none))
                            && index
                                .sql
                                .as_deref()
                                .is_some_and(|sql| columns.iter().any(|c| contains_word(sql, c))))
                })
                .count() as u64
        };
        Target {
            name,
            rowid: self.rowid,
            is_virtual: self.is_virtual,
            autoincrement: self.autoincrement,
            inserts,
            updates: !columns.is_empty(),
            per_insert: self.indexes.len() as u64,
            per_update,
        }
    }
}

/// Rows a DDL statement wrote: two for a table or view (its `sqlite_master` row is inserted,
/// then completed) plus one per index SQLite made for its constraints and its rows (CREATE TABLE
/// … AS SELECT); one per trigger; one per index plus one per entry. Only objects the statement
/// created count (not those of IF NOT EXISTS, nor FTS5's shadow tables): `sqlite_master` rows
/// past `schema_rows`.
fn created_rows(conn: &Connection, creates: &[Write], schema_rows: i64) -> Result<u64, CoreError> {
    let mut new = conn
        .prepare_cached("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE rowid > ?1")?;
    let new: Vec<(String, String, String, Option<String>)> = new
        .query_map([schema_rows], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let is_new = |kind: &str, name: &str| {
        new.iter()
            .any(|(k, n, ..)| k == kind && n.eq_ignore_ascii_case(name))
    };
    let count = |table: &str, filter: Option<&str>| -> rusqlite::Result<u64> {
        let sql = format!(
            "SELECT count(*) FROM \"{}\"{}",
            table.replace('"', "\"\""),
            filter.map(|w| format!(" WHERE {w}")).unwrap_or_default()
        );
        conn.query_row(&sql, [], |row| row.get::<_, i64>(0))
            .map(|n| n as u64)
    };
    let mut written = 0;
    for create in creates {
        written += match create {
            Write::CreateTable { table } if is_new("table", table) => {
                let indexes = new
                    .iter()
                    .filter(|(k, _, t, _)| k == "index" && t.eq_ignore_ascii_case(table))
                    .count() as u64;
                let sequence = if is_new("table", "sqlite_sequence") {
                    2
                } else {
                    0
                };
                2 + indexes + sequence + count(table, None)?
            }
            Write::CreateView { view } if is_new("view", view) => 2,
            Write::CreateVtable { table } if is_new("table", table) => 2,
            Write::CreateTrigger { trigger } if is_new("trigger", trigger) => 1,
            Write::CreateIndex { index, table } if is_new("index", index) => {
                let sql = new
                    .iter()
                    .find(|(_, n, ..)| n.eq_ignore_ascii_case(index))
                    .and_then(|(.., sql)| sql.as_deref());
                1 + count(table, sql.and_then(partial_where))?
            }
            _ => 0,
        };
    }
    Ok(written)
}

/// The WHERE clause of a CREATE INDEX statement: what follows the last `WHERE` outside
/// parentheses and quotes.
fn partial_where(sql: &str) -> Option<&str> {
    let bytes = sql.as_bytes();
    let (mut depth, mut quote, mut found) = (0usize, None, None);
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"' | b'`') => quote = Some(b),
            (None, b'[') => quote = Some(b']'),
            (None, b'(') => depth += 1,
            (None, b')') => depth = depth.saturating_sub(1),
            (None, _) if depth == 0 && word_at(sql, i, "WHERE") => found = Some(i + 5),
            _ => {}
        }
    }
    found.map(|at| &sql[at..])
}

/// Whether `word` (an identifier) occurs in `text` as a whole word, in any case.
fn contains_word(text: &str, word: &str) -> bool {
    !word.is_empty() && (0..text.len()).any(|i| word_at(text, i, word))
}

fn word_at(text: &str, at: usize, word: &str) -> bool {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    let end = at + word.len();
    end <= bytes.len()
        && bytes[at..end].eq_ignore_ascii_case(word.as_bytes())
        && (at == 0 || !ident(bytes[at - 1]))
        && bytes.get(end).is_none_or(|&b| !ident(b))
}

/// Whether an ALTER TABLE statement adds a column (the other forms rewrite several rows).
fn alter_adds_column(sql: &str) -> bool {
    sql.split_whitespace()
        .skip(3)
        .any(|w| w.eq_ignore_ascii_case("add"))
}

/// What the update hook saw during one run: per target of the plan, rows inserted and updated.
/// Hooks run on the thread that steps the statement, so the tally is that thread's.
#[derive(Default)]
struct Tally {
    /// Set while counting.
    running: bool,
    /// The plan counted for: `counts` follows its targets.
    plan: Option<Arc<WritePlan>>,
    counts: Vec<Counts>,
    /// Every row the hook reported (each is also a row changed).
    events: u64,
    /// Rows of tables the statement does not name: those of a virtual table module's statements.
    foreign: u64,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    inserts: u64,
    updates: u64,
    max_rowid: i64,
}

thread_local! {
    static TALLY: RefCell<Tally> = RefCell::new(Tally::default());
}

impl Tally {
    /// Starts counting for `plan`; the hook is (re)installed, which is a pointer swap.
    fn start(db: *mut ffi::sqlite3, plan: &Arc<WritePlan>) {
        TALLY.with_borrow_mut(|tally| {
            tally.counts.clear();
            tally.counts.resize(plan.targets.len(), Counts::default());
            tally.events = 0;
            tally.foreign = 0;
            tally.plan = Some(plan.clone());
            tally.running = true;
        });
        // SAFETY: `db` is live; the hook keeps no pointer of ours.
        unsafe { ffi::sqlite3_update_hook(db, Some(on_update), ptr::null_mut()) };
    }

    /// Stops counting, if `started`: the hook ignores what follows (the runtime's statements).
    fn stop(started: bool) {
        if started {
            TALLY.with_borrow_mut(|tally| tally.running = false);
        }
    }
}

unsafe extern "C" fn on_update(
    _: *mut c_void,
    op: c_int,
    _db: *const c_char,
    table: *const c_char,
    rowid: ffi::sqlite3_int64,
) {
    // SAFETY: SQLite passes the table's name, valid for the call.
    let table = unsafe { CStr::from_ptr(table) }.to_bytes();
    let _ = TALLY.try_with(|tally| {
        let Ok(mut tally) = tally.try_borrow_mut() else {
            return;
        };
        let tally = &mut *tally;
        let Some(plan) = tally.plan.as_ref().filter(|_| tally.running) else {
            return;
        };
        tally.events += 1;
        let found = plan
            .targets
            .iter()
            .position(|t| t.name.as_bytes().eq_ignore_ascii_case(table));
        let Some(counts) = found.and_then(|at| tally.counts.get_mut(at)) else {
            tally.foreign += 1;
            return;
        };
        match op {
            ffi::SQLITE_INSERT => {
                counts.inserts += 1;
                counts.max_rowid = counts.max_rowid.max(rowid);
            }
            ffi::SQLITE_UPDATE => counts.updates += 1,
            _ => {}
        }
    });
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

    /// Rows written by each statement, run one by one (as separate `exec` calls).
    fn written(db: &mut Database, statements: &[&str]) -> Vec<u64> {
        statements
            .iter()
            .map(|sql| exec(db, sql).unwrap().rows_written)
            .collect()
    }

    const USERS: &str = "CREATE TABLE users (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE) STRICT";

    // The expected values in these tests are workerd's (see `__test__/sql.test.ts`).

    #[test]
    fn rows_written_count_index_entries_of_inserted_and_updated_rows() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let counts = written(
            &mut db,
            &[
                USERS,
                "INSERT INTO users (id, name, email) VALUES ('u1', 'n1', 'e1')",
                "INSERT INTO users (id, name, email) VALUES ('u2', 'n', 'e2'), ('u3', 'n', 'e3'), ('u4', 'n', 'e4')",
                "UPDATE users SET name = 'x' WHERE id = 'u1'",
                "UPDATE users SET email = 'x' WHERE id = 'u1'",
                "UPDATE users SET email = 'y', id = 'v1' WHERE id = 'u1'",
                "UPDATE users SET rowid = 100 WHERE id = 'u2'",
                "DELETE FROM users WHERE id = 'u3'",
                "INSERT OR REPLACE INTO users (id, name, email) VALUES ('u4', 'nn', 'ee')",
                "INSERT INTO users (id, name, email) VALUES ('v1', 'a', 'b') ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                "INSERT INTO users (id, name, email) VALUES ('v1', 'a', 'c'), ('w', 'a', 'd') ON CONFLICT(id) DO UPDATE SET email = excluded.email",
                "INSERT OR IGNORE INTO users (id, name, email) VALUES ('w', 'a', 'b')",
                "DELETE FROM users",
            ],
        );
        assert_eq!(counts, [4, 3, 9, 1, 2, 3, 3, 1, 3, 1, 5, 0, 4]);
    }

    #[test]
    fn rows_written_follow_created_indexes_expressions_and_without_rowid_tables() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let counts = written(
            &mut db,
            &[
                "CREATE TABLE t(a, b, c)",
                "INSERT INTO t VALUES (1, 2, 3)",
                "CREATE INDEX ta ON t(a)",
                "CREATE INDEX te ON t(b + c)",
                "INSERT INTO t VALUES (1, 2, 3)",
                "UPDATE t SET c = 9",
                "UPDATE t SET a = a",
                "CREATE TABLE w(k TEXT PRIMARY KEY, v) WITHOUT ROWID",
                "INSERT INTO w VALUES ('a', 1), ('b', 2)",
                "CREATE INDEX wv ON w(v)",
                "INSERT INTO w VALUES ('c', 1)",
                "UPDATE w SET v = 4 WHERE k = 'c'",
                "UPDATE w SET k = 'z' WHERE k = 'c'",
                "INSERT INTO w VALUES ('a', 1), ('d', 1) ON CONFLICT(k) DO UPDATE SET v = 7",
                "DELETE FROM w WHERE k = 'b'",
            ],
        );
        assert_eq!(counts, [2, 1, 2, 2, 3, 4, 4, 2, 2, 3, 2, 2, 2, 4, 1]);
    }

    #[test]
    fn rows_written_include_triggers_foreign_key_actions_and_autoincrement() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let counts = written(
            &mut db,
            &[
                "CREATE TABLE t(a, b UNIQUE)",
                "CREATE TABLE log(x)",
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END",
                "INSERT INTO t VALUES (1, 2), (3, 4)",
                "CREATE TABLE p(id INTEGER PRIMARY KEY)",
                "CREATE TABLE c(id INTEGER PRIMARY KEY, p REFERENCES p(id) ON DELETE CASCADE ON UPDATE CASCADE)",
                "CREATE INDEX cp ON c(p)",
                "INSERT INTO p VALUES (1), (2)",
                "INSERT INTO c VALUES (10, 1), (11, 2)",
                "UPDATE p SET id = 3 WHERE id = 2",
                "DELETE FROM p",
                "CREATE TABLE r(id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
                "INSERT INTO r(v) VALUES (1)",
                "INSERT INTO r(v) VALUES (1), (2)",
                "INSERT OR IGNORE INTO r(id, v) VALUES (1, 1)",
                "INSERT INTO r(id, v) VALUES (0, 1)",
            ],
        );
        assert_eq!(counts, [3, 2, 1, 6, 2, 2, 1, 2, 4, 3, 4, 4, 2, 3, 0, 1]);
    }

    #[test]
    fn rows_written_by_ddl_are_the_schema_rows_and_index_entries_made() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let counts = written(
            &mut db,
            &[
                "CREATE TABLE a(x UNIQUE)",
                "CREATE TABLE IF NOT EXISTS a(x UNIQUE)",
                "INSERT INTO a VALUES (1), (2), (3)",
                "CREATE INDEX ai ON a(x)",
                "CREATE INDEX IF NOT EXISTS ai ON a(x)",
                "CREATE INDEX ap ON a(x) WHERE x > 1",
                "CREATE TABLE b AS SELECT * FROM a",
                "CREATE VIEW v AS SELECT 1",
                "CREATE TRIGGER tt AFTER INSERT ON a BEGIN SELECT 1; END",
                "ALTER TABLE a ADD COLUMN z DEFAULT 5",
                "DROP TABLE a",
                "CREATE VIRTUAL TABLE f USING fts5(body)",
            ],
        );
        assert_eq!(counts, [3, 0, 6, 4, 0, 3, 5, 2, 1, 1, 0, 2]);
    }

    #[test]
    fn rows_written_of_virtual_tables_leave_out_their_shadow_tables() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let counts = written(
            &mut db,
            &[
                "CREATE VIRTUAL TABLE f USING fts5(body)",
                "INSERT INTO f VALUES ('hello world'), ('hi')",
                "CREATE TABLE w(k PRIMARY KEY, v) WITHOUT ROWID",
                "CREATE INDEX wv ON w(v)",
                // FTS5 flushes its pending rows into its shadow tables during this statement.
                "INSERT INTO w VALUES (1, 1), (2, 1)",
                "DELETE FROM f",
            ],
        );
        assert_eq!(counts, [2, 2, 2, 1, 4, 2]);
        // A DROP is not a count of changes, whatever FTS5 flushes meanwhile.
        exec(&mut db, "INSERT INTO f VALUES ('pending')").unwrap();
        assert_eq!(written(&mut db, &["DROP TABLE w"]), [0]);
    }

    #[test]
    fn temp_btrees_are_not_written_and_only_the_last_statement_counts() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let counts = written(
            &mut db,
            &[
                "CREATE TABLE t(a, b)",
                "INSERT INTO t VALUES (1, 2), (3, 4), (1, 5)",
                "SELECT DISTINCT a FROM t WHERE b IN (2, 4, 7) ORDER BY a",
                "INSERT INTO t SELECT DISTINCT a, a FROM t ORDER BY a",
                "CREATE TABLE u(a UNIQUE); INSERT INTO u VALUES (1); INSERT INTO u VALUES (2), (3)",
                "INSERT INTO u VALUES (4); SELECT 1",
            ],
        );
        assert_eq!(counts, [2, 3, 0, 2, 4, 0]);
    }

    #[test]
    fn a_kept_statement_counts_indexes_created_after_it_compiled() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        exec(&mut db, "CREATE TABLE t(a, b)").unwrap();
        let insert = db
            .prepare_single("INSERT INTO t VALUES (?, ?)")
            .unwrap()
            .unwrap();
        let binds = [Bind::Real(1.0), Bind::Text("x".into())];
        assert_eq!(db.run_prepared(insert, &binds).unwrap().rows_written, 1);
        exec(&mut db, "CREATE UNIQUE INDEX tb ON t(b, a)").unwrap();
        let binds = [Bind::Real(2.0), Bind::Text("x".into())];
        assert_eq!(db.run_prepared(insert, &binds).unwrap().rows_written, 2);
        let binds = [Bind::Real(3.0), Bind::Text("x".into())];
        assert_eq!(db.run_prepared(insert, &binds).unwrap().rows_written, 2);
    }

    #[test]
    fn partial_index_where_clauses_and_words_are_found_outside_quotes() {
        assert_eq!(
            partial_where("CREATE INDEX p ON t(a) WHERE b > 10"),
            Some(" b > 10")
        );
        assert_eq!(
            partial_where("CREATE INDEX \"where\" ON t(\"a where\", (b)) where(c)"),
            Some("(c)")
        );
        assert_eq!(partial_where("CREATE INDEX p ON t(a)"), None);
        assert!(contains_word("CREATE INDEX e ON t(a + B)", "b"));
        assert!(!contains_word("CREATE INDEX e ON t(ab)", "b"));
        assert!(contains_word("... AUTOINCREMENT)", "autoincrement"));
    }

    #[test]
    fn math_functions_are_compiled_in() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let result = exec(&mut db, "SELECT sqrt(16) AS r").unwrap();
        assert!(matches!(result.values[..], [SqlValue::Real(r)] if r == 4.0));
    }
}
