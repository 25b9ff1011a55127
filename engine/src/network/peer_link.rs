//! Outbound traffic to peers: one task per peer with a bounded queue.
//!
//! Appends and heartbeats travel on one long-lived bidirectional `Replicate` stream
//! per peer, whose replies come back on the same stream; votes, timeout-now and
//! snapshots use their own calls.
//!
//! A full queue (`network.peer_queue_max`) drops the message being queued, the newest,
//! rather than the oldest: Raft tolerates the loss of any message, resends what matters
//! (the next heartbeat, a probe after a rejected or unanswered append), and the
//! leader's in-flight limits keep the queue short in steady state, so a queue that
//! fills up means the peer is not keeping up and what waits in it is already due;
//! dropping the oldest would take a lock around a deque on every send for no gain in
//! safety.
//!
//! A broken stream is reopened on the next message, through a channel that reconnects
//! by itself, but no sooner than the reconnect backoff allows ([`Backoff`]); messages
//! for the stream meanwhile are dropped like those of a full queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d_engine_proto::v1 as pb;
use d_engine_proto::v1::raft_peer_client::RaftPeerClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{debug, warn};

use super::address_book::AddressBook;
use super::backoff::Backoff;
use super::channel::peer_channel;
use super::convert;
use crate::config::NetworkConfig;
use crate::core::{Body, Message, NodeId, refusal};
use crate::node::request::PeerInbound;
use crate::storage::StateMachine;

/// Requests queued on one outbound replication stream (appends, heartbeats) while
/// gRPC sends the ones before. Past it a request is dropped, as a lost message
/// would be: Raft sends it again (the next heartbeat or a probe).
pub const REPLICATE_STREAM_QUEUE: usize = 1024;
/// What every link needs to know.
#[derive(Clone)]
pub(crate) struct LinkContext {
    pub me: NodeId,
    pub cluster_id: u64,
    pub book: AddressBook,
    pub net: NetworkConfig,
    pub inbound: mpsc::Sender<PeerInbound>,
    pub sm: Arc<dyn StateMachine>,
    pub snapshot_chunk_bytes: usize,
}

/// The outbound links of one node.
pub(crate) struct Peers {
    ctx: LinkContext,
    links: HashMap<NodeId, mpsc::Sender<Message>>,
}

impl Peers {
    pub(crate) fn new(ctx: LinkContext) -> Self {
        Peers {
            ctx,
            links: HashMap::new(),
        }
    }

    /// Queues `msg` for `to`; drops it if that peer's queue is full.
    pub(crate) fn send(&mut self, to: NodeId, msg: Message) {
        let ctx = &self.ctx;
        let link = self
            .links
            .entry(to)
            .or_insert_with(|| spawn_link(to, ctx.clone()));
        match link.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(m)) => {
                debug!(to, msg = %m, "peer queue full; dropped")
            }
            Err(mpsc::error::TrySendError::Closed(m)) => {
                let link = spawn_link(to, self.ctx.clone());
                let _ = link.try_send(m);
                self.links.insert(to, link);
            }
        }
    }

    /// Closes the links to nodes no longer in the cluster.
    pub(crate) fn retain(&mut self, keep: impl Fn(NodeId) -> bool) {
        self.links.retain(|id, _| keep(*id));
    }
}

fn spawn_link(peer: NodeId, ctx: LinkContext) -> mpsc::Sender<Message> {
    // Validation keeps peer_queue_max >= 1 (mpsc panics on 0).
    let (tx, rx) = mpsc::channel(ctx.net.peer_queue_max);
    tokio::spawn(tracing::Instrument::in_current_span(run_link(
        peer, ctx, rx,
    )));
    tx
}

struct Connection {
    addr: String,
    client: RaftPeerClient<Channel>,
    stream: Option<mpsc::Sender<pb::ReplicateRequest>>,
    /// Shared with the stream's reply task, which resets it on the peer's first answer.
    backoff: Arc<Mutex<Backoff>>,
}

async fn run_link(peer: NodeId, ctx: LinkContext, mut rx: mpsc::Receiver<Message>) {
    let mut conn: Option<Connection> = None;
    let mut snapshot_task: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(msg) = rx.recv().await {
        let Some(addr) = ctx.book.get(peer) else {
            debug!(peer, "no address known for peer; message dropped");
            continue;
        };
        if conn.as_ref().is_none_or(|c| c.addr != addr) {
            let Some(channel) = peer_channel(&addr, &ctx.net) else {
                warn!(peer, %addr, "bad peer address");
                continue;
            };
            let client = RaftPeerClient::new(channel)
                .max_decoding_message_size(d_engine_proto::limits::MAX_PEER_MESSAGE_BYTES)
                .max_encoding_message_size(d_engine_proto::limits::MAX_PEER_MESSAGE_BYTES);
            let backoff = Backoff::new(
                ctx.net.reconnect_backoff_ms_min,
                ctx.net.reconnect_backoff_ms_max,
            );
            conn = Some(Connection {
                addr,
                client,
                stream: None,
                backoff: Arc::new(Mutex::new(backoff)),
            });
        }
        let c = conn.as_mut().expect("connection set above");
        let header = pb::PeerHeader {
            cluster_id: ctx.cluster_id,
            from: ctx.me,
            term: msg.term,
        };
        match &msg.body {
            Body::PreVote { .. } | Body::Vote { .. } => {
                let req = convert::vote_request_to_pb(header, &msg.body).expect("a vote request");
                tokio::spawn(send_vote(peer, c.client.clone(), req, ctx.clone()));
            }
            Body::Append(_) | Body::Heartbeat { .. } => {
                let (msg_id, body) =
                    convert::replicate_body_to_pb(&msg.body).expect("an append or heartbeat");
                let req = pb::ReplicateRequest {
                    header: Some(header),
                    msg_id,
                    body: Some(body),
                };
                send_on_stream(peer, c, req, &ctx);
            }
            Body::InstallSnapshot { meta } => {
                if snapshot_task.as_ref().is_none_or(|t| t.is_finished()) {
                    snapshot_task = Some(tokio::spawn(super::snapshot_sender::send_snapshot(
                        peer,
                        c.client.clone(),
                        header,
                        meta.membership.clone(),
                        ctx.clone(),
                    )));
                }
            }
            Body::TimeoutNow => {
                let mut client = c.client.clone();
                tokio::spawn(async move {
                    let req = pb::TimeoutNowRequest {
                        header: Some(header),
                    };
                    if let Err(e) = client.timeout_now(req).await {
                        debug!(peer, error = %e, "timeout-now failed");
                    }
                });
            }
            other => debug!(
                peer,
                kind = other.name(),
                "a reply reached the outbound link; dropped"
            ),
        }
    }
}

