//! The `_cf_KV` table behind `ctx.storage.get/put/delete/list` and `ctx.storage.kv`.
//!
//! Keys are TEXT compared with SQLite's BINARY collation, which is memcmp of their UTF-8 bytes:
//! exactly Cloudflare's key order (spec 28). Values are the V8-serialized bytes the JS side made.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, OptionalExtension};

use super::database::Database;
use crate::error::CoreError;

const PUT: &str = "INSERT OR REPLACE INTO _cf_KV (key, value) VALUES (?1, ?2)";

/// Key-value pairs packed for one crossing to JS: the keys end to end in one string (`key_ends[i]`:
/// where key i ends, in UTF-16 units, as JS counts), the values' bytes end to end in one buffer.
#[derive(Default)]
pub struct KvPage {
    pub keys: String,
    pub key_ends: Vec<u32>,
    pub values: Vec<u8>,
    pub value_ends: Vec<u32>,
    key_end: u32,
}

impl KvPage {
    fn push(&mut self, key: &str, value: &[u8]) {
        // UTF-16 units: one per byte for ASCII keys (most), counted otherwise.
        self.key_end += if key.is_ascii() {
            key.len()
        } else {
            key.encode_utf16().count()
        } as u32;
        self.keys.push_str(key);
        self.key_ends.push(self.key_end);
        self.values.extend_from_slice(value);
        self.value_ends.push(self.values.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key_ends.is_empty()
    }
}

/// A `list()` range after the JS side validated and coerced the options.
#[derive(Default)]
pub struct ListRange {
    pub start: Option<String>,
    /// Exclusive lower bound: `startAfter` (spec 56: the same as start = key + "\0").
    pub start_after: Option<String>,
    pub end: Option<String>,
    pub prefix: Option<String>,
    pub reverse: bool,
    pub limit: Option<u32>,
}

impl Database {
    fn ensure_kv_table(&mut self) -> Result<(), CoreError> {
        if !self.kv_table {
            self.internal(|conn| {
                Ok(conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS _cf_KV (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID",
                )?)
            })?;
            self.kv_table = true;
        }
        Ok(())
    }

    pub fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        if !self.kv_table {
            return Ok(None);
        }
        self.internal(|conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM _cf_KV WHERE key = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()?)
        })
    }

    /// The pairs that exist, sorted by key and without duplicates (spec 34).
    pub fn kv_get_many(&self, keys: &[String]) -> Result<KvPage, CoreError> {
        let mut keys: Vec<&String> = keys.iter().collect();
        keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        keys.dedup();
        let mut page = KvPage::default();
        for key in keys {
            if let Some(value) = self.kv_get(key)? {
                page.push(key, &value);
            }
        }
        Ok(page)
    }

    /// Writes all pairs or none (spec 42).
    pub fn kv_put(&mut self, entries: &[(String, Vec<u8>)]) -> Result<(), CoreError> {
        if let [(key, value)] = entries {
            return self.kv_put_one(key, value);
        }
        self.begin_write()?;
        self.ensure_kv_table()?;
        self.all_or_nothing(|db| {
            db.internal(|conn| {
                let mut stmt = conn.prepare_cached(PUT)?;
                for (key, value) in entries {
                    stmt.execute((key, value))?;
                }
                Ok(())
            })
        })
    }

    /// One pair: a single statement is all-or-nothing by itself, no savepoint needed.
    pub fn kv_put_one(&mut self, key: &str, value: &[u8]) -> Result<(), CoreError> {
        self.begin_write()?;
        self.ensure_kv_table()?;
        self.internal(|conn| {
            conn.prepare_cached(PUT)?.execute((key, value))?;
            Ok(())
        })
    }

    /// Deletes the keys; returns how many existed (duplicates counted once, spec 48).
    pub fn kv_delete(&mut self, keys: &[String]) -> Result<u32, CoreError> {
        if !self.kv_table {
            return Ok(0);
        }
        self.begin_write()?;
        self.internal(|conn| {
            let mut stmt = conn.prepare_cached("DELETE FROM _cf_KV WHERE key = ?1")?;
            let mut deleted = 0;
            for key in keys {
                deleted += stmt.execute([key])? as u32;
            }
            Ok(deleted)
        })
    }

    /// The pairs in `range`, packed straight from SQLite's row buffers (no copy per row).
    pub fn kv_list(&self, range: &ListRange) -> Result<KvPage, CoreError> {
        if !self.kv_table || range.limit == Some(0) {
            return Ok(KvPage::default());
        }
        let (lower, lower_inclusive) = lower_bound(range);
        let upper = upper_bound(range);
        let mut sql = String::from("SELECT key, value FROM _cf_KV WHERE 1");
        let mut params: Vec<ToSqlOutput<'_>> = Vec::new();
        if let Some(lower) = lower.as_deref() {
            sql.push_str(if lower_inclusive {
                " AND key >= ?"
            } else {
                " AND key > ?"
            });
            params.push(ToSqlOutput::Borrowed(ValueRef::Text(lower)));
        }
        if let Some(upper) = upper.as_deref() {
            sql.push_str(" AND key < ?");
            params.push(ToSqlOutput::Borrowed(ValueRef::Text(upper)));
        }
        sql.push_str(if range.reverse {
            " ORDER BY key DESC"
        } else {
            " ORDER BY key"
        });
        if let Some(limit) = range.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        self.internal(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(params))?;
            let mut page = KvPage::default();
            while let Some(row) = rows.next()? {
                let key = row
                    .get_ref(0)?
                    .as_str()
                    .map_err(|e| CoreError::Sqlite(e.to_string()))?;
                let value = row
                    .get_ref(1)?
                    .as_blob()
                    .map_err(|e| CoreError::Sqlite(e.to_string()))?;
                page.push(key, value);
            }
            Ok(page)
        })
    }

    /// Runs `f` under a savepoint so that a failure part-way leaves nothing behind.
    fn all_or_nothing<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let depth = self.savepoint()?;
        match f(self) {
            Ok(value) => {
                self.end_savepoint(depth, true)?;
                Ok(value)
            }
            Err(err) => {
                self.end_savepoint(depth, false)?;
                Err(err)
            }
        }
    }
}

