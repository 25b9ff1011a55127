//! Where each node listens. Seeded from the configured initial members and extended
//! through the replicated state: adding a learner first commits its address under a
//! reserved key (see [`member_key`]), so every node that later leads can reach it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::core::NodeId;

/// Keys starting with this byte are reserved for the engine; clients may not write them.
pub const RESERVED_KEY_PREFIX: u8 = 0xFF;
const MEMBER_PREFIX: &[u8] = b"\xFFdengine/member/";

/// The reserved key holding the address of node `id`.
pub fn member_key(id: NodeId) -> Bytes {
    let mut k = MEMBER_PREFIX.to_vec();
    k.extend_from_slice(id.to_string().as_bytes());
    Bytes::from(k)
}

/// The node id a reserved member key names, if `key` is one.
pub fn parse_member_key(key: &[u8]) -> Option<NodeId> {
    let rest = key.strip_prefix(MEMBER_PREFIX)?;
    std::str::from_utf8(rest)
        .ok()?
        .parse()
        .ok()
        .filter(|&id| id != 0)
}

/// A shared, cheaply cloned map from node id to `host:port`.
#[derive(Clone, Debug, Default)]
pub struct AddressBook {
    inner: Arc<RwLock<HashMap<NodeId, String>>>,
}

impl AddressBook {
    pub fn new(entries: impl IntoIterator<Item = (NodeId, String)>) -> Self {
        AddressBook {
            inner: Arc::new(RwLock::new(entries.into_iter().collect())),
        }
    }

    pub fn get(&self, id: NodeId) -> Option<String> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn insert(&self, id: NodeId, addr: String) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, addr);
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_round_trip_and_reject_others() {
        assert_eq!(parse_member_key(&member_key(42)), Some(42));
        assert_eq!(parse_member_key(b"\xFFdengine/member/0"), None);
        assert_eq!(parse_member_key(b"\xFFdengine/member/x"), None);
        assert_eq!(parse_member_key(b"user/42"), None);
        assert_eq!(member_key(7)[0], RESERVED_KEY_PREFIX);
    }
}