fn send_on_stream(peer: NodeId, c: &mut Connection, req: pb::ReplicateRequest, ctx: &LinkContext) {
    if let Some(s) = &c.stream {
        match s.try_send(req) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                debug!(peer, "replication stream full; dropped");
                return;
            }
            Err(mpsc::error::TrySendError::Closed(r)) => {
                c.stream = None;
                return open_stream(peer, c, r, ctx);
            }
        }
    }
    open_stream(peer, c, req, ctx)
}

/// Opens the replication stream with `first` as its first message, and a task that
/// forwards the peer's replies to the event loop until the stream ends; drops `first`
/// instead while the reconnect backoff holds.
fn open_stream(peer: NodeId, c: &mut Connection, first: pb::ReplicateRequest, ctx: &LinkContext) {
    {
        let mut backoff = c.backoff.lock().expect("backoff lock");
        let now = Instant::now();
        if !backoff.ready(now) {
            let wait_ms = backoff.wait(now).as_millis() as u64;
            return debug!(peer, wait_ms, "reconnect backoff; message dropped");
        }
        backoff.attempt(now);
    }
    let (tx, rx) = mpsc::channel(REPLICATE_STREAM_QUEUE);
    let _ = tx.try_send(first);
    c.stream = Some(tx);
    let mut client = c.client.clone();
    let backoff = c.backoff.clone();
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let mut replies = match client.replicate(ReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(e) => return debug!(peer, error = %e, "replication stream refused"),
        };
        let mut answered = false;
        loop {
            match replies.message().await {
                Ok(Some(r)) => {
                    if !answered {
                        answered = true;
                        backoff.lock().expect("backoff lock").answered();
                    }
                    if !forward_reply(peer, r, &ctx).await {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => return debug!(peer, error = %e, "replication stream ended"),
            }
        }
    });
}

/// Hands one reply to the event loop; false once the loop is gone.
async fn forward_reply(peer: NodeId, r: pb::ReplicateResponse, ctx: &LinkContext) -> bool {
    let Some(header) = r.header else { return true };
    if header.cluster_id != ctx.cluster_id || header.from != peer {
        warn!(
            peer,
            from = header.from,
            cluster = header.cluster_id,
            "reply from the wrong node or cluster ignored"
        );
        return true;
    }
    let Some(body) = r.body else { return true };
    if let pb::replicate_response::Body::Rejected(reason) = body {
        warn!(peer, reason, "peer refused our messages");
        return true;
    }
    let Some(body) = convert::replicate_response_from_pb(r.msg_id, body) else {
        return true;
    };
    let msg = Message {
        term: header.term,
        body,
    };
    if !passes_rules(peer, &msg, ctx) {
        return true;
    }
    ctx.inbound
        .send(PeerInbound::Message { from: peer, msg })
        .await
        .is_ok()
}

/// The core's stateless rules (`core::refusal`) for a reply; a refusal is counted
/// here, where the metrics are (the core would refuse the reply as well).
fn passes_rules(peer: NodeId, msg: &Message, ctx: &LinkContext) -> bool {
    let Err(r) = refusal::check(msg) else {
        return true;
    };
    let node = ctx.me.to_string();
    metrics::counter!(crate::metrics::PEER_REFUSED, "node" => node, "reason" => r.name())
        .increment(1);
    debug!(peer, reason = %r, msg = %msg, "invalid reply from a peer refused");
    false
}

async fn send_vote(
    peer: NodeId,
    mut client: RaftPeerClient<Channel>,
    req: pb::VoteRequest,
    ctx: LinkContext,
) {
    let timeout = Duration::from_millis(ctx.net.request_timeout_ms.min(2_000));
    let call = async {
        if req.pre_vote {
            client.pre_vote(req).await
        } else {
            client.vote(req).await
        }
    };
    let resp = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(e)) => return debug!(peer, error = %e, "vote request failed"),
        Err(_) => return debug!(peer, "vote request timed out"),
    };
    let Some(h) = resp.header else { return };
    if h.cluster_id != ctx.cluster_id || h.from != peer {
        return warn!(peer, "vote reply from the wrong node or cluster ignored");
    }
    let msg = convert::vote_response_from_pb(&resp, h.term);
    if !passes_rules(peer, &msg, &ctx) {
        return;
    }
    let _ = ctx
        .inbound
        .send(PeerInbound::Message { from: peer, msg })
        .await;
}
