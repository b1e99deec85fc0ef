//! `runtime.sqlite`: state of a persisted runtime that belongs to no single object.
//!
//! Each namespace's unique key, so that ids stay stable across restarts, and the persisted alarm
//! index (`alarms`, see `alarm.rs`), and the wrangler migrations applied to the state (by tag).

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
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS migrations (
               worker TEXT NOT NULL,
               tag TEXT NOT NULL,
               PRIMARY KEY (worker, tag)
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

/// One wrangler migration's effect on stored state; new classes need nothing stored.
pub struct Migration<'a> {
    pub worker: &'a str,
    pub tag: &'a str,
    /// `renamed_classes` and `transferred_classes` (their state moves to the new name).
    pub renames: Vec<(&'a str, &'a str)>,
    pub deletes: Vec<&'a str>,
}

impl RuntimeDb {
    /// Applies `migration` to the state under `dir` unless its tag was applied before; returns
    /// whether it was applied now. A class's state is its folder of databases, its namespace key
    /// (which keeps its ids) and its alarms. Folders move first: a run cut short before the
    /// commit is repeated at the next start, and finds the folders already moved.
    pub fn migrate(&mut self, dir: &Path, migration: &Migration) -> Result<bool, CoreError> {
        let applied: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM migrations WHERE worker = ?1 AND tag = ?2",
                [migration.worker, migration.tag],
                |row| row.get(0),
            )
            .optional()?;
        if applied.is_some() {
            return Ok(false);
        }
        let fail = |problem: String| {
            CoreError::RuntimeDb(format!("migration \"{}\": {problem}", migration.tag))
        };
        for &(from, to) in &migration.renames {
            let (source, target) = (dir.join(from), dir.join(to));
            if source.exists() && target.exists() {
                return Err(fail(format!(
                    "cannot move class {from} to {to}: {to} already has stored objects"
                )));
            }
            if source.exists() {
                std::fs::rename(&source, &target)
                    .map_err(|e| fail(format!("cannot move {}: {e}", source.display())))?;
            }
        }
        for &name in &migration.deletes {
            let folder = dir.join(name);
            if folder.exists() {
                std::fs::remove_dir_all(&folder)
                    .map_err(|e| fail(format!("cannot delete {}: {e}", folder.display())))?;
            }
        }
        let tx = self.conn.transaction()?;
        for &(from, to) in &migration.renames {
            tx.execute("DELETE FROM namespaces WHERE name = ?2 AND EXISTS (SELECT 1 FROM namespaces WHERE name = ?1)", [from, to])?;
            tx.execute(
                "UPDATE namespaces SET name = ?2 WHERE name = ?1",
                [from, to],
            )?;
            tx.execute(
                "UPDATE alarms SET namespace = ?2 WHERE namespace = ?1",
                [from, to],
            )?;
        }
        for &name in &migration.deletes {
            tx.execute("DELETE FROM namespaces WHERE name = ?1", [name])?;
            tx.execute("DELETE FROM alarms WHERE namespace = ?1", [name])?;
        }
        tx.execute(
            "INSERT INTO migrations (worker, tag) VALUES (?1, ?2)",
            [migration.worker, migration.tag],
        )?;
        tx.commit()?;
        Ok(true)
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

    fn rename<'a>(tag: &'a str, from: &'a str, to: &'a str) -> Migration<'a> {
        Migration {
            worker: "app",
            tag,
            renames: vec![(from, to)],
            deletes: vec![],
        }
    }

    #[test]
    fn a_rename_moves_key_folder_and_alarms_once() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let mut db = RuntimeDb::open(dir).unwrap();
        let key = db.namespace_key("Old").unwrap();
        db.set_alarm("Old", &[7; 32], Some(42)).unwrap();
        std::fs::create_dir(dir.join("Old")).unwrap();
        std::fs::write(dir.join("Old/a.sqlite"), b"data").unwrap();

        assert!(db.migrate(dir, &rename("v2", "Old", "New")).unwrap());
        assert_eq!(db.namespace_key("New").unwrap(), key);
        assert_eq!(std::fs::read(dir.join("New/a.sqlite")).unwrap(), b"data");
        assert!(!dir.join("Old").exists());
        let mut alarms = vec![];
        db.each_alarm(|ns, _, t| alarms.push((ns.to_owned(), t)))
            .unwrap();
        assert_eq!(alarms, [("New".to_owned(), 42)]);

        // Applied once: the same tag again does nothing, even with the old name back in use.
        std::fs::create_dir(dir.join("Old")).unwrap();
        assert!(!db.migrate(dir, &rename("v2", "Old", "New")).unwrap());
        assert!(dir.join("Old").exists());
    }

    #[test]
    fn a_rename_onto_a_class_with_state_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let mut db = RuntimeDb::open(dir).unwrap();
        std::fs::create_dir(dir.join("A")).unwrap();
        std::fs::create_dir(dir.join("B")).unwrap();
        let err = db.migrate(dir, &rename("v1", "A", "B")).unwrap_err();
        assert!(err
            .to_string()
            .contains("cannot move class A to B: B already has stored objects"));
    }

    #[test]
    fn a_delete_removes_the_class_state() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let mut db = RuntimeDb::open(dir).unwrap();
        let key = db.namespace_key("Gone").unwrap();
        std::fs::create_dir(dir.join("Gone")).unwrap();
        let migration = Migration {
            worker: "app",
            tag: "v3",
            renames: vec![],
            deletes: vec!["Gone"],
        };
        assert!(db.migrate(dir, &migration).unwrap());
        assert!(!dir.join("Gone").exists());
        assert_ne!(db.namespace_key("Gone").unwrap(), key);
    }
}
