//! A node's view of itself and, when it leads, of its peers.

use crate::core::{LogIndex, Membership, NodeId, Role, Term};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: NodeId,
    pub addr: String,
    pub voter: bool,
    pub match_index: LogIndex,
    pub next_index: LogIndex,
    /// Entries behind the leader's last index.
    pub lag: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub cluster_id: u64,
    pub addr: String,
    pub role: Role,
    /// True if this node is a learner in the current membership.
    pub learner: bool,
    pub term: Term,
    pub leader: Option<NodeId>,
    pub commit_index: LogIndex,
    pub applied_index: LogIndex,
    pub first_index: LogIndex,
    pub last_index: LogIndex,
    pub snapshot_index: LogIndex,
    pub membership: Membership,
    /// Storage holds writes back because the disk is full (writes answer NO_SPACE).
    pub no_space: bool,
    /// Only on the leader: every other member's replication progress.
    pub peers: Vec<PeerStatus>,
}
