//! What the network services ask of the event loop, and how it answers.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::core::{ClientSession, LogIndex, Message, NodeId, ReadConsistency, SnapshotMeta};

/// A read to serve from the state machine once it is safe to.
#[derive(Clone, Debug)]
pub(crate) enum ReadQuery {
    Get(Bytes),
    /// Keys in `[start, end)` (or with `prefix`, if set), at most `limit`.
    Scan {
        start: Bytes,
        end: Option<Bytes>,
        prefix: Option<Bytes>,
        limit: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadAnswer {
    Value(Option<Bytes>),
    Items(Vec<(Bytes, Bytes)>),
}

/// Why a request was not served. Every variant says whether it may have taken effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RequestError {
    NotLeader {
        leader: Option<NodeId>,
    },
    /// A queue is full; nothing was done.
    Busy,
    /// This node's disk is full: nothing was done. `leader` is the leader it knows
    /// of, if another node (whose disk may have room).
    NoSpace {
        leader: Option<NodeId>,
    },
    /// The proposal's log entry was replaced by another leader's: it was not applied.
    Dropped,
    /// The node stopped (or lost track) after the write reached the log: it may or may
    /// not take effect. Clients must treat it like a timeout.
    OutcomeUnknown(String),
    Transferring,
    ShuttingDown,
    /// Storage or the state machine failed: the outcome of a write is unknown.
    Internal(String),
    Membership(String),
    InvalidArgument(String),
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

/// The answer to a received snapshot: installed (new state and log durable), or why not.
pub(crate) type InstallReply = oneshot::Sender<Result<(), String>>;

/// A client's write, committed and applied: its index and the encoded `KvResult`.
pub(crate) type WriteDone = (LogIndex, Bytes);
/// A read, served at `applied` index.
pub(crate) type ReadDone = (LogIndex, ReadAnswer);

#[derive(Debug)]
pub(crate) enum AdminOp {
    AddLearners(Vec<(NodeId, String)>),
    Promote(Vec<NodeId>),
    Remove(Vec<NodeId>),
    TransferLeader(NodeId),
    SnapshotNow,
}

/// Requests from clients and operators. They share one bounded queue: when it is full
/// the service answers BUSY at once instead of queueing without bound.
#[derive(Debug)]
pub(crate) enum ClientRequest {
    Write {
        session: Option<ClientSession>,
        command: Bytes,
        reply: Reply<WriteDone>,
    },
    Read {
        consistency: ReadConsistency,
        query: ReadQuery,
        reply: Reply<ReadDone>,
    },
    Admin {
        op: AdminOp,
        reply: Reply<u64>,
    },
    Status {
        reply: oneshot::Sender<super::status::NodeStatus>,
    },
}

/// Traffic from peers. A separate bounded queue, waited on (not refused) when full, so
/// a flood of clients can never starve Raft of its own messages.
#[derive(Debug)]
pub(crate) enum PeerInbound {
    Message {
        from: NodeId,
        msg: Message,
    },
    /// A vote or pre-vote request whose answer goes back on the same call.
    VoteRequest {
        from: NodeId,
        msg: Message,
        reply: oneshot::Sender<Message>,
    },
    /// A leader opened a replication stream: answers to its appends go back on it.
    StreamOpened {
        from: NodeId,
        replies: mpsc::Sender<Message>,
    },
    /// A whole snapshot received (checksums verified), staged durably at `path`.
    /// `done` is answered once it is installed and durable (or why not).
    Snapshot {
        from: NodeId,
        term: u64,
        meta: SnapshotMeta,
        path: std::path::PathBuf,
        done: InstallReply,
    },
}
