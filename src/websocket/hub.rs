//! The sockets of one runtime's objects, as the core keeps them across hibernation: who owns each,
//! its tags, attachment and auto-response timestamp, and (for network sockets) its link to the
//! connection task. The object-wide settings (auto-response pair, event timeout) live here too,
//! because a hibernated object has no JS instance to hold them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::CoreError;

use super::net::Link;

/// Cloudflare's cap on hibernatable sockets per object (spec 213).
pub const MAX_SOCKETS_PER_OBJECT: usize = 32_768;

/// The text answered by `setWebSocketAutoResponse` without waking the object.
#[derive(Debug, PartialEq, Eq)]
pub struct AutoResponse {
    pub request: String,
    pub response: String,
}

#[derive(Default)]
pub struct Socket {
    pub owner: u32,
    pub hibernatable: bool,
    /// Position in the owner's accept order (the key of `ObjectSockets::accepted`).
    seq: u64,
    pub tags: Vec<String>,
    /// V8-serialized; `None` until `serializeAttachment` is first called (spec 237).
    pub attachment: Option<Vec<u8>>,
    /// Milliseconds since the epoch of the last auto-response sent (spec 231).
    pub auto_response_at: Option<f64>,
    /// This side already sent its Close frame (the next close event is the peer's reply).
    pub close_sent: bool,
    /// A network peer's Close frame arrived (the protocol layer has answered it already).
    pub peer_closed: bool,
    pub link: Option<Link>,
}

#[derive(Default)]
struct ObjectSockets {
    /// Hibernatable sockets by accept order.
    accepted: BTreeMap<u64, u32>,
    auto_response: Option<Arc<AutoResponse>>,
    event_timeout_ms: Option<f64>,
}

#[derive(Default)]
pub struct HubState {
    sockets: HashMap<u32, Socket>,
    objects: HashMap<u32, ObjectSockets>,
    next_id: u32,
    next_seq: u64,
}

impl HubState {
    /// Registers a socket of `owner`; hibernatable ones count against the per-object cap.
    pub fn add(
        &mut self,
        owner: u32,
        hibernatable: bool,
        tags: Vec<String>,
    ) -> Result<u32, CoreError> {
        let id = self.next_id;
        let seq = self.next_seq;
        if hibernatable {
            let object = self.objects.entry(owner).or_default();
            if object.accepted.len() >= MAX_SOCKETS_PER_OBJECT {
                return Err(CoreError::WebSocket(format!(
                    "only {MAX_SOCKETS_PER_OBJECT} websockets can be accepted on a single Durable Object instance"
                )));
            }
            object.accepted.insert(seq, id);
        }
        self.next_id = self.next_id.wrapping_add(1);
        self.next_seq += 1;
        let socket = Socket {
            owner,
            hibernatable,
            seq,
            tags,
            ..Socket::default()
        };
        self.sockets.insert(id, socket);
        Ok(id)
    }

    pub fn get(&self, id: u32) -> Result<&Socket, CoreError> {
        self.sockets.get(&id).ok_or(CoreError::NoSuchSocket(id))
    }

    pub fn get_mut(&mut self, id: u32) -> Result<&mut Socket, CoreError> {
        self.sockets.get_mut(&id).ok_or(CoreError::NoSuchSocket(id))
    }

    /// `getWebSockets()`: newest first; with a tag, oldest first (spec 219).
    pub fn list(&self, owner: u32, tag: Option<&str>) -> Vec<u32> {
        let Some(object) = self.objects.get(&owner) else {
            return Vec::new();
        };
        match tag {
            None => object.accepted.values().rev().copied().collect(),
            Some(tag) => object
                .accepted
                .values()
                .copied()
                .filter(|id| self.sockets[id].tags.iter().any(|t| t == tag))
                .collect(),
        }
    }

    pub fn count(&self, owner: u32) -> usize {
        self.objects.get(&owner).map_or(0, |o| o.accepted.len())
    }

    /// Forgets a socket (after its close or error was dispatched); drops its link.
    pub fn remove(&mut self, id: u32) -> Option<Socket> {
        let socket = self.sockets.remove(&id)?;
        if socket.hibernatable {
            if let Some(object) = self.objects.get_mut(&socket.owner) {
                object.accepted.remove(&socket.seq);
            }
        }
        Some(socket)
    }

