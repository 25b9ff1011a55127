//! What the core asks the runtime to do, in order.

use thiserror::Error;

use super::message::Message;
use super::types::{Entry, HardState, LogIndex, NodeId, SnapshotMeta, Term};

/// When a message may leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendWhen {
    /// Immediately (it depends on nothing unsynced).
    Now,
    /// Only after every persist action emitted before it is durable
    /// (vote grants, a candidate's vote requests, follower acknowledgements).
    AfterPersist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Durably store term and vote.
    PersistHardState(HardState),
    /// Durably append `entries`. If `truncate_from` is set, first delete every stored
    /// entry with index `>= truncate_from` (a follower overwriting a conflicting suffix).
    PersistEntries {
        truncate_from: Option<LogIndex>,
        entries: Vec<Entry>,
    },
    /// Send a message to a peer.
    Send {
        to: NodeId,
        msg: Message,
        when: SendWhen,
    },
    /// Apply committed entries to the state machine, in order; answer with
    /// `Event::Applied`. After an `InstallSnapshot`, entries at or below the state
    /// machine's applied index (from batches emitted earlier) must be skipped.
    Apply { entries: Vec<Entry> },
    /// Answer to a proposal: accepted at `(index, term)` — the client's answer is the
    /// result of applying that entry; if a different term is applied at `index`, the
    /// proposal was dropped.
    ProposeResult {
        id: u64,
        result: Result<(LogIndex, Term), ProposeError>,
    },
    /// A read may be served once the state machine has applied `index` (it already has
    /// when this action is emitted).
    ReadResult {
        id: u64,
        result: Result<LogIndex, ReadError>,
    },
    /// Answer to a membership change: the config entry was appended at `index`.
    MembershipResult {
        id: u64,
        result: Result<LogIndex, MembershipError>,
    },
    /// Answer to a transfer request: started (`Ok`) or refused.
    TransferResult { result: Result<(), TransferError> },
    /// Build a snapshot of the state machine (at its applied index, `>= index`) and
    /// answer with `Event::SnapshotBuilt`.
    TakeSnapshot { index: LogIndex },
    /// Durably record the meta of a built snapshot (before compacting the log).
    SaveSnapshotMeta(SnapshotMeta),
    /// Storage may delete every entry `<= upto`.
    CompactLog { upto: LogIndex },
    /// Install the snapshot `meta` received from `from` (its data comes with the
    /// message): replace the state machine, save the meta, delete stored entries
    /// `<= meta.last_index`, or all of them unless `keep_suffix`; answer with
    /// `Event::SnapshotInstalled`.
    InstallSnapshot {
        from: NodeId,
        meta: SnapshotMeta,
        keep_suffix: bool,
    },
    /// Role or leader changed (for logs, metrics, client redirection).
    RoleChanged {
        role: Role,
        term: Term,
        leader: Option<NodeId>,
    },
}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ProposeError {
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("leadership transfer in progress")]
    Transferring,
    /// Too many entries (or bytes) wait for commit: `max_uncommitted_entries` /
    /// `max_uncommitted_bytes`. Nothing was appended.
    #[error("too many uncommitted proposals")]
    Busy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ReadError {
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("too many pending reads")]
    Overloaded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum MembershipError {
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("a membership change is still in progress")]
    ChangeInProgress,
    #[error("leadership transfer in progress")]
    Transferring,
    #[error("node {0} is already a member in that role")]
    AlreadyMember(NodeId),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    #[error("node {0} is not a learner")]
    NotLearner(NodeId),
    #[error("learner {0} has not caught up")]
    NotCaughtUp(NodeId),
    #[error("the change would leave no voter")]
    NoVoters,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TransferError {
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("node {0} is not a voter")]
    NotVoter(NodeId),
    #[error("a transfer is already in progress")]
    InProgress,
    #[error("the transfer timed out")]
    TimedOut,
}
