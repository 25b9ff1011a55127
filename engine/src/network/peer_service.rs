//! The peer service: what other nodes of the cluster call.
//!
//! Every message is checked before Raft sees it: the cluster id must be ours and the
//! sender a node we know, the payload must convert cleanly, and it must pass the
//! core's stateless rules (`core::refusal`: no term or index of `u64::MAX`,
//! consecutive entries, a snapshot with voters). Refusals are logged and counted.
//! Replies to votes and appends come back from the event loop on the call or stream
//! they answer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use d_engine_proto::v1 as pb;
use d_engine_proto::v1::raft_peer_server::RaftPeer;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use super::address_book::AddressBook;
use super::convert;
use crate::core::{Body, Message, NodeId, refusal};
use crate::node::request::PeerInbound;

/// Snapshot transfers received at once; another is refused (the leader retries).
pub const INBOUND_SNAPSHOTS_MAX: usize = 1;

/// Replies of one inbound replication stream queued for the peer (from the event
/// loop, and encoded for the response stream). Past it the event loop drops the
/// reply, as a lost message would be: the leader sends again.
pub const REPLICATE_REPLIES_QUEUE: usize = 1024;

/// Counters of refused peer messages, by reason.
#[derive(Debug, Default)]
pub struct RefusedCounters {
    pub wrong_cluster: AtomicU64,
    pub unknown_sender: AtomicU64,
    pub malformed: AtomicU64,
    /// Messages breaking a rule of `core::refusal` (an absurd term or index, gapped
    /// entries, a snapshot without voters).
    pub invalid: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct PeerService {
    pub me: NodeId,
    pub cluster_id: u64,
    pub book: AddressBook,
    pub inbound: mpsc::Sender<PeerInbound>,
    pub refused: Arc<RefusedCounters>,
    /// The term this node is in, for the header of refusals.
    pub term: Arc<AtomicU64>,
    /// Where received snapshots are staged, and the bound on concurrent transfers.
    pub staging: SnapshotStaging,
    pub inbound_snapshots: Arc<tokio::sync::Semaphore>,
}

use crate::storage::snapshot_staging::{BeginError, SnapshotStaging, StagedTransfer};
use pb::install_snapshot_response::Status as Status_;

type ReplyStream = Pin<Box<dyn Stream<Item = Result<pb::ReplicateResponse, Status>> + Send>>;

impl PeerService {
    fn snapshot_reply(
        &self,
        status: Status_,
        next_offset: u64,
        reason: String,
    ) -> pb::InstallSnapshotResponse {
        pb::InstallSnapshotResponse {
            header: Some(self.header()),
            status: status as i32,
            next_offset,
            reason,
        }
    }

