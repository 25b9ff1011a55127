//! The systems a run can drive, behind one trait so the same workload code measures
//! all of them.
//!
//! - [`NoopTarget`]: answers in-process at once; its throughput is the generator's own
//!   ceiling.
//! - [`EtcdTarget`]: etcd's v3 gRPC API through the wire-compatible subset in
//!   `d_engine_proto::etcd` (not the `etcd-client` crate, whose build needs a system
//!   `protoc`).
//! - [`DengineTarget`]: d-engine's client gRPC service, with a minimal leader redirect.

use std::future::Future;

use bytes::Bytes;
use serde::Serialize;

mod dengine;
mod etcd;
mod noop;

pub use dengine::DengineTarget;
pub use etcd::EtcdTarget;
pub use noop::NoopTarget;

/// How strong a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Confirmed by a quorum after the read arrives (ReadIndex).
    Linearizable,
    /// Served by the leader within its lease (d-engine only).
    Lease,
    /// Served from any node's local state; may be stale.
    Serializable,
}

impl Consistency {
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Lease => "lease",
            Consistency::Serializable => "serializable",
        }
    }
}

/// The kinds errors are counted by in a summary (`errors.<kind>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No reply within the operation's deadline (ours or the server's).
    Timeout,
    /// The node or the cluster cannot serve: connection refused, no leader, busy,
    /// shutting down.
    Unavailable,
    /// The contacted node is not the leader and no redirect succeeded.
    NotLeader,
    /// The request exceeds a size limit.
    TooLarge,
    /// Anything else.
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::Timeout,
        ErrorKind::Unavailable,
        ErrorKind::NotLeader,
        ErrorKind::TooLarge,
        ErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotLeader => "not_leader",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Other => "other",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A failed operation, classified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct TargetError {
    pub kind: ErrorKind,
    pub message: String,
}

impl TargetError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> TargetError {
        TargetError {
            kind,
            message: message.into(),
        }
    }

    /// Classifies a gRPC status the way both servers use the codes.
    pub fn from_status(status: &tonic::Status) -> TargetError {
        use tonic::Code;
        let msg = status.message().to_string();
        let lower = msg.to_ascii_lowercase();
        let kind = if lower.contains("too large") || lower.contains("message length too large") {
            ErrorKind::TooLarge
        } else if lower.contains("not leader") || lower.contains("not the leader") {
            ErrorKind::NotLeader
        } else {
            match status.code() {
                Code::DeadlineExceeded => ErrorKind::Timeout,
                // etcd says "etcdserver: request timed out" with code Unavailable.
                Code::Unavailable if lower.contains("timed out") => ErrorKind::Timeout,
                Code::Unavailable | Code::Cancelled | Code::Aborted => ErrorKind::Unavailable,
                Code::ResourceExhausted | Code::OutOfRange => ErrorKind::TooLarge,
                _ => ErrorKind::Other,
            }
        };
        TargetError::new(kind, format!("{:?}: {msg}", status.code()))
    }
}

/// What a compare-and-swap did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasResult {
    pub succeeded: bool,
    /// When it did not: the value found (`None` = absent, or not reported).
    pub current: Option<Bytes>,
}

/// A system under test. Implementations are shared by all workers of a run (`&self`),
/// must never block a runtime thread, and should return rather than retry forever: the
/// runner bounds every call with its own deadline anyway.
pub trait Target: Send + Sync + 'static {
    /// Writes `value` at `key`.
    fn put(&self, key: Bytes, value: Bytes)
    -> impl Future<Output = Result<(), TargetError>> + Send;

    /// Reads `key` at `consistency`; `None` = absent.
    fn get(
        &self,
        key: Bytes,
        consistency: Consistency,
    ) -> impl Future<Output = Result<Option<Bytes>, TargetError>> + Send;

    /// Sets `key` to `new` if it holds `expected` (`None` = if it is absent).
    fn cas(
        &self,
        key: Bytes,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> impl Future<Output = Result<CasResult, TargetError>> + Send;

    /// Reads `reads` and writes `writes` (distinct keys) atomically, in one
    /// transaction. The default refuses: the target has no multi-key transactions.
    fn txn(
        &self,
        reads: Vec<Bytes>,
        writes: Vec<(Bytes, Bytes)>,
    ) -> impl Future<Output = Result<(), TargetError>> + Send {
        let _ = (reads, writes);
        async {
            Err(TargetError::new(
                ErrorKind::Other,
                "this target has no multi-key transactions",
            ))
        }
    }

    /// How the target's client shared RPCs among calls, if it batches them.
    fn batching(&self) -> Option<BatchingStats> {
        None
    }

    /// Checks that the target answers at all, before a run starts. The default reads
    /// a key serializably.
    fn probe(&self) -> impl Future<Output = Result<(), TargetError>> + Send {
        async {
            self.get(
                Bytes::from_static(b"bench/probe"),
                Consistency::Serializable,
            )
            .await
            .map(|_| ())
        }
    }
}

/// How many RPCs a batching client sent for how many calls (warm-up included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchingStats {
    /// Batches allowed outstanding per node.
    pub in_flight: usize,
    pub batches: u64,
    pub ops: u64,
    /// Calls sent alone on their own RPC because nothing else was waiting.
    #[serde(default)]
    pub alone: u64,
}

/// `host:port` or a URL → a URL tonic accepts.
pub(crate) fn endpoint_url(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// A lazily connecting channel: construction never waits for the node, so an
/// unreachable endpoint surfaces as an `Unavailable` error on the first call.
pub(crate) fn lazy_channel(addr: &str) -> Result<tonic::transport::Channel, TargetError> {
    let url = endpoint_url(addr);
    let ep = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| TargetError::new(ErrorKind::Other, format!("bad endpoint {url}: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .tcp_nodelay(true);
    Ok(ep.connect_lazy())
}

/// Runs one unary call and classifies a transport failure; the caller interprets the
/// reply.
pub(crate) async fn call<R>(
    fut: impl Future<Output = Result<tonic::Response<R>, tonic::Status>>,
) -> Result<R, TargetError> {
    fut.await
        .map(tonic::Response::into_inner)
        .map_err(|s| TargetError::from_status(&s))
}
