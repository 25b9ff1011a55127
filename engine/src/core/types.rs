//! Plain data shared by the core, storage and the network layer.
//!
//! These types are deliberately independent of the wire protocol (`d-engine-proto`):
//! the core stays free of codegen, and the network layer converts at the edge.
//! Storage backends persist these types with their own binary encoding.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

/// A node's identity in a cluster. `0` is never a valid id (it means "none" on the wire).
pub type NodeId = u64;
/// A Raft term.
pub type Term = u64;
/// A log index. The first real entry has index 1; index 0 is the empty-log sentinel.
pub type LogIndex = u64;

/// A client session: a write carrying one is applied at most once per
/// `(client_id, lane, seq)`, even when the client retries it.
///
/// One client id per client process; a `lane` per write the process has in flight at
/// once (the Rust client numbers them from 0 as its concurrency grows). Each lane
/// numbers its writes `seq = 1, 2, …` with one outstanding at a time, which is what
/// lets the state machine tell a retry from a new write without a registration step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientSession {
    pub client_id: u64,
    pub seq: u64,
    pub lane: u32,
}

/// What identifies a session in the replicated session table: `(client_id, lane)`.
pub type SessionKey = (u64, u32);

impl ClientSession {
    pub fn key(&self) -> SessionKey {
        (self.client_id, self.lane)
    }
}

/// The voting configuration of a cluster.
///
/// `voters_outgoing` is non-empty only during joint consensus (C_old,new): then a
/// decision needs a majority of `voters` *and* a majority of `voters_outgoing`.
/// Learners receive the log but never vote and never count towards a quorum.
///
/// `addresses` says where each member listens (`host:port`). It travels with the
/// membership through config entries and snapshot metas, so a node restarted from any
/// durable state knows every current member and can dial it. The core only carries it
/// along (adds what a change names, drops what leaves); it never dials anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub voters_outgoing: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    pub addresses: BTreeMap<NodeId, String>,
}

impl Membership {
    /// A configuration of voters only.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            ..Default::default()
        }
    }

    /// True while in the joint configuration C_old,new.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// True if `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// True if `id` is a learner.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    /// Every node that receives the log: voters of both halves and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.voters_outgoing.iter().copied());
        all.extend(self.learners.iter().copied());
        all
    }

    /// Drops the addresses of nodes that are no longer members.
    pub fn retain_member_addresses(&mut self) {
        let members = self.members();
        self.addresses.retain(|id, _| members.contains(id));
    }
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryPayload {
    /// Appended by every new leader at the start of its term, so that entries of
    /// earlier terms get committed through it (Raft §5.4.2, "Figure 8").
    Noop,
    /// An opaque state-machine command, with the client session if the client sent one.
    Command {
        session: Option<ClientSession>,
        data: Bytes,
    },
    /// A membership change; takes effect as soon as it is appended (not when committed).
    Config(Membership),
}

/// One replicated log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub payload: EntryPayload,
}

impl Entry {
    /// Payload bytes, used for in-flight byte accounting and size limits.
    pub fn payload_len(&self) -> usize {
        match &self.payload {
            EntryPayload::Noop => 0,
            EntryPayload::Command { data, .. } => data.len(),
            EntryPayload::Config(m) => {
                8 * (m.voters.len() + m.voters_outgoing.len() + m.learners.len())
            }
        }
    }
}

/// The state that must be durable before any message that depends on it is sent:
/// the current term and the vote cast in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
}

/// What a snapshot covers: every entry up to `last_index` (of term `last_term`) is
/// folded into the state machine image, and `membership` is the configuration in force
/// at `last_index`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub last_index: LogIndex,
    pub last_term: Term,
    pub membership: Membership,
}