    /// Reads one transfer stream into the staging directory. `Stopped` carries the
    /// reply for a stream that ends without a whole image (refused, cut, or asked to
    /// resume elsewhere).
    async fn receive_snapshot(
        &self,
        mut chunks: Streaming<pb::SnapshotChunk>,
    ) -> Result<Received, Status> {
        let refuse =
            |reason: String| Received::Stopped(self.snapshot_reply(Status_::Rejected, 0, reason));
        let mut check = ChunkCheck::default();
        let mut staged: Option<StagedTransfer> = None;
        let mut from_term = None;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                // The link broke: keep what is durable for a resume.
                Err(_) => break,
            };
            let (from, term) = self.admit(chunk.header.as_ref()).map_err(|(_, s)| s)?;
            from_term.get_or_insert((from, term));
            if let Err(reason) = check.add(&chunk) {
                let _ = self.malformed(&reason);
                return Ok(refuse(reason));
            }
            let mut t = match staged.take() {
                Some(t) => t,
                None => {
                    let meta = check
                        .meta
                        .clone()
                        .expect("checked: the first chunk has the meta");
                    let msg = Message {
                        term,
                        body: Body::InstallSnapshot { meta: meta.clone() },
                    };
                    if let Err(s) = self.check(from, &msg) {
                        return Ok(refuse(s.message().to_string()));
                    }
                    match self
                        .begin_staging(chunk.snapshot_id, meta, chunk.offset)
                        .await
                    {
                        Ok(t) => t,
                        Err(BeginError::ResumeFrom(o)) => {
                            return Ok(Received::Stopped(self.snapshot_reply(
                                Status_::Incomplete,
                                o,
                                format!("resume from offset {o}"),
                            )));
                        }
                        Err(BeginError::Storage(e)) => {
                            warn!(from, error = %e, "cannot stage the snapshot being received");
                            return Ok(refuse(format!("cannot stage the snapshot: {e}")));
                        }
                    }
                }
            };
            let (last, total, crc) = (chunk.last, chunk.total_bytes, chunk.total_crc32c);
            let data = chunk.data;
            let wrote = blocking(move || t.write(&data).map(|()| t)).await;
            let t = match wrote {
                Ok(t) => t,
                Err(e) => {
                    warn!(from, error = %e, "cannot stage the snapshot being received");
                    return Ok(refuse(format!("cannot stage the snapshot: {e}")));
                }
            };
            if last {
                let meta = t.meta().clone();
                return match blocking(move || t.finish(total, crc)).await {
                    Ok(path) => {
                        let (from, term) = from_term.expect("set by the first chunk");
                        Ok(Received::Done {
                            from,
                            term,
                            path: (meta, path),
                        })
                    }
                    Err(e) => Ok(refuse(format!("snapshot refused: {e}"))),
                };
            }
            staged = Some(t);
        }
        // Ended without the last chunk: what is durable is where the sender resumes.
        let next = match staged {
            Some(mut t) => blocking(move || t.sync().map(|()| t.offset()))
                .await
                .unwrap_or(0),
            None => 0,
        };
        Ok(Received::Stopped(self.snapshot_reply(
            Status_::Incomplete,
            next,
            "stream ended before the last chunk".into(),
        )))
    }

    async fn begin_staging(
        &self,
        id: u64,
        meta: crate::core::SnapshotMeta,
        offset: u64,
    ) -> Result<StagedTransfer, BeginError> {
        let staging = self.staging.clone();
        tokio::task::spawn_blocking(move || staging.begin(id, &meta, offset))
            .await
            .unwrap_or_else(|e| {
                Err(BeginError::Storage(crate::storage::StorageError::Backend {
                    backend: "snapshot staging",
                    message: e.to_string(),
                }))
            })
    }

    fn header(&self) -> pb::PeerHeader {
        pb::PeerHeader {
            cluster_id: self.cluster_id,
            from: self.me,
            term: self.term.load(Ordering::Relaxed),
        }
    }

    /// The answer on a replication stream to a request that was refused.
    fn rejection(&self, msg_id: u64, why: pb::PeerRejection) -> pb::ReplicateResponse {
        pb::ReplicateResponse {
            header: Some(self.header()),
            msg_id,
            body: Some(pb::replicate_response::Body::Rejected(why as i32)),
        }
    }

    /// Checks a message's header; the error says why it is refused.
    fn admit(
        &self,
        header: Option<&pb::PeerHeader>,
    ) -> Result<(NodeId, u64), (pb::PeerRejection, Status)> {
        let Some(h) = header else {
            self.count_refusal("malformed");
            return Err((
                pb::PeerRejection::Malformed,
                Status::invalid_argument("missing peer header"),
            ));
        };
        if h.cluster_id != self.cluster_id {
            self.count_refusal("wrong_cluster");
            warn!(
                from = h.from,
                cluster = h.cluster_id,
                "peer message for another cluster refused"
            );
            return Err((
                pb::PeerRejection::WrongCluster,
                Status::permission_denied(format!(
                    "cluster id {} is not {}",
                    h.cluster_id, self.cluster_id
                )),
            ));
        }
        if h.from == 0 || h.from == self.me || !self.book.contains(h.from) {
            self.count_refusal("unknown_sender");
            warn!(from = h.from, "peer message from an unknown node refused");
            return Err((
                pb::PeerRejection::UnknownSender,
                Status::permission_denied(format!("unknown sender {}", h.from)),
            ));
        }
        Ok((h.from, h.term))
    }

    /// Counts a refusal; returns how many of its kind this node has refused so far.
    fn count_refusal(&self, reason: &'static str) -> u64 {
        let counter = match reason {
            "wrong_cluster" => &self.refused.wrong_cluster,
            "unknown_sender" => &self.refused.unknown_sender,
            "malformed" => &self.refused.malformed,
            _ => &self.refused.invalid,
        };
        let seen = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let node = self.me.to_string();
        metrics::counter!(crate::metrics::PEER_REFUSED, "node" => node, "reason" => reason)
            .increment(1);
        seen
    }

    fn malformed(&self, e: impl std::fmt::Display) -> Status {
        self.count_refusal("malformed");
        Status::invalid_argument(e.to_string())
    }

    /// The core's stateless rules, applied here too so that a refusal is counted in
    /// the metrics (the core would refuse the message as well). Logged at warn for the
    /// 1st, 2nd, 4th, 8th… refusal, so a flood cannot flood the log.
    fn check(&self, from: NodeId, msg: &Message) -> Result<(), Status> {
        let Err(r) = refusal::check(msg) else {
            return Ok(());
        };
        let seen = self.count_refusal(r.name());
        if seen.is_power_of_two() {
            warn!(from, reason = %r, msg = %msg, refused = seen, "invalid peer message refused");
        } else {
            debug!(from, reason = %r, msg = %msg, "invalid peer message refused");
        }
        Err(Status::invalid_argument(format!(
            "peer message refused: {r}"
        )))
    }

    async fn vote(&self, req: pb::VoteRequest) -> Result<Response<pb::VoteResponse>, Status> {
        let (from, term) = self.admit(req.header.as_ref()).map_err(|(_, s)| s)?;
        let msg = convert::vote_request_from_pb(&req, term);
        self.check(from, &msg)?;
        let (tx, rx) = oneshot::channel();
        self.inbound
            .send(PeerInbound::VoteRequest {
                from,
                msg,
                reply: tx,
            })
            .await
            .map_err(|_| Status::unavailable("node shutting down"))?;
        let reply = tokio::time::timeout(Duration::from_secs(2), rx).await;
        let (granted, term) = match reply {
            Ok(Ok(Message {
                term,
                body: Body::VoteResp { granted } | Body::PreVoteResp { granted },
            })) => (granted, term),
            _ => (false, self.term.load(Ordering::Relaxed)),
        };
        Ok(Response::new(pb::VoteResponse {
            header: Some(pb::PeerHeader {
                term,
                ..self.header()
            }),
            granted,
            pre_vote: req.pre_vote,
            reject_reason: String::new(),
        }))
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn pre_vote(
        &self,
        req: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        self.vote(req.into_inner()).await
    }

    async fn vote(
        &self,
        req: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        PeerService::vote(self, req.into_inner()).await
    }

    type ReplicateStream = ReplyStream;

    async fn replicate(
        &self,
        req: Request<Streaming<pb::ReplicateRequest>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        let mut incoming = req.into_inner();
        let (reply_tx, mut reply_rx) = mpsc::channel::<Message>(REPLICATE_REPLIES_QUEUE);
        let (out_tx, out_rx) =
            mpsc::channel::<Result<pb::ReplicateResponse, Status>>(REPLICATE_REPLIES_QUEUE);
        let this = self.clone();
        // Replies from the event loop → the response stream.
        let header = self.header();
        let out = out_tx.clone();
        tokio::spawn(async move {
            while let Some(msg) = reply_rx.recv().await {
                if let Some((msg_id, body)) = convert::replicate_response_to_pb(&msg.body) {
                    let resp = pb::ReplicateResponse {
                        header: Some(pb::PeerHeader {
                            term: msg.term,
                            ..header
                        }),
                        msg_id,
                        body: Some(body),
                    };
                    if out.send(Ok(resp)).await.is_err() {
                        return;
                    }
                }
            }
        });
        // Requests → the event loop.
        tokio::spawn(async move {
            let mut registered: Option<NodeId> = None;
            while let Some(item) = incoming.next().await {
                let Ok(req) = item else { return };
                let (from, term) = match this.admit(req.header.as_ref()) {
                    Ok(x) => x,
                    Err((why, _)) => {
                        let _ = out_tx.send(Ok(this.rejection(req.msg_id, why))).await;
                        continue;
                    }
                };
                if registered != Some(from) {
                    registered = Some(from);
                    let opened = PeerInbound::StreamOpened {
                        from,
                        replies: reply_tx.clone(),
                    };
                    if this.inbound.send(opened).await.is_err() {
                        return;
                    }
                }
                let Some(body) = req.body else { continue };
                let body = match convert::replicate_request_from_pb(req.msg_id, body) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = this.malformed(e);
                        let why = pb::PeerRejection::Malformed;
                        let _ = out_tx.send(Ok(this.rejection(req.msg_id, why))).await;
                        continue;
                    }
                };
                let msg = Message { term, body };
                if this.check(from, &msg).is_err() {
                    let why = pb::PeerRejection::Malformed;
                    let _ = out_tx.send(Ok(this.rejection(req.msg_id, why))).await;
                    continue;
                }
                if this
                    .inbound
                    .send(PeerInbound::Message { from, msg })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(out_rx);
        Ok(Response::new(Box::pin(stream)))
    }

    /// Receives a snapshot into the staging directory, resuming where a cut transfer
    /// stopped, and answers INSTALLED only once the node installed it durably.
    async fn install_snapshot(
        &self,
        req: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        // At most `INBOUND_SNAPSHOTS_MAX` transfers are received at once.
        let Ok(_permit) = self.inbound_snapshots.clone().try_acquire_owned() else {
            return Ok(Response::new(self.snapshot_reply(
                Status_::Rejected,
                0,
                "another snapshot transfer is being received; retry later".into(),
            )));
        };
        let received = self.receive_snapshot(req.into_inner()).await?;
        let (from, term, staged) = match received {
            Received::Done { from, term, path } => (from, term, path),
            Received::Stopped(reply) => return Ok(Response::new(reply)),
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        self.inbound
            .send(PeerInbound::Snapshot {
                from,
                term,
                meta: staged.0,
                path: staged.1,
                done,
            })
            .await
            .map_err(|_| Status::unavailable("node shutting down"))?;
        let reply = match answer.await {
            Ok(Ok(())) => self.snapshot_reply(Status_::Installed, 0, String::new()),
            Ok(Err(reason)) => self.snapshot_reply(Status_::Rejected, 0, reason),
            Err(_) => self.snapshot_reply(
                Status_::Rejected,
                0,
                "the node stopped before installing the snapshot".into(),
            ),
        };
        Ok(Response::new(reply))
    }

    async fn timeout_now(
        &self,
        req: Request<pb::TimeoutNowRequest>,
    ) -> Result<Response<pb::TimeoutNowResponse>, Status> {
        let req = req.into_inner();
        let (from, term) = self.admit(req.header.as_ref()).map_err(|(_, s)| s)?;
        let msg = Message {
            term,
            body: Body::TimeoutNow,
        };
        self.check(from, &msg)?;
        self.inbound
            .send(PeerInbound::Message { from, msg })
            .await
            .map_err(|_| Status::unavailable("node shutting down"))?;
        Ok(Response::new(pb::TimeoutNowResponse {
            header: Some(self.header()),
            accepted: true,
        }))
    }
}

/// What a snapshot transfer stream ended with.
enum Received {
    /// The whole image, verified and durable in the staging directory.
    Done {
        from: NodeId,
        term: u64,
        path: (crate::core::SnapshotMeta, std::path::PathBuf),
    },
    Stopped(pb::InstallSnapshotResponse),
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::storage::Result<T> + Send + 'static,
) -> crate::storage::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(crate::storage::StorageError::Backend {
            backend: "snapshot staging",
            message: e.to_string(),
        })
    })
}

