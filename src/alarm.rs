//! The runtime-wide alarm index: when each object next needs waking for its alarm.
//!
//! The alarm itself lives in the object's own database (`_cf_METADATA`), which is the truth;
//! this index only says when to look. It may be early, never late: before an object's commit the
//! runtime may only lower an entry (`lower`), after it the entry is set to the committed value
//! (`set`). A crash between the two wakes an object early, which finds its alarm not yet due and
//! re-files it. Persisted runtimes keep the index in `runtime.sqlite`, so alarms of objects that
//! are not loaded, or that came due while the process was down, fire after a restart.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

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

/// One filed object. Each is stored once; the time order and the lookup by object refer to it by
/// slot number (4 bytes), which keeps a million idle alarms under 100 MB.
struct Slot {
    id: IdBytes,
    namespace: NamespaceNo,
    time: i64,
}

#[derive(Default)]
pub struct AlarmIndex {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_time: BTreeSet<(i64, u32)>,
    by_object: HashTable<u32>,
    hasher: RandomState,
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

    fn hash(&self, ns: NamespaceNo, id: &IdBytes) -> u64 {
        self.hasher.hash_one((ns, id))
    }

    fn find(&self, ns: NamespaceNo, id: &IdBytes) -> Option<u32> {
        let slots = &self.slots;
        self.by_object
            .find(self.hash(ns, id), |&s| {
                let slot = &slots[s as usize];
                slot.namespace == ns && slot.id == *id
            })
            .copied()
    }

    /// Drops slot `s` from the lookup by object and frees it (it is out of `by_time` already).
    fn release(&mut self, s: u32) {
        let slot = &self.slots[s as usize];
        let hash = self.hash(slot.namespace, &slot.id);
        if let Ok(entry) = self.by_object.find_entry(hash, |&other| other == s) {
            entry.remove();
        }
        self.free.push(s);
    }

    /// Files the object for `time`, or forgets it (`None`).
    pub fn set(&mut self, ns: NamespaceNo, id: IdBytes, time: Option<i64>) {
        match (self.find(ns, &id), time) {
            (Some(s), Some(time)) => {
                let slot = &mut self.slots[s as usize];
                self.by_time.remove(&(slot.time, s));
                slot.time = time;
                self.by_time.insert((time, s));
            }
            (Some(s), None) => {
                self.by_time.remove(&(self.slots[s as usize].time, s));
                self.release(s);
            }
            (None, Some(time)) => {
                let slot = Slot {
                    id,
                    namespace: ns,
                    time,
                };
                let s = match self.free.pop() {
                    Some(s) => {
                        self.slots[s as usize] = slot;
                        s
                    }
                    None => {
                        self.slots.push(slot);
                        (self.slots.len() - 1) as u32
                    }
                };
                let (slots, hasher) = (&self.slots, &self.hasher);
                self.by_object
                    .insert_unique(self.hash(ns, &id), s, |&other| {
                        let slot = &slots[other as usize];
                        hasher.hash_one((slot.namespace, &slot.id))
                    });
                self.by_time.insert((time, s));
            }
            (None, None) => {}
        }
    }

    /// Files the object for `time` unless it is filed for earlier already. Returns the time filed.
    pub fn lower(&mut self, ns: NamespaceNo, id: IdBytes, time: i64) -> i64 {
        match self.get(ns, &id) {
            Some(old) if old <= time => old,
            _ => {
                self.set(ns, id, Some(time));
                time
            }
        }
    }

    pub fn get(&self, ns: NamespaceNo, id: &IdBytes) -> Option<i64> {
        self.find(ns, id).map(|s| self.slots[s as usize].time)
    }

    /// The earliest time any object needs waking.
    pub fn next(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Takes the entries due at `now` out of memory (the persisted rows stay until the objects
    /// re-file or forget their alarms, so a crash before they run loses nothing).
    pub fn take_due(&mut self, now: i64, max: usize) -> Vec<Due> {
        let mut due = Vec::new();
        while due.len() < max {
            match self.by_time.first() {
                Some(&(time, s)) if time <= now => {
                    self.by_time.pop_first();
                    let slot = &self.slots[s as usize];
                    due.push(Due {
                        namespace: slot.namespace,
                        id: slot.id,
                        time,
                    });
                    self.release(s);
                }
                _ => break,
            }
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }

    /// Loads the persisted entries (at start), row by row.
    pub fn load(&mut self, db: &RuntimeDb) -> Result<usize, CoreError> {
        let mut count = 0;
        db.each_alarm(|namespace, id, time| {
            let ns = self.namespace(namespace);
            self.set(ns, id, Some(time));
            count += 1;
        })?;
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
    fn slots_are_reused_and_lookups_stay_right() {
        let mut index = AlarmIndex::default();
        let ns = index.namespace("Room");
        let other = index.namespace("Other");
        for n in 0..200u8 {
            index.set(ns, id(n), Some(n as i64));
        }
        for n in (0..200u8).step_by(2) {
            index.set(ns, id(n), None);
        }
        for n in 0..100u8 {
            index.set(other, id(n), Some(1000 + n as i64));
        }
        assert_eq!(index.slots.len(), 200, "freed slots were reused");
        assert_eq!(index.len(), 200);
        assert_eq!(index.get(ns, &id(3)), Some(3));
        assert_eq!(index.get(ns, &id(4)), None);
        assert_eq!(index.get(other, &id(4)), Some(1004));
        let due = index.take_due(1010, 1000);
        assert_eq!(due.len(), 100 + 11);
        assert!(due.windows(2).all(|w| w[0].time <= w[1].time));
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
