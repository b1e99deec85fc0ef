//! The actors of one runtime: a slab of per-object queue and gate state, addressed by handle.

mod gate;

pub use gate::Actor;

use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Registry {
    slots: Vec<Option<Actor>>,
    free: Vec<u32>,
}

impl Registry {
    pub fn open(&mut self) -> u32 {
        let actor = Some(Actor::new(Instant::now()));
        match self.free.pop() {
            Some(handle) => {
                self.slots[handle as usize] = actor;
                handle
            }
            None => {
                self.slots.push(actor);
                (self.slots.len() - 1) as u32
            }
        }
    }

    pub fn close(&mut self, handle: u32) {
        if let Some(slot) = self.slots.get_mut(handle as usize) {
            if slot.take().is_some() {
                self.free.push(handle);
            }
        }
    }

    pub fn get(&mut self, handle: u32) -> Option<&mut Actor> {
        self.slots.get_mut(handle as usize)?.as_mut()
    }

    pub fn idle(&self, idle: Duration) -> Vec<u32> {
        let now = Instant::now();
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.as_ref().is_some_and(|a| a.is_idle(now, idle)))
            .map(|(handle, _)| handle as u32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_reused_after_close() {
        let mut r = Registry::default();
        let a = r.open();
        let b = r.open();
        assert_ne!(a, b);
        r.close(a);
        assert!(r.get(a).is_none());
        assert_eq!(r.open(), a);
        r.close(b);
        r.close(b);
        assert_eq!(r.free, [b]);
    }
}
