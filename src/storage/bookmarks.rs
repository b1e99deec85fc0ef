//! Point-in-time recovery for persisted objects, on SQLite's own snapshots.
//!
//! Automatic checkpoints are off and closing keeps the WAL, so the WAL holds the object's history
//! since its last reset. After commits (at most once a second, or when asked) a snapshot of the
//! committed state — 48 bytes from `sqlite3_snapshot_get` — is appended with its time to
//! `<db>.bookmarks`; a bookmark names one of those records. Restoring opens a second connection on
//! the snapshot and copies it into the live database with the backup API, which appends WAL
//! frames like any write: history goes on, and the bookmark of the state before stays valid.
//! When the WAL passes `WAL_LIMIT` it is checkpointed and reset, and the history starts again.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::ptr;

use rusqlite::{ffi, Connection};
use sha2::{Digest, Sha256};

use crate::error::CoreError;

const SNAPSHOT: usize = 48;
const RECORD: usize = 8 + SNAPSHOT;
/// Snapshots are recorded at most this often on their own (a bookmark request always records).
const GRANULARITY_MS: i64 = 1000;
/// Past this, the WAL is checkpointed and reset: the history kept starts again from there.
pub const WAL_LIMIT: u64 = 64 << 20;

pub const NOT_AVAILABLE: &str =
    "This Durable Object's storage back-end does not implement point-in-time recovery.";

struct Record {
    time: i64,
    snapshot: [u8; SNAPSHOT],
}

/// The recorded snapshots of one database file, oldest first.
pub struct History {
    db_path: PathBuf,
    records: Vec<Record>,
    /// Bookmarks number records from the start of the file's life, across WAL resets.
    first_index: u64,
}

fn sidecar(db_path: &Path, ext: &str) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(ext);
    PathBuf::from(name)
}

impl History {
    /// Loads the history of the database at `db_path` and prepares its connection for it.
    pub fn open(conn: &Connection, db_path: &Path) -> Result<Self, CoreError> {
        keep_history(conn)?;
        let mut history = History {
            db_path: db_path.to_owned(),
            records: Vec::new(),
            first_index: 0,
        };
        if let Ok(bytes) = fs::read(history.file()) {
            let (head, body) = bytes.split_at(bytes.len().min(8));
            history.first_index = head.try_into().map(u64::from_le_bytes).unwrap_or(0);
            for chunk in body.chunks_exact(RECORD) {
                let time = i64::from_le_bytes(chunk[..8].try_into().unwrap());
                let snapshot = chunk[8..].try_into().unwrap();
                history.records.push(Record { time, snapshot });
            }
            // A record torn by a crash mid-append would misalign every later one: drop it.
            if body.len() % RECORD != 0 {
                history.rewrite()?;
            }
        }
        if !history.records.is_empty() {
            // SAFETY: `conn`'s live handle. Makes snapshots taken by earlier processes usable
            // again; it scans the WAL, so only when there are some.
            unsafe { ffi::sqlite3_snapshot_recover(conn.handle(), c"main".as_ptr()) };
        }
        Ok(history)
    }

    fn file(&self) -> PathBuf {
        sidecar(&self.db_path, ".bookmarks")
    }

    pub fn restore_file(&self) -> PathBuf {
        sidecar(&self.db_path, ".restore")
    }

    fn bookmark(&self, position: usize) -> String {
        let index = self.first_index + position as u64;
        let record = &self.records[position];
        format!(
            "00000000-{:08x}-{:08x}-{}",
            index >> 32,
            index & 0xffff_ffff,
            check(record)
        )
    }