/// The chunks of one transfer stream, checked as they arrive: the meta in the first,
/// one snapshot id, contiguous offsets from wherever the stream starts, each chunk's
/// CRC32C and size. The image's total size and CRC are checked by the staging file.
#[derive(Default)]
pub(crate) struct ChunkCheck {
    pub meta: Option<crate::core::SnapshotMeta>,
    pub snapshot_id: Option<u64>,
    pub next_offset: Option<u64>,
    pub complete: bool,
}

impl ChunkCheck {
    pub(crate) fn add(&mut self, c: &pb::SnapshotChunk) -> Result<(), String> {
        if let Some(m) = &c.meta {
            if self.meta.is_some() {
                return Err("snapshot meta sent twice".into());
            }
            self.meta = Some(convert::snapshot_meta_from_pb(m).map_err(|e| e.to_string())?);
        }
        if self.meta.is_none() {
            return Err("first snapshot chunk lacks the meta".into());
        }
        if *self.snapshot_id.get_or_insert(c.snapshot_id) != c.snapshot_id {
            return Err("chunks of two snapshots mixed in one stream".into());
        }
        let expected = *self.next_offset.get_or_insert(c.offset);
        if c.offset != expected {
            return Err(format!(
                "chunk at offset {} where {expected} was expected",
                c.offset
            ));
        }
        if c.data.len() > d_engine_proto::limits::MAX_SNAPSHOT_CHUNK_BYTES {
            return Err(format!("chunk of {} bytes is over the limit", c.data.len()));
        }
        if crc32c::crc32c(&c.data) != c.chunk_crc32c {
            return Err(format!("chunk at offset {} fails its checksum", c.offset));
        }
        self.next_offset = Some(expected + c.data.len() as u64);
        self.complete = c.last;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Membership, SnapshotMeta};
    use crate::network::snapshot_sender::split_chunks;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_index: 10,
            last_term: 2,
            membership: Membership::with_voters([1, 2, 3]),
        }
    }

    fn chunks(image: &bytes::Bytes, start: u64) -> Vec<pb::SnapshotChunk> {
        let header = pb::PeerHeader {
            cluster_id: 1,
            from: 1,
            term: 2,
        };
        let mut out = Vec::new();
        let pieces = std::iter::once(Ok(image.clone()));
        split_chunks(pieces, header, &meta(), 3000, start, &mut |c| {
            out.push(c);
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn chunks_are_checked_and_corruption_or_a_gap_is_refused() {
        let image = bytes::Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let all = chunks(&image, 0);
        assert_eq!(all.len(), 4);
        let mut a = ChunkCheck::default();
        for c in &all {
            a.add(c).unwrap();
        }
        assert!(a.complete);
        assert_eq!(a.meta, Some(meta()));

        // A resumed stream starts anywhere, with the meta in its first chunk.
        let mut a = ChunkCheck::default();
        for c in &chunks(&image, 4500) {
            a.add(c).unwrap();
        }
        assert!(a.complete);

        let mut flipped = all.clone();
        let mut bad = flipped[2].data.to_vec();
        bad[7] ^= 1;
        flipped[2].data = bytes::Bytes::from(bad);
        let mut a = ChunkCheck::default();
        let err = flipped.iter().try_for_each(|c| a.add(c)).unwrap_err();
        assert!(err.contains("checksum"), "{err}");

        let mut a = ChunkCheck::default();
        let err = [&all[0], &all[2]]
            .into_iter()
            .try_for_each(|c| a.add(c))
            .unwrap_err();
        assert!(err.contains("offset"), "{err}");
        let mut a = ChunkCheck::default();
        assert!(a.add(&all[1]).unwrap_err().contains("meta"));
    }
}
