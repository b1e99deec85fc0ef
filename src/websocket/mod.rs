//! WebSockets owned by the core, so that they outlive the JS instance of their object
//! (hibernation): the per-runtime [`Hub`] of sockets and the network connections ([`net`]).
//!
//! JS reaches the hub with synchronous calls (accept, list, tags, attachments, send). Network
//! frames arrive on a tokio thread; they are queued in the hub's inbox and JS is woken once per
//! batch (a threadsafe function with no payload), then takes the whole batch in one call.
//! Auto-responses are answered on the tokio thread without waking JS at all.

pub mod hub;
pub mod net;

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

pub use hub::{AutoResponse, HubState, MAX_SOCKETS_PER_OBJECT};

/// What a connection task reports to JS.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    Text(String),
    Binary(Vec<u8>),
    /// A Close frame (`clean`), or the connection ending without one (1006, not clean).
    Close {
        code: u16,
        reason: String,
        clean: bool,
    },
    /// A transport error (oversized message, malformed frame); the connection is gone.
    Error(String),
}

pub struct Event {
    pub socket: u32,
    pub owner: u32,
    pub what: Inbound,
}

pub struct Hub {
    pub state: Mutex<HubState>,
    inbox: Mutex<Vec<Event>>,
    wake: Box<dyn Fn() + Send + Sync>,
    closed: AtomicBool,
}

impl Hub {
    pub fn new(wake: Box<dyn Fn() + Send + Sync>) -> Self {
        Hub {
            state: Mutex::new(HubState::default()),
            inbox: Mutex::new(Vec::new()),
            wake,
            closed: AtomicBool::new(false),
        }
    }

    /// Queues an event for JS, waking it when the inbox was empty (one wake per batch).
    pub fn push(&self, socket: u32, what: Inbound) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let owner = match self.state.lock().get(socket) {
            Ok(s) => s.owner,
            Err(_) => return, // removed meanwhile: nobody is listening
        };
        let first = {
            let mut inbox = self.inbox.lock();
            inbox.push(Event {
                socket,
                owner,
                what,
            });
            inbox.len() == 1
        };
        if first {
            (self.wake)();
        }
    }

    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.inbox.lock())
    }

    /// The runtime is going away: connections are closed (1001) and no more events are queued.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut state = self.state.lock();
        let ids: Vec<u32> = state.ids().collect();
        for id in ids {
            if let Some(link) = state.remove(id).and_then(|s| s.link) {
                link.close(1001, "The Durable Object runtime is shutting down.");
            }
        }
    }
}
