//! `_cf_METADATA`: what the runtime keeps about an object in the object's own database — its
//! alarm, and the name it was reached by (so `ctx.id.name` is right in an alarm after a restart).
//! Writes join the implicit transaction, so `transactionSync` rolls an alarm back with the rest.

use rusqlite::OptionalExtension;

use super::database::Database;
use crate::error::CoreError;

const ALARM: &str = "alarm";
const NAME: &str = "name";

impl Database {
    /// Asked of the schema each time (cached statements): deleteAll, a restore or a rollback may
    /// have taken the table away since.
    fn has_meta_table(conn: &rusqlite::Connection) -> Result<bool, CoreError> {
        Ok(conn
            .prepare_cached("SELECT count(*) FROM sqlite_master WHERE name = '_cf_METADATA'")?
            .query_row([], |row| row.get::<_, i64>(0).map(|n| n > 0))?)
    }

    fn get_meta<T: rusqlite::types::FromSql>(&self, key: &str) -> Result<Option<T>, CoreError> {
        self.internal(|conn| {
            if !Self::has_meta_table(conn)? {
                return Ok(None);
            }
            Ok(conn
                .prepare_cached("SELECT value FROM _cf_METADATA WHERE key = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()?)
        })
    }

    fn set_meta(
        &mut self,
        key: &str,
        value: Option<&dyn rusqlite::ToSql>,
    ) -> Result<(), CoreError> {
        self.begin_write()?;
        self.internal(|conn| {
            if !Self::has_meta_table(conn)? {
                conn.execute_batch(
                    "CREATE TABLE _cf_METADATA (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
                )?;
            }
            match value {
                Some(value) => conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO _cf_METADATA (key, value) VALUES (?1, ?2)",
                    )?
                    .execute((key, value))?,
                None => conn
                    .prepare_cached("DELETE FROM _cf_METADATA WHERE key = ?1")?
                    .execute([key])?,
            };
            Ok(())
        })
    }

    pub fn get_alarm(&self) -> Result<Option<i64>, CoreError> {
        self.get_meta(ALARM)
    }

    pub fn set_alarm(&mut self, time: Option<i64>) -> Result<(), CoreError> {
        if time.is_none() && self.get_alarm()?.is_none() {
            return Ok(());
        }
        self.set_meta(ALARM, time.as_ref().map(|t| t as &dyn rusqlite::ToSql))
    }

    pub fn get_name(&self) -> Result<Option<String>, CoreError> {
        self.get_meta(NAME)
    }

    pub fn set_name(&mut self, name: &str) -> Result<(), CoreError> {
        if self.get_name()?.as_deref() == Some(name) {
            return Ok(());
        }
        self.set_meta(NAME, Some(&name))
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::{Database, Durability};

    #[test]
    fn the_alarm_follows_savepoints() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        assert_eq!(db.get_alarm().unwrap(), None);
        db.set_alarm(Some(1000)).unwrap();
        let depth = db.savepoint().unwrap();
        db.set_alarm(Some(2000)).unwrap();
        db.end_savepoint(depth, false).unwrap();
        assert_eq!(db.get_alarm().unwrap(), Some(1000));
        db.set_alarm(None).unwrap();
        assert_eq!(db.get_alarm().unwrap(), None);
    }

    #[test]
    fn delete_all_takes_the_alarm_with_it() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        db.set_alarm(Some(1000)).unwrap();
        db.set_name("room").unwrap();
        db.delete_all().unwrap();
        assert_eq!(db.get_alarm().unwrap(), None);
    }
}
