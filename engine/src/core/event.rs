//! What the runtime feeds into the core.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::message::Message;
use super::types::{ClientSession, LogIndex, NodeId, SnapshotMeta, Term};

/// A client write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Runtime-chosen id echoed in `Action::ProposeResult`.
    pub id: u64,
    pub session: Option<ClientSession>,
    pub data: Bytes,
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadConsistency {
    /// ReadIndex: confirmed by a heartbeat quorum round (the default).
    Linearizable,
    /// Served from the leader lease without a round trip; falls back to ReadIndex.
    Lease,
    /// Served locally at the applied index; may be stale.
    Serializable,
}

/// One membership step; several may be requested at once (joint consensus).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChange {
    AddLearner(crate::core::NodeId),
    /// Turn a caught-up learner into a voter.
    Promote(crate::core::NodeId),
    /// Remove a voter or learner.
    Remove(crate::core::NodeId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// One unit of time passed.
    Tick,
    /// A message from a peer.
    Message { from: NodeId, msg: Message },
    /// Client writes (a batch is appended as one).
    Propose(Vec<Proposal>),
    /// A client read.
    Read {
        id: u64,
        consistency: ReadConsistency,
    },
    /// A membership change request. `addresses` gives where added nodes listen; it
    /// is recorded in the new membership (an address given for an existing member
    /// replaces the old one).
    ChangeMembership {
        id: u64,
        changes: Vec<ConfChange>,
        addresses: BTreeMap<NodeId, String>,
    },
    /// Hand leadership to `target`.
    TransferLeader { target: NodeId },
    /// Build a snapshot now, regardless of the policy.
    SnapshotNow,
    /// Start an election now (tests, operator tooling). Still honours pre-vote.
    Campaign,
    /// Storage made every write issued so far up to entry `index` (of term `term`)
    /// durable, including hard states issued before it.
    Persisted { index: LogIndex, term: Term },
    /// The state machine applied every entry up to `index`.
    Applied { index: LogIndex },
    /// The runtime built a snapshot of the state machine at `last_index`.
    SnapshotBuilt { last_index: LogIndex },
    /// The runtime could not build the snapshot asked for (a full disk, say). The
    /// policy asks again after `SNAPSHOT_RETRY_TIMEOUTS` election timeouts, not at
    /// the next applied entry; `SnapshotNow` asks at once.
    SnapshotFailed,
    /// The runtime could not install the snapshot requested by
    /// `Action::InstallSnapshot` (a corrupt image, a full disk): its old state is in
    /// place, and the leader sends a snapshot again.
    SnapshotInstallFailed { meta: SnapshotMeta },
    /// The runtime installed the snapshot requested by `Action::InstallSnapshot`
    /// (state machine image, snapshot meta and log reset are durable).
    SnapshotInstalled { meta: SnapshotMeta },
}