    /// The record a bookmark names, if this history still has it.
    fn find(&self, bookmark: &str) -> Option<&Record> {
        let parts: Vec<&str> = bookmark.split('-').collect();
        let [hi, mid, lo, sum] = parts.as_slice() else {
            return None;
        };
        if hi.len() != 8 || mid.len() != 8 || lo.len() != 8 || sum.len() != 32 {
            return None;
        }
        if u64::from_str_radix(hi, 16).ok()? != 0 {
            return None;
        }
        let index =
            (u64::from_str_radix(mid, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?;
        let position = index.checked_sub(self.first_index)? as usize;
        let record = self.records.get(position)?;
        (check(record) == *sum).then_some(record)
    }

    /// Records the committed state (`force`, or if the last record is older than the granularity).
    /// The connection must have no open transaction.
    pub fn record(&mut self, conn: &Connection, now: i64, force: bool) -> Result<(), CoreError> {
        if !force
            && self
                .records
                .last()
                .is_some_and(|r| now - r.time < GRANULARITY_MS)
        {
            return Ok(());
        }
        if self.should_reset(conn)? {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            self.first_index += self.records.len() as u64;
            self.records.clear();
            self.rewrite()?;
        }
        let snapshot = snapshot_now(conn)?;
        // The same state again (bookmarks asked for with no write between) reuses its record.
        if self.records.last().is_some_and(|r| r.snapshot == snapshot) {
            return Ok(());
        }
        self.records.push(Record {
            time: now,
            snapshot,
        });
        if self.records.len() == 1 && !self.file().exists() {
            self.rewrite()
        } else {
            self.append(self.records.len() - 1)
        }
    }

    /// Whether to checkpoint and reset the WAL (ending the history): past `WAL_LIMIT`, and past four
    /// times the database itself (a restore copies the whole database into the WAL, and its undo
    /// bookmark must survive), but never while a restore is pending (its bookmark must too).
    fn should_reset(&self, conn: &Connection) -> Result<bool, CoreError> {
        let wal = wal_size(&self.db_path);
        if wal <= WAL_LIMIT || self.restore_file().exists() {
            return Ok(false);
        }
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(wal > 4 * (pages * page_size) as u64)
    }

    /// Schedules `bookmark` for the next start; written whole or not at all (temp file + rename).
    pub fn schedule(&self, bookmark: &str) -> Result<(), CoreError> {
        self.validate(bookmark)?;
        let file = self.restore_file();
        let temp = sidecar(&self.db_path, ".restore-new");
        fs::write(&temp, bookmark).map_err(io)?;
        fs::rename(&temp, &file).map_err(io)
    }

    fn append(&self, position: usize) -> Result<(), CoreError> {
        let record = &self.records[position];
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file())
            .map_err(io)?;
        let mut bytes = record.time.to_le_bytes().to_vec();
        bytes.extend_from_slice(&record.snapshot);
        file.write_all(&bytes).map_err(io)
    }

    fn rewrite(&self) -> Result<(), CoreError> {
        let mut bytes = self.first_index.to_le_bytes().to_vec();
        for record in &self.records {
            bytes.extend_from_slice(&record.time.to_le_bytes());
            bytes.extend_from_slice(&record.snapshot);
        }
        fs::write(self.file(), bytes).map_err(io)
    }

    /// The bookmark of the latest record (record first with `record(…, true)`).
    pub fn current(&self) -> Result<String, CoreError> {
        if self.records.is_empty() {
            return Err(CoreError::Storage("no history recorded yet".into()));
        }
        Ok(self.bookmark(self.records.len() - 1))
    }

    /// The bookmark of the latest record at or before `time`.
    pub fn for_time(&self, time: i64) -> Result<String, CoreError> {
        match self.records.iter().rposition(|r| r.time <= time) {
            Some(position) => Ok(self.bookmark(position)),
            None => Err(CoreError::RangeError(format!(
                "No bookmark for {time}: this object's recorded history starts at {}.",
                self.records
                    .first()
                    .map_or_else(|| "its next write".to_owned(), |r| r.time.to_string())
            ))),
        }
    }

    /// Checks that `bookmark` names a record of this history.
    pub fn validate(&self, bookmark: &str) -> Result<(), CoreError> {
        self.find(bookmark).map(|_| ()).ok_or_else(|| {
            CoreError::RangeError(format!("Unknown or expired bookmark: {bookmark}"))
        })
    }

    /// Copies the state `bookmark` names into the live database (`conn`, outside any transaction).
    pub fn restore(&self, conn: &Connection, bookmark: &str) -> Result<(), CoreError> {
        let record = self.find(bookmark).ok_or_else(|| {
            CoreError::RangeError(format!("Unknown or expired bookmark: {bookmark}"))
        })?;
        let source = Connection::open(&self.db_path)?;
        keep_history(&source)?;
        let mut snapshot = ffi::sqlite3_snapshot {
            hidden: record.snapshot,
        };
        // SAFETY: the handle is only used while `source` lives, in this function.
        let src = unsafe { source.handle() };
        // A new connection learns that the file is in WAL mode on its first read; a snapshot can
        // only be opened after that.
        source.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        source.execute_batch("BEGIN")?;
        // SAFETY: both handles are live for the whole block; the backup is finished before
        // either connection is touched again, and the snapshot struct outlives the open call.
        unsafe {
            let rc = ffi::sqlite3_snapshot_open(src, c"main".as_ptr(), &mut snapshot);
            if rc != ffi::SQLITE_OK {
                let _ = source.execute_batch("ROLLBACK");
                return Err(CoreError::RangeError(format!(
                    "The bookmark {bookmark} is no longer available (the history was reset)."
                )));
            }
            let main = CString::new("main").expect("no NUL");
            let backup = ffi::sqlite3_backup_init(conn.handle(), main.as_ptr(), src, main.as_ptr());
            if backup.is_null() {
                let _ = source.execute_batch("ROLLBACK");
                return Err(CoreError::Storage(
                    "could not start restoring the bookmark".into(),
                ));
            }
            let step = ffi::sqlite3_backup_step(backup, -1);
            let finish = ffi::sqlite3_backup_finish(backup);
            let _ = source.execute_batch("COMMIT");
            if step != ffi::SQLITE_DONE || finish != ffi::SQLITE_OK {
                return Err(CoreError::Storage(format!(
                    "restoring the bookmark failed (code {step})"
                )));
            }
        }
        Ok(())
    }
}

/// No checkpoint on close and none automatic: the WAL is the history.
fn keep_history(conn: &Connection) -> Result<(), CoreError> {
    // SAFETY: `conn`'s live handle; the variadic call passes an int and a null int pointer.
    unsafe {
        ffi::sqlite3_db_config(
            conn.handle(),
            ffi::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            1 as std::ffi::c_int,
            ptr::null_mut::<std::ffi::c_int>(),
        );
    }
    conn.query_row("PRAGMA wal_autocheckpoint = 0", [], |_| Ok(()))?;
    Ok(())
}

/// A snapshot of the committed state, taken in a short read transaction.
fn snapshot_now(conn: &Connection) -> Result<[u8; SNAPSHOT], CoreError> {
    conn.execute_batch("BEGIN")?;
    let result = (|| {
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        let mut snapshot: *mut ffi::sqlite3_snapshot = ptr::null_mut();
        // SAFETY: a read transaction is open on `conn`; the snapshot is copied, then freed.
        unsafe {
            let rc = ffi::sqlite3_snapshot_get(conn.handle(), c"main".as_ptr(), &mut snapshot);
            if rc != ffi::SQLITE_OK || snapshot.is_null() {
                return Err(CoreError::Storage(format!(
                    "could not record a bookmark (code {rc})"
                )));
            }
            let bytes = (*snapshot).hidden;
            ffi::sqlite3_snapshot_free(snapshot);
            Ok(bytes)
        }
    })();
    conn.execute_batch("COMMIT")?;
    result
}

fn check(record: &Record) -> String {
    let mut hash = Sha256::new();
    hash.update(record.time.to_le_bytes());
    hash.update(record.snapshot);
    hex::encode(&hash.finalize()[..16])
}

fn wal_size(db_path: &Path) -> u64 {
    fs::metadata(sidecar(db_path, "-wal")).map_or(0, |m| m.len())
}

fn io(err: std::io::Error) -> CoreError {
    CoreError::Storage(format!("bookmarks file: {err}"))
}

#[cfg(test)]
mod tests {
    use crate::storage::{Database, Durability};

