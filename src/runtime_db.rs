//! `runtime.sqlite`: state of a persisted runtime that belongs to no single object.
//!
//! Each namespace's unique key, so that ids stay stable across restarts, and the persisted alarm
//! index (`alarms`, see `alarm.rs`); applied migrations will live here too.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::error::CoreError;

pub struct RuntimeDb {
    conn: Connection,
}

impl RuntimeDb {
    pub fn open(dir: &Path) -> Result<Self, CoreError> {
        Self::open_in(dir).map_err(|e| match e {
            CoreError::Sqlite(m) => {
                CoreError::RuntimeDb(format!("{}: {m}", dir.join("runtime.sqlite").display()))
            }
            other => other,
        })
    }

    fn open_in(dir: &Path) -> Result<Self, CoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CoreError::RuntimeDb(format!("cannot create {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("runtime.sqlite"))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS namespaces (
               name TEXT PRIMARY KEY,
               unique_key TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS alarms (
               namespace TEXT NOT NULL,
               id BLOB NOT NULL,
               time INTEGER NOT NULL,
               PRIMARY KEY (namespace, id)
             ) WITHOUT ROWID;",
        )?;
        Ok(RuntimeDb { conn })
    }

    /// The namespace's persisted unique key, created (random) on first use.
    pub fn namespace_key(&self, name: &str) -> Result<String, CoreError> {
        let existing: Option<String> = self
            .conn
            .query_row(
                "SELECT unique_key FROM namespaces WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(key) = existing {
            return Ok(key);
        }
        let key = random_key()?;
        self.conn.execute(
            "INSERT INTO namespaces (name, unique_key) VALUES (?1, ?2)",
            [name, &key],
        )?;
        Ok(key)
    }
}

impl RuntimeDb {
    /// Files (or, with `None`, forgets) an object in the persisted alarm index.
    pub fn set_alarm(
        &self,
        namespace: &str,
        id: &[u8],
        time: Option<i64>,
    ) -> Result<(), CoreError> {
        match time {
            Some(time) => self
                .conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO alarms (namespace, id, time) VALUES (?1, ?2, ?3)",
                )?
                .execute((namespace, id, time))?,
            None => self
                .conn
                .prepare_cached("DELETE FROM alarms WHERE namespace = ?1 AND id = ?2")?
                .execute((namespace, id))?,
        };
        Ok(())
    }

    /// Calls `f` with every persisted alarm, without holding them all in memory at once.
    pub fn each_alarm(
        &self,
        mut f: impl FnMut(&str, crate::id::IdBytes, i64),
    ) -> Result<(), CoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT namespace, id, time FROM alarms ORDER BY namespace")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let bad = |e: rusqlite::types::FromSqlError| {
                CoreError::RuntimeDb(format!("alarms table: {e}"))
            };
            let namespace = row.get_ref(0)?.as_str().map_err(bad)?;
            if let Ok(id) = row.get_ref(1)?.as_blob().map_err(bad)?.try_into() {
                f(namespace, id, row.get(2)?);
            }
        }
        Ok(())
    }
}

pub fn random_key() -> Result<String, CoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CoreError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_keys_persist_across_opens() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("state");
        let first = RuntimeDb::open(&dir)
            .unwrap()
            .namespace_key("Room")
            .unwrap();
        let db = RuntimeDb::open(&dir).unwrap();
        assert_eq!(db.namespace_key("Room").unwrap(), first);
        assert_ne!(db.namespace_key("Other").unwrap(), first);
    }
}
