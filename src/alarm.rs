//! The runtime-wide alarm index: when each object next needs waking for its alarm.
//!
//! The alarm itself lives in the object's own database (`_cf_METADATA`), which is the truth;
//! this index only says when to look. It may be early, never late: before an object's commit the
//! runtime may only lower an entry (`lower`), after it the entry is set to the committed value
//! (`set`). A crash between the two wakes an object early, which finds its alarm not yet due and
//! re-files it. Persisted runtimes keep the index in `runtime.sqlite`, so alarms of objects that
//! are not loaded, or that came due while the process was down, fire after a restart.

use std::collections::{BTreeSet, HashMap};

use crate::error::CoreError;
use crate::id::{IdBytes, ID_BYTES};
use crate::runtime_db::RuntimeDb;

/// A namespace registered with the index, by the number `namespace()` gave it.
pub type NamespaceNo = u32;

#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub namespace: NamespaceNo,
    pub id: IdBytes,
    pub time: i64,
}

#[derive(Default)]
pub struct AlarmIndex {
    by_time: BTreeSet<(i64, NamespaceNo, IdBytes)>,
    by_object: HashMap<(NamespaceNo, IdBytes), i64>,
    namespaces: Vec<String>,
}

impl AlarmIndex {
    /// The number of a namespace (by class name), registering it on first use.
    pub fn namespace(&mut self, name: &str) -> NamespaceNo {
        match self.namespaces.iter().position(|n| n == name) {
            Some(i) => i as NamespaceNo,
            None => {
                self.namespaces.push(name.to_owned());
                (self.namespaces.len() - 1) as NamespaceNo
            }
        }
    }

    pub fn namespace_name(&self, ns: NamespaceNo) -> Option<&str> {
        self.namespaces.get(ns as usize).map(String::as_str)
    }

    /// Files the object for `time`, or forgets it (`None`).
    pub fn set(&mut self, ns: NamespaceNo, id: IdBytes, time: Option<i64>) {
        if let Some(old) = self.by_object.remove(&(ns, id)) {
            self.by_time.remove(&(old, ns, id));
        }
        if let Some(time) = time {
            self.by_object.insert((ns, id), time);
            self.by_time.insert((time, ns, id));
        }
    }

    /// Files the object for `time` unless it is filed for earlier already. Returns the time filed.
    pub fn lower(&mut self, ns: NamespaceNo, id: IdBytes, time: i64) -> i64 {
        match self.by_object.get(&(ns, id)) {
            Some(&old) if old <= time => old,
            _ => {
                self.set(ns, id, Some(time));
                time
            }
        }
    }

    pub fn get(&self, ns: NamespaceNo, id: &IdBytes) -> Option<i64> {
        self.by_object.get(&(ns, *id)).copied()
    }

    /// The earliest time any object needs waking.
    pub fn next(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _, _)| *t)
    }

    /// Takes the entries due at `now` out of memory (the persisted rows stay until the objects
    /// re-file or forget their alarms, so a crash before they run loses nothing).
    pub fn take_due(&mut self, now: i64, max: usize) -> Vec<Due> {
        let mut due = Vec::new();
        while due.len() < max {
            match self.by_time.first() {
                Some(&(time, namespace, id)) if time <= now => {
                    self.by_time.pop_first();
                    self.by_object.remove(&(namespace, id));
                    due.push(Due {
                        namespace,
                        id,
                        time,
                    });
                }
                _ => break,
            }
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_object.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_object.is_empty()
    }

    /// Loads the persisted entries (at start).
    pub fn load(&mut self, db: &RuntimeDb) -> Result<usize, CoreError> {
        let rows = db.alarms()?;
        let count = rows.len();
        for (namespace, id, time) in rows {
            let ns = self.namespace(&namespace);
            self.set(ns, id, Some(time));
        }
        Ok(count)
    }
}

pub fn parse_hex(hex: &str) -> Option<IdBytes> {
    let mut id = [0u8; ID_BYTES];
    hex::decode_to_slice(hex, &mut id).ok()?;
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> IdBytes {
        [n; ID_BYTES]
    }

    #[test]
    fn entries_come_due_in_time_order() {
        let mut index = AlarmIndex::default();
        let ns = index.namespace("Room");
        index.set(ns, id(1), Some(300));
        index.set(ns, id(2), Some(100));
        index.set(ns, id(3), Some(200));
        assert_eq!(index.next(), Some(100));
        let due = index.take_due(250, 10);
        assert_eq!(due.iter().map(|d| d.id[0]).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(index.next(), Some(300));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn setting_again_moves_an_entry_and_none_forgets_it() {
        let mut index = AlarmIndex::default();
        let ns = index.namespace("Room");
        index.set(ns, id(1), Some(100));
        index.set(ns, id(1), Some(500));
        assert_eq!(index.take_due(400, 10), []);
        index.set(ns, id(1), None);
        assert_eq!(index.next(), None);
    }

    #[test]
    fn lower_only_ever_moves_an_entry_earlier() {
        let mut index = AlarmIndex::default();
        let ns = index.namespace("Room");
        assert_eq!(index.lower(ns, id(1), 500), 500);
        assert_eq!(index.lower(ns, id(1), 900), 500);
        assert_eq!(index.lower(ns, id(1), 200), 200);
        assert_eq!(index.get(ns, &id(1)), Some(200));
    }

    #[test]
    fn take_due_is_bounded() {
        let mut index = AlarmIndex::default();
        let ns = index.namespace("Room");
        for n in 0..10 {
            index.set(ns, id(n), Some(n as i64));
        }
        assert_eq!(index.take_due(100, 4).len(), 4);
        assert_eq!(index.len(), 6);
    }
}
