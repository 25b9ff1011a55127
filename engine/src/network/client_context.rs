//! What the client and admin services share: the way into the event loop, and the
//! node's view of leadership for reply headers and redirects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use d_engine_proto::v1 as pb;
use tokio::sync::{mpsc, oneshot};

use super::address_book::AddressBook;
use crate::core::NodeId;
use crate::node::request::{ClientRequest, Reply, RequestError};

/// Term and leader as last reported by the event loop (0 = none).
#[derive(Debug, Default)]
pub struct LeaderView {
    pub term: Arc<AtomicU64>,
    pub leader: AtomicU64,
    pub applied: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct ClientContext {
    pub me: NodeId,
    pub cluster_id: u64,
    pub book: AddressBook,
    pub requests: mpsc::Sender<ClientRequest>,
    pub view: Arc<LeaderView>,
    pub request_timeout: Duration,
    pub value_bytes_max: usize,
}

impl ClientContext {
    pub(crate) fn header(&self, applied_index: u64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            node_id: self.me,
            term: self.view.term.load(Ordering::Relaxed),
            leader_id: self.view.leader.load(Ordering::Relaxed),
            applied_index: applied_index.max(self.view.applied.load(Ordering::Relaxed)),
        })
    }

    pub(crate) fn error(
        &self,
        code: pb::ErrorCode,
        message: impl Into<String>,
    ) -> Option<pb::ReplyError> {
        let leader_id = self.view.leader.load(Ordering::Relaxed);
        let leader_addr = if code == pb::ErrorCode::NotLeader {
            self.book.get(leader_id).unwrap_or_default()
        } else {
            String::new()
        };
        Some(pb::ReplyError {
            code: code as i32,
            message: message.into(),
            leader_id,
            leader_addr,
        })
    }

    /// An error naming the leader (if known) and its client address.
    fn with_leader(
        &self,
        code: pb::ErrorCode,
        message: &str,
        leader: Option<crate::core::NodeId>,
    ) -> pb::ReplyError {
        let leader_id = leader.unwrap_or(0);
        pb::ReplyError {
            code: code as i32,
            message: message.into(),
            leader_id,
            leader_addr: self.book.get(leader_id).unwrap_or_default(),
        }
    }

    /// The reply error for a request the loop did not serve.
    pub(crate) fn request_error(&self, e: RequestError) -> Option<pb::ReplyError> {
        use pb::ErrorCode as C;
        match e {
            RequestError::NotLeader { leader } => {
                Some(self.with_leader(C::NotLeader, "not the leader", leader))
            }
            RequestError::NoSpace { leader } => Some(self.with_leader(
                C::NoSpace,
                "this node's disk is full: the write was not done (writes resume by \
                 themselves once space is freed)",
                leader,
            )),
            RequestError::Busy => self.error(C::Busy, "request queue full"),
            RequestError::Dropped => self.error(
                C::Unavailable,
                "leadership changed before the write committed; it was not applied",
            ),
            RequestError::Transferring => {
                self.error(C::Transferring, "leadership transfer in progress")
            }
            RequestError::ShuttingDown => self.error(
                C::ShuttingDown,
                "node shutting down; the request was not applied",
            ),
            RequestError::OutcomeUnknown(m) => {
                self.error(C::Timeout, format!("outcome unknown: {m}"))
            }
            RequestError::Internal(m) => self.error(C::Internal, m),
            RequestError::Membership(m) => self.error(C::MembershipChangeInProgress, m),
            RequestError::InvalidArgument(m) => self.error(C::InvalidArgument, m),
        }
    }

    /// Checks the request header's cluster id (0 = not checked).
    pub(crate) fn check_cluster(
        &self,
        header: Option<&pb::RequestHeader>,
    ) -> Result<(), Option<pb::ReplyError>> {
        match header {
            Some(h) if h.cluster_id != 0 && h.cluster_id != self.cluster_id => Err(self.error(
                pb::ErrorCode::WrongCluster,
                format!(
                    "this node belongs to cluster {}, not {}",
                    self.cluster_id, h.cluster_id
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Sends `make(reply)` to the event loop and waits for the answer, at most the
    /// request's timeout. `Err(None)` means the deadline passed (outcome unknown).
    pub(crate) async fn call<T>(
        &self,
        header: Option<&pb::RequestHeader>,
        make: impl FnOnce(Reply<T>) -> ClientRequest,
    ) -> Result<T, Option<RequestError>> {
        let (tx, rx) = oneshot::channel();
        match self.requests.try_send(make(tx)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(crate::metrics::BUSY, "node" => self.me.to_string()).increment(1);
                return Err(Some(RequestError::Busy));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(Some(RequestError::ShuttingDown));
            }
        }
        let timeout = match header.map(|h| h.timeout_ms).filter(|&t| t > 0) {
            Some(ms) => Duration::from_millis(ms as u64).min(self.request_timeout),
            None => self.request_timeout,
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(Some(e)),
            // The loop dropped the request without answering: it may have reached Raft.
            Ok(Err(_)) => Err(None),
            Err(_) => Err(None),
        }
    }
}