    /// Forgets every socket of `owner` and its settings (the runtime is going away).
    pub fn remove_owner(&mut self, owner: u32) -> Vec<Socket> {
        self.objects.remove(&owner);
        let ids: Vec<u32> = self
            .sockets
            .iter()
            .filter(|(_, s)| s.owner == owner)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.sockets.remove(&id))
            .collect()
    }

    pub fn set_auto_response(&mut self, owner: u32, pair: Option<AutoResponse>) {
        self.objects.entry(owner).or_default().auto_response = pair.map(Arc::new);
    }

    pub fn auto_response(&self, owner: u32) -> Option<Arc<AutoResponse>> {
        self.objects.get(&owner)?.auto_response.clone()
    }

    /// The auto-response to `text` arriving on `id`, if it matches; records when it was sent.
    pub fn auto_reply(&mut self, id: u32, text: &str, now_ms: f64) -> Option<Arc<AutoResponse>> {
        let socket = self.sockets.get(&id)?;
        if !socket.hibernatable {
            return None;
        }
        let pair = self.objects.get(&socket.owner)?.auto_response.clone()?;
        if pair.request != text {
            return None;
        }
        self.sockets.get_mut(&id)?.auto_response_at = Some(now_ms);
        Some(pair)
    }

    pub fn set_event_timeout(&mut self, owner: u32, ms: Option<f64>) {
        self.objects.entry(owner).or_default().event_timeout_ms = ms;
    }

    pub fn event_timeout(&self, owner: u32) -> Option<f64> {
        self.objects.get(&owner)?.event_timeout_ms
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.sockets.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lists_newest_first_and_by_tag_oldest_first() {
        let mut hub = HubState::default();
        let a = hub.add(1, true, tags(&["x"])).unwrap();
        let b = hub.add(1, true, tags(&["y"])).unwrap();
        let c = hub.add(1, true, tags(&["x", "y"])).unwrap();
        let _other = hub.add(2, true, tags(&["x"])).unwrap();
        let _standard = hub.add(1, false, Vec::new()).unwrap();
        assert_eq!(hub.list(1, None), vec![c, b, a]);
        assert_eq!(hub.list(1, Some("x")), vec![a, c]);
        assert_eq!(hub.list(1, Some("y")), vec![b, c]);
        assert_eq!(hub.list(1, Some("z")), Vec::<u32>::new());
        assert_eq!(hub.list(9, None), Vec::<u32>::new());
        hub.remove(b);
        assert_eq!(hub.list(1, None), vec![c, a]);
    }

    #[test]
    fn caps_hibernatable_sockets_per_object() {
        let mut hub = HubState::default();
        for _ in 0..MAX_SOCKETS_PER_OBJECT {
            hub.add(1, true, Vec::new()).unwrap();
        }
        let err = hub.add(1, true, Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "only 32768 websockets can be accepted on a single Durable Object instance"
        );
        // Other objects and standard sockets are not affected.
        hub.add(2, true, Vec::new()).unwrap();
        hub.add(1, false, Vec::new()).unwrap();
    }

    #[test]
    fn auto_response_matches_exact_text_of_hibernatable_sockets_only() {
        let mut hub = HubState::default();
        let ws = hub.add(1, true, Vec::new()).unwrap();
        let standard = hub.add(1, false, Vec::new()).unwrap();
        assert!(hub.auto_reply(ws, "ping", 1.0).is_none());
        hub.set_auto_response(
            1,
            Some(AutoResponse {
                request: "ping".into(),
                response: "pong".into(),
            }),
        );
        assert!(hub.auto_reply(ws, "ping ", 2.0).is_none());
        assert!(hub.auto_reply(standard, "ping", 2.0).is_none());
        assert_eq!(hub.get(ws).unwrap().auto_response_at, None);
        assert_eq!(hub.auto_reply(ws, "ping", 3.0).unwrap().response, "pong");
        assert_eq!(hub.get(ws).unwrap().auto_response_at, Some(3.0));
    }
}
