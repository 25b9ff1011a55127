//! Where each node listens. Seeded from the configured initial members and kept up to
//! date from the replicated membership, which carries every member's address (config
//! entries and snapshot metas), so a node restarted from any durable state can reach
//! and accept every current member.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::core::NodeId;

/// Keys starting with this byte are reserved for the engine; clients may not write
/// them, and scans leave them out. (Releases before memberships carried addresses
/// kept them under such keys; those keys may still be in old state machines.)
pub const RESERVED_KEY_PREFIX: u8 = 0xFF;

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