    fn value(db: &mut Database) -> Vec<u8> {
        db.kv_get("k").unwrap().unwrap_or_default()
    }

    #[test]
    fn a_bookmark_restores_on_the_next_start_and_its_undo_bookmark_brings_the_rest_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        let mut db = Database::open(Some(&path), Durability::Normal).unwrap();
        db.kv_put_one("k", &[1]).unwrap();
        let first = db.current_bookmark().unwrap();
        assert!(
            first.len() == 8 * 3 + 32 + 3 && first.starts_with("00000000-"),
            "{first}"
        );
        db.kv_put_one("k", &[2]).unwrap();
        db.exec("CREATE TABLE later(x)", &[]).unwrap();
        let undo = db.schedule_restore(&first).unwrap();
        assert!(undo > first, "bookmarks are ordered by time");
        drop(db);

        let mut db = Database::open(Some(&path), Durability::Normal).unwrap();
        assert_eq!(
            value(&mut db),
            [2],
            "opening the file is not starting the object"
        );
        assert!(db.apply_pending_restore().unwrap());
        assert_eq!(value(&mut db), [1]);
        assert!(
            db.exec("SELECT * FROM later", &[]).is_err(),
            "the table came after the bookmark"
        );
        db.schedule_restore(&undo).unwrap();
        db.apply_pending_restore().unwrap();
        assert_eq!(value(&mut db), [2]);
        assert!(db.exec("SELECT * FROM later", &[]).is_ok());
        let now = db.current_bookmark().unwrap();
        assert_eq!(db.bookmark_for_time(i64::MAX).unwrap(), now);