/// The greatest of `start`/`startAfter` and `prefix`, as bytes, and whether it is inclusive.
fn lower_bound(range: &ListRange) -> (Option<Vec<u8>>, bool) {
    let (start, inclusive) = match (&range.start, &range.start_after) {
        (_, Some(after)) => (Some(after.as_bytes().to_vec()), false),
        (Some(start), None) => (Some(start.as_bytes().to_vec()), true),
        (None, None) => (None, true),
    };
    match (start, range.prefix.as_deref().filter(|p| !p.is_empty())) {
        (Some(start), Some(prefix)) if prefix.as_bytes() > start.as_slice() => {
            (Some(prefix.as_bytes().to_vec()), true)
        }
        (None, Some(prefix)) => (Some(prefix.as_bytes().to_vec()), true),
        (start, _) => (start, inclusive),
    }
}

/// The least of `end` and the first key past every key starting with `prefix`, as bytes.
fn upper_bound(range: &ListRange) -> Option<Vec<u8>> {
    let end = range.end.as_ref().map(|e| e.as_bytes().to_vec());
    let past_prefix = range
        .prefix
        .as_deref()
        .filter(|p| !p.is_empty())
        .and_then(|p| {
            let mut bytes = p.as_bytes().to_vec();
            while let Some(last) = bytes.pop() {
                if last < 0xff {
                    bytes.push(last + 1);
                    return Some(bytes);
                }
            }
            None
        });
    match (end, past_prefix) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Durability;

    fn db_with(keys: &[&str]) -> Database {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let entries: Vec<_> = keys.iter().map(|k| (k.to_string(), vec![1])).collect();
        db.kv_put(&entries).unwrap();
        db
    }

    fn keys(page: KvPage) -> Vec<String> {
        let units: Vec<u16> = page.keys.encode_utf16().collect();
        let mut start = 0;
        page.key_ends
            .iter()
            .map(|&end| {
                let key = String::from_utf16(&units[start..end as usize]).unwrap();
                start = end as usize;
                key
            })
            .collect()
    }

    #[test]
    fn keys_are_ordered_by_utf8_bytes() {
        let db = db_with(&[
            "\u{10000}",
            "\u{FFFF}",
            "é",
            "c",
            "ba",
            "b",
            "abc",
            "ab",
            "a\0",
            "a",
            "Z",
        ]);
        assert_eq!(
            keys(db.kv_list(&ListRange::default()).unwrap()),
            [
                "Z",
                "a",
                "a\0",
                "ab",
                "abc",
                "b",
                "ba",
                "c",
                "é",
                "\u{FFFF}",
                "\u{10000}"
            ]
        );
    }

    #[test]
    fn prefix_intersects_start_and_end() {
        let db = db_with(&["a", "a\0", "ab", "abc", "b"]);
        let list = |range: ListRange| keys(db.kv_list(&range).unwrap());
        let prefix = || Some("a".to_string());
        assert_eq!(
            list(ListRange {
                prefix: prefix(),
                ..Default::default()
            }),
            ["a", "a\0", "ab", "abc"]
        );
        assert!(list(ListRange {
            prefix: prefix(),
            start: Some("b".into()),
            ..Default::default()
        })
        .is_empty());
        assert_eq!(
            list(ListRange {
                prefix: prefix(),
                end: Some("abc".into()),
                ..Default::default()
            }),
            ["a", "a\0", "ab"]
        );
        assert_eq!(
            list(ListRange {
                start_after: Some("ab".into()),
                ..Default::default()
            }),
            ["abc", "b"]
        );
        assert_eq!(
            list(ListRange {
                reverse: true,
                limit: Some(2),
                ..Default::default()
            }),
            ["b", "abc"]
        );
    }

    #[test]
    fn a_rolled_back_first_write_leaves_no_table_behind() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let depth = db.savepoint().unwrap();
        db.kv_put(&[("a".into(), vec![1])]).unwrap();
        db.end_savepoint(depth, false).unwrap();
        assert_eq!(db.kv_get("a").unwrap(), None);
        db.kv_put(&[("b".into(), vec![2])]).unwrap();
        assert_eq!(db.kv_get("b").unwrap(), Some(vec![2]));
    }

    #[test]
    fn a_failed_multi_put_writes_nothing() {
        let mut db = Database::open(None, Durability::Normal).unwrap();
        let huge = vec![0u8; 9 * 1024 * 1024];
        let err = db
            .kv_put(&[("a".into(), vec![1]), ("b".into(), huge)])
            .unwrap_err();
        assert_eq!(err.to_string(), "string or blob too big: SQLITE_TOOBIG");
        assert_eq!(db.kv_get("a").unwrap(), None);
    }
}
