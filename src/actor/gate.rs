//! One object's event queue and input gate, as a plain state machine driven by the JS thread.
//!
//! Events are opaque tokens; the JS side keeps what they mean. The gate is held while a storage
//! operation is pending or a `blockConcurrencyWhile` callback runs; while it is held, new events
//! wait here in FIFO order. Only one drain of the queue is scheduled at a time, and the drain hands
//! out one event at a time so that an event that holds the gate stops the ones behind it.
//! A reset starts a new epoch: holds and work of the old instance no longer count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub struct Actor {
    queue: VecDeque<u32>,
    holds: u32,
    busy: u32,
    epoch: u32,
    drain_scheduled: bool,
    live: bool,
    last_active: Instant,
}

impl Actor {
    pub fn new(now: Instant) -> Self {
        Actor {
            queue: VecDeque::new(),
            holds: 0,
            busy: 0,
            epoch: 0,
            drain_scheduled: false,
            live: false,
            last_active: now,
        }
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    fn gate_open(&self) -> bool {
        self.holds == 0
    }

    /// Queues an event. True when the caller must schedule a drain.
    pub fn enqueue(&mut self, token: u32) -> bool {
        self.queue.push_back(token);
        self.claim_drain()
    }

    fn claim_drain(&mut self) -> bool {
        if self.drain_scheduled || !self.gate_open() || self.queue.is_empty() {
            return false;
        }
        self.drain_scheduled = true;
        true
    }

    /// The next event the drain may start, if the gate is open. Ends the drain otherwise.
    pub fn next_event(&mut self) -> Option<u32> {
        if self.gate_open() {
            if let Some(token) = self.queue.pop_front() {
                self.busy += 1;
                return Some(token);
            }
        }
        self.drain_scheduled = false;
        None
    }

    /// Puts a just-started event back at the front when the gate closed under it (a constructor
    /// began a `blockConcurrencyWhile`), ending the drain. True when it was put back.
    pub fn wait_for_gate(&mut self, token: u32) -> bool {
        if self.gate_open() {
            return false;
        }
        self.queue.push_front(token);
        self.busy = self.busy.saturating_sub(1);
        self.drain_scheduled = false;
        true
    }

    /// Work that keeps the object from being evicted without being an event (`waitUntil`).
    pub fn keep_alive(&mut self) {
        self.busy += 1;
    }

    /// An event (or kept-alive work) of `epoch` has ended.
    pub fn finish(&mut self, epoch: u32, now: Instant) {
        if epoch == self.epoch {
            self.busy = self.busy.saturating_sub(1);
            self.last_active = now;
        }
    }

    pub fn hold(&mut self) -> u32 {
        self.holds += 1;
        self.epoch
    }

    /// Releases a hold taken in `epoch`. True when the caller must schedule a drain.
    pub fn release(&mut self, epoch: u32) -> bool {
        if epoch != self.epoch {
            return false;
        }
        self.holds = self.holds.saturating_sub(1);
        self.claim_drain()
    }

    /// Forgets the instance: its holds and work. Queued events stay for the next instance.
    /// True when the caller must schedule a drain.
    pub fn reset(&mut self, now: Instant) -> bool {
        self.epoch = self.epoch.wrapping_add(1);
        self.holds = 0;
        self.busy = 0;
        self.live = false;
        self.last_active = now;
        self.claim_drain()
    }

    pub fn set_live(&mut self, live: bool, now: Instant) {
        self.live = live;
        self.last_active = now;
    }

    /// Live, with nothing running, held or queued, since at least `idle`.
    pub fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        self.live
            && self.busy == 0
            && self.holds == 0
            && self.queue.is_empty()
            && now.duration_since(self.last_active) >= idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(a: &mut Actor) -> Vec<u32> {
        std::iter::from_fn(|| a.next_event()).collect()
    }

    #[test]
    fn events_run_in_fifo_order_with_one_drain() {
        let mut a = Actor::new(Instant::now());
        assert!(a.enqueue(1));
        assert!(!a.enqueue(2), "a drain is already scheduled");
        assert_eq!(drain(&mut a), [1, 2]);
        assert!(
            a.enqueue(3),
            "the drain ended, the next event schedules another"
        );
    }

    #[test]
    fn a_held_gate_stops_the_queue_until_released() {
        let mut a = Actor::new(Instant::now());
        a.enqueue(1);
        a.enqueue(2);
        assert_eq!(a.next_event(), Some(1));
        let epoch = a.hold(); // event 1 starts a storage operation
        assert_eq!(a.next_event(), None);
        assert!(!a.enqueue(3));
        let inner = a.hold();
        assert!(!a.release(inner), "still held once");
        assert!(a.release(epoch));
        assert_eq!(drain(&mut a), [2, 3]);
    }

    #[test]
    fn an_event_waits_when_its_constructor_closes_the_gate() {
        let mut a = Actor::new(Instant::now());
        a.enqueue(1);
        a.enqueue(2);
        a.enqueue(3);
        assert_eq!(a.next_event(), Some(1));
        assert!(!a.wait_for_gate(1), "gate open: the event runs");
        assert_eq!(a.next_event(), Some(2));
        let epoch = a.hold();
        assert!(a.wait_for_gate(2));
        assert!(
            a.release(epoch),
            "the drain ended, so the release schedules one"
        );
        assert_eq!(drain(&mut a), [2, 3]);
    }

    #[test]
    fn holds_of_a_reset_instance_do_not_count() {
        let mut a = Actor::new(Instant::now());
        let old = a.hold();
        a.enqueue(1);
        assert!(
            a.reset(Instant::now()),
            "queued events go to the next instance"
        );
        assert!(!a.release(old));
        assert_eq!(drain(&mut a), [1]);
        let new = a.hold();
        assert!(
            !a.release(old),
            "a stale release leaves the new hold in place"
        );
        assert_eq!(a.next_event(), None);
        a.enqueue(2);
        assert!(a.release(new));
    }

    #[test]
    fn idle_means_live_quiet_and_old_enough() {
        let t0 = Instant::now();
        let idle = Duration::from_millis(10);
        let mut a = Actor::new(t0);
        assert!(!a.is_idle(t0 + idle, idle), "not live");
        a.set_live(true, t0);
        a.enqueue(1);
        assert_eq!(a.next_event(), Some(1));
        assert!(!a.is_idle(t0 + idle, idle), "an event is running");
        a.finish(a.epoch(), t0 + idle);
        assert!(!a.is_idle(t0 + idle, idle), "just active");
        assert!(a.is_idle(t0 + idle * 2, idle));
        a.keep_alive();
        assert!(!a.is_idle(t0 + idle * 3, idle), "waitUntil keeps it");
    }
}