        assert!(db.bookmark_for_time(0).is_err());
        assert!(db
            .schedule_restore("00000000-00000000-00000999-00000000000000000000000000000000")
            .is_err());
    }

    #[test]
    fn a_restore_that_cannot_happen_fails_once_and_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        let mut db = Database::open(Some(&path), Durability::Normal).unwrap();
        db.kv_put_one("k", &[1]).unwrap();
        let bookmark = db.current_bookmark().unwrap();
        db.schedule_restore(&bookmark).unwrap();
        drop(db);
        // The history is gone (as after a WAL reset) while the restore is still pending.
        std::fs::remove_file(dir.path().join("o.sqlite.bookmarks")).unwrap();
        let mut db = Database::open(Some(&path), Durability::Normal).unwrap();
        assert!(db.apply_pending_restore().is_err());
        assert!(
            !db.apply_pending_restore().unwrap(),
            "the next start is not stuck on it"
        );
        assert_eq!(value(&mut db), [1]);
    }

    #[test]
    fn unchanged_state_reuses_its_record_and_a_torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        let mut db = Database::open(Some(&path), Durability::Normal).unwrap();
        db.kv_put_one("k", &[1]).unwrap();
        let first = db.current_bookmark().unwrap();
        assert_eq!(
            db.current_bookmark().unwrap(),
            first,
            "no write between: the same bookmark"
        );
        let depth = db.savepoint().unwrap();
        assert!(db.current_bookmark().is_err(), "not inside a transaction");
        db.end_savepoint(depth, true).unwrap();
        drop(db);
        let file = dir.path().join("o.sqlite.bookmarks");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(&[7; 20]);
        std::fs::write(&file, bytes).unwrap();
        let mut db = Database::open(Some(&path), Durability::Normal).unwrap();
        db.kv_put_one("k", &[2]).unwrap();
        let second = db.current_bookmark().unwrap();
        drop(db);
        let mut db = Database::open(Some(&path), Durability::Normal).unwrap();
        db.schedule_restore(&second).unwrap();
        assert!(
            db.apply_pending_restore().unwrap(),
            "records written after the torn one still line up"
        );
    }

    #[test]
    fn in_memory_databases_have_no_point_in_time_recovery() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        assert_eq!(
            db.current_bookmark().unwrap_err().to_string(),
            "This Durable Object's storage back-end does not implement point-in-time recovery."
        );
    }
}
