//! The event loop: one task that owns the Raft core and performs its actions.
//!
//! ```text
//!  peers ──► peer queue (bounded, waited on) ──┐
//!  clients ─► client queue (bounded, BUSY) ────┤
//!  tick timer ─────────────────────────────────┼─► Raft::step ─► actions ─┬─► storage thread (group commit)
//!  storage completions ◄── storage thread ─────┤                          ├─► peer links (bounded queues)
//!  apply results ◄──────── apply thread ───────┘                          ├─► apply thread (entries, reads, snapshots)
//!                                                                          └─► replies to clients
//! ```
//!
//! Completion channels from the storage and apply threads are unbounded, but each
//! message answers one request the loop made, so their length is bounded by the
//! writes and applies in flight, which Raft's own flow control bounds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, trace, warn};

use super::apply::{Applied, ApplyJob};
use super::persist::PersistQueue;
use super::request::{AdminOp, ClientRequest, PeerInbound, RequestError};
use super::status::{NodeStatus, PeerStatus};
use super::tick_clock::TickClock;
use super::waiters::Waiters;
use crate::config::Config;
use crate::core::{
    Action, Body, ConfChange, Entry, EntryPayload, Event, LogIndex, Membership, Message, NodeId,
    Proposal, Raft, ReadConsistency, Role, SendWhen, SnapshotMeta,
};
use crate::error::{Error, StorageError};
use crate::network::peer_link::Peers;
use crate::network::{AddressBook, LeaderView};
use crate::storage::StorageEngine;

/// What woke the event loop.
enum Wake {
    Persisted(u64, Result<(), String>),
    Applied(Applied),
    Peer(PeerInbound),
    Client(ClientRequest),
    Timer,
}

/// Most queued requests taken per loop turn before the core runs, so one busy queue
/// cannot starve the timer or the other queue.
const BATCH_MAX: usize = 512;

/// Most writes handed to storage and not yet durable before the loop stops taking new
/// work (see `storage_has_room`). One turn issues at most a batch of writes past it,
/// so a storage engine whose queue holds this plus `BATCH_MAX` never reports Busy
/// (the file log queues 16,384 by default).
const STORAGE_WRITES_IN_FLIGHT_MAX: u64 = 4_096;

pub(crate) struct EventLoop {
    pub raft: Raft,
    pub config: Arc<Config>,
    pub storage: Arc<dyn StorageEngine>,
    pub apply: std_mpsc::Sender<ApplyJob>,
    pub applied_rx: mpsc::UnboundedReceiver<Applied>,
    pub persisted_tx: mpsc::UnboundedSender<(u64, Result<(), String>)>,
    pub persisted_rx: mpsc::UnboundedReceiver<(u64, Result<(), String>)>,
    pub client_rx: mpsc::Receiver<ClientRequest>,
    pub peer_rx: mpsc::Receiver<PeerInbound>,
    pub peers: Peers,
    pub book: AddressBook,
    pub view: Arc<LeaderView>,
    pub shutdown: watch::Receiver<()>,
    pub persist: PersistQueue,
    pub waiters: Waiters,
    pub vote_waiters: HashMap<NodeId, oneshot::Sender<Message>>,
    pub stream_replies: HashMap<NodeId, mpsc::Sender<Message>>,
    /// Received snapshots waiting for the core's decision: staged file and the
    /// sender's answer.
    pub snapshot_inbox: HashMap<NodeId, (std::path::PathBuf, super::request::InstallReply)>,
    /// The newest snapshot built locally: its membership goes into compaction points.
    pub latest_snapshot: SnapshotMeta,
    pub applied_index: LogIndex,
    pub metrics: crate::metrics::LoopMetrics,
    /// Ticks since the gauges were last published.
    pub ticks_since_publish: u32,
    /// The span every log line of this node is emitted in; carries only its id. Term
    /// and role are on the events that change them ("role changed"): recorded into
    /// this long-lived span, the text formatter would append ` term=N role=X` to its
    /// prefix on every change, so a flapping node's lines would grow without bound.
    pub span: tracing::Span,
    /// Open while this node campaigns: pre-vote and vote rounds log inside it.
    pub election: Option<tracing::Span>,
}

impl EventLoop {
    pub(crate) async fn run(mut self) -> Result<(), Error> {
        let tick = Duration::from_millis(self.config.raft.tick_ms);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let catch_up_max =
            4 * super::bootstrap::core_config(&self.config).election_timeout_ticks_max;
        let mut clock = TickClock::new(std::time::Instant::now(), tick, catch_up_max);
        info!(
            node = self.raft.id(),
            term = self.raft.term(),
            "event loop started"
        );
        let result = loop {
            let wake = tokio::select! {
                biased;
                _ = self.shutdown.changed() => break Ok(()),
                Some((seq, r)) = self.persisted_rx.recv() => Wake::Persisted(seq, r),
                Some(a) = self.applied_rx.recv() => Wake::Applied(a),
                Some(p) = self.peer_rx.recv(), if self.storage_has_room() => Wake::Peer(p),
                // Writes are refused (NO_SPACE) while storage waits for space, so
                // clients are still answered when its queue cannot move.
                Some(c) = self.client_rx.recv(),
                    if self.storage_has_room() || self.storage.waiting_for_space() => Wake::Client(c),
                _ = ticker.tick() => Wake::Timer,
            };
            // Time first: whatever woke the loop is handled by a core that has seen
            // every tick of real time that passed (see `tick_clock`).
            self.step_ticks(clock.due(std::time::Instant::now()));
            if let Err(e) = self.on_wake(wake).and_then(|()| self.perform_actions()) {
                break Err(e);
            }
        };
        let why = if result.is_ok() {
            RequestError::ShuttingDown
        } else {
            RequestError::Internal("node stopped".into())
        };
        self.waiters.fail_all(why);
        self.drain_storage().await;
        match &result {
            Ok(()) => info!(node = self.raft.id(), "event loop stopped"),
            Err(e) => {
                error!(node = self.raft.id(), error = %e, "event loop stopped on a fatal error")
            }
        }
        result
    }

    fn on_wake(&mut self, wake: Wake) -> Result<(), Error> {
        match wake {
            Wake::Persisted(seq, r) => self.on_persisted(seq, r),
            Wake::Applied(a) => self.on_applied(a),
            Wake::Peer(p) => {
                self.on_peer(p);
                for _ in 0..BATCH_MAX {
                    match self.peer_rx.try_recv() {
                        Ok(p) => self.on_peer(p),
                        Err(_) => break,
                    }
                }
                Ok(())
            }
            Wake::Client(c) => {
                self.on_clients(c);
                Ok(())
            }
            Wake::Timer => Ok(()),
        }
    }

    /// Back-pressure on storage: while this many writes wait for storage, the loop
    /// takes no new peer or client work (those wait in their own bounded queues, and
    /// clients get BUSY once theirs is full), so the storage queue never overflows
    /// (overflowing it would fail a write and stop the node).
    fn storage_has_room(&self) -> bool {
        self.persist.in_flight() < STORAGE_WRITES_IN_FLIGHT_MAX
    }

    fn step_ticks(&mut self, n: u64) {
        for _ in 0..n {
            self.raft.step(Event::Tick);
            self.ticks_since_publish += 1;
            if self.ticks_since_publish >= 10 {
                self.ticks_since_publish = 0;
                self.publish_gauges();
                self.hand_over_if_out_of_space();
            }
        }
    }

    /// Waits (bounded) for queued writes to become durable, so a graceful shutdown
    /// leaves nothing half-written that was about to be acknowledged.
    async fn drain_storage(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.persist.all_durable() {
            match tokio::time::timeout_at(deadline, self.persisted_rx.recv()).await {
                Ok(Some((seq, Ok(())))) => {
                    let _ = self.persist.complete(seq);
                }
                _ => break,
            }
        }
    }

    fn on_persisted(&mut self, seq: u64, r: Result<(), String>) -> Result<(), Error> {
        if let Err(e) = r {
            // No retry: after a failed write or fsync the kernel may already have
            // dropped the dirty pages, and a later fsync can report success for data
            // that never reached the disk ("fsyncgate"). Only a restart, which recovers
            // from what is durable, knows what the log holds.
            return Err(
                StorageError::Failed(Box::new(StorageError::InvalidRequest(format!(
                    "log write failed: {e}; the node stops, since what the disk holds is \
                     unknown after a failed write or fsync: check the disk, then restart \
                     the node (it recovers from what is durable)"
                ))))
                .into(),
            );
        }
        let (pos, ready, writes) = self.persist.complete(seq);
        for (latency, entries) in writes {
            self.metrics.log_write_seconds.record(latency.as_secs_f64());
            self.metrics.log_write_entries.record(entries as f64);
        }
        if let Some((index, term)) = pos {
            self.raft.step(Event::Persisted { index, term });
        }
        for (to, msg) in ready {
            self.route(to, msg);
        }
        Ok(())
    }

    fn on_applied(&mut self, a: Applied) -> Result<(), Error> {
        match a {
            Applied::Entries { items } => {
                let Some(&(last, _, _)) = items.last() else {
                    return Ok(());
                };
                for (index, term, result) in items {
                    if let Some((t, reply)) = self.waiters.by_index.remove(&index) {
                        let _ = reply.send(if t == term {
                            Ok((index, result))
                        } else {
                            Err(RequestError::Dropped)
                        });
                    }
                }
                self.unknown_outcome_upto(last);
                self.set_applied(last);
            }
            Applied::SnapshotBuilt(meta) => {
                self.metrics.snapshots_built.increment(1);
                for r in self.waiters.snapshots.drain(..) {
                    let _ = r.send(Ok(meta.last_index));
                }
                let last_index = meta.last_index;
                self.latest_snapshot = meta;
                self.raft.step(Event::SnapshotBuilt { last_index });
            }
            Applied::SnapshotFailed(e) => {
                let why = if e.is_disk_full() {
                    RequestError::NoSpace { leader: None }
                } else {
                    RequestError::Internal(format!("snapshot build failed: {e}"))
                };
                for r in self.waiters.snapshots.drain(..) {
                    let _ = r.send(Err(why.clone()));
                }
                self.raft.step(Event::SnapshotFailed);
            }
            Applied::InstallFailed(meta) => {
                metrics::counter!(crate::metrics::SNAPSHOT_INSTALL_FAILURES, "node" => self.metrics.node.clone())
                    .increment(1);
                self.raft.step(Event::SnapshotInstallFailed { meta });
            }
            Applied::SnapshotInstalled(meta) => {
                self.unknown_outcome_upto(meta.last_index);
                self.metrics.snapshots_installed.increment(1);
                self.latest_snapshot = meta.clone();
                self.set_applied(meta.last_index);
                self.raft.step(Event::SnapshotInstalled { meta });
            }
            Applied::Fatal(e) => {
                return Err(StorageError::Failed(Box::new(StorageError::InvalidRequest(e))).into());
            }
        }
        Ok(())
    }

    /// Writes waiting at or below `index` that were not answered by their own apply
    /// lost their entry to a snapshot install: the snapshot may or may not contain
    /// them, so their outcome is unknown.
    fn unknown_outcome_upto(&mut self, index: LogIndex) {
        while let Some(entry) = self.waiters.by_index.first_entry() {
            if *entry.key() > index {
                break;
            }
            let (_, reply) = entry.remove();
            let why = "a snapshot replaced the log where the write was; it may be in it";
            let _ = reply.send(Err(RequestError::OutcomeUnknown(why.into())));
        }
    }

    fn set_applied(&mut self, index: LogIndex) {
        self.applied_index = index;
        self.view.applied.store(index, Ordering::Relaxed);
        self.raft.step(Event::Applied { index });
        let settled = !self.raft.membership().is_joint();
        let applied = self.applied_index;
        let (done, waiting): (Vec<_>, Vec<_>) = self
            .waiters
            .membership_by_index
            .drain(..)
            .partition(|(i, _)| *i <= applied && settled);
        self.waiters.membership_by_index = waiting;
        for (i, r) in done {
            let _ = r.send(Ok(i));
        }
    }

    fn on_peer(&mut self, p: PeerInbound) {
        match p {
            PeerInbound::Message { from, msg } => {
                trace!(from, msg = %msg, "received");
                self.raft.step(Event::Message { from, msg })
            }
            PeerInbound::VoteRequest { from, msg, reply } => {
                self.vote_waiters.insert(from, reply);
                self.raft.step(Event::Message { from, msg });
            }
            PeerInbound::StreamOpened { from, replies } => {
                self.stream_replies.insert(from, replies);
            }
            PeerInbound::Snapshot {
                from,
                term,
                meta,
                path,
                done,
            } => self.on_snapshot_received(from, term, meta, path, done),
        }
    }

    /// A snapshot staged on disk: the core decides whether to install it. If it does
    /// not (it has the state already, or installs another), the sender is answered
    /// now and the staged file goes.
    fn on_snapshot_received(
        &mut self,
        from: NodeId,
        term: u64,
        meta: SnapshotMeta,
        path: std::path::PathBuf,
        done: super::request::InstallReply,
    ) {
        self.snapshot_inbox.insert(from, (path, done));
        let msg = Message {
            term,
            body: Body::InstallSnapshot { meta: meta.clone() },
        };
        self.raft.step(Event::Message { from, msg });
        if self.raft.installing() == Some(&meta) {
            return; // The InstallSnapshot action takes it from the inbox.
        }
        if let Some((path, done)) = self.snapshot_inbox.remove(&from) {
            let _ = std::fs::remove_file(&path);
            let answer = if meta.last_index <= self.raft.commit_index() {
                Ok(()) // Already covered by what this node has.
            } else {
                Err("not installed: another snapshot is being installed, or a newer term".into())
            };
            let _ = done.send(answer);
        }
    }

    /// Takes a batch of client requests; writes become one proposal batch.
    fn on_clients(&mut self, first: ClientRequest) {
        let mut proposals = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        let no_space = self.storage.waiting_for_space();
        while let Some(req) = next.take() {
            match req {
                ClientRequest::Write { reply, .. } if no_space => {
                    let leader = self.raft.leader().filter(|&l| l != self.raft.id());
                    let _ = reply.send(Err(RequestError::NoSpace { leader }));
                }
                ClientRequest::Write {
                    session,
                    command,
                    reply,
                } => {
                    let id = self.waiters.next_id();
                    self.waiters.proposals.insert(id, reply);
                    proposals.push(Proposal {
                        id,
                        session,
                        data: command,
                    });
                }
                other => self.on_request(other),
            }
            taken += 1;
            if taken < BATCH_MAX {
                next = self.client_rx.try_recv().ok();
            }
        }
        if !proposals.is_empty() {
            self.metrics.proposals.increment(proposals.len() as u64);
            self.raft.step(Event::Propose(proposals));
        }
    }

    fn on_request(&mut self, req: ClientRequest) {
        match req {
            ClientRequest::Write { .. } => unreachable!("writes are batched by on_clients"),
            ClientRequest::Read {
                consistency: ReadConsistency::Serializable,
                query,
                reply,
            } => {
                self.count_read("serializable");
                self.send_apply(ApplyJob::Read { query, reply });
            }
            ClientRequest::Read {
                consistency,
                query,
                reply,
            } => {
                self.count_read(if consistency == ReadConsistency::Lease {
                    "lease"
                } else {
                    "linearizable"
                });
                let id = self.waiters.next_id();
                self.waiters.reads.insert(id, (query, reply));
                self.raft.step(Event::Read { id, consistency });
            }
            ClientRequest::Admin { op, reply } => self.on_admin(op, reply),
            ClientRequest::Status { reply } => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn on_admin(&mut self, op: AdminOp, reply: super::request::Reply<u64>) {
        let mut addresses = BTreeMap::new();
        let changes = match op {
            // A membership change is a log entry: refused while nothing can be written.
            AdminOp::AddLearners(_) | AdminOp::Promote(_) | AdminOp::Remove(_)
                if self.storage.waiting_for_space() =>
            {
                let leader = self.raft.leader().filter(|&l| l != self.raft.id());
                let _ = reply.send(Err(RequestError::NoSpace { leader }));
                return;
            }
            AdminOp::AddLearners(list) => {
                // The addresses become part of the membership the change appends, so
                // every node that stores it (and every later snapshot) can reach them.
                let changes = list.iter().map(|(id, _)| ConfChange::AddLearner(*id));
                let changes = changes.collect();
                addresses.extend(list);
                changes
            }
            AdminOp::Promote(ids) => ids.into_iter().map(ConfChange::Promote).collect(),
            AdminOp::Remove(ids) => ids.into_iter().map(ConfChange::Remove).collect(),
            AdminOp::TransferLeader(target) => return self.start_transfer(target, reply),
            AdminOp::SnapshotNow => {
                self.waiters.snapshots.push(reply);
                self.raft.step(Event::SnapshotNow);
                return;
            }
        };
        let id = self.waiters.next_id();
        self.waiters.membership.insert(id, reply);
        self.raft.step(Event::ChangeMembership {
            id,
            changes,
            addresses,
        });
    }

    fn start_transfer(&mut self, target: NodeId, reply: super::request::Reply<u64>) {
        // Already done: this leader is the target (a retried request, or a leader
        // elected after the request was made). Nothing would ever complete it.
        if target == self.raft.id() && self.raft.role() == Role::Leader {
            let _ = reply.send(Ok(self.raft.term()));
            return;
        }
        let target = if target != 0 {
            target
        } else {
            match self.most_up_to_date_voter() {
                Some(v) => v,
                None => {
                    let _ = reply.send(Err(RequestError::InvalidArgument(
                        "no other voter to transfer to".into(),
                    )));
                    return;
                }
            }
        };
        if let Some((_, old)) = self.waiters.transfer.replace((target, reply)) {
            let _ = old.send(Err(RequestError::Membership(
                "superseded by another transfer".into(),
            )));
        }
        self.raft.step(Event::TransferLeader { target });
    }

    /// The other voter with the highest match index (leader only).
    fn most_up_to_date_voter(&self) -> Option<NodeId> {
        let me = self.raft.id();
        self.raft
            .membership()
            .voters
            .iter()
            .filter(|&&v| v != me)
            .filter_map(|&v| self.raft.progress(v).map(|(m, _)| (m, v)))
            .max()
            .map(|(_, v)| v)
    }

    /// A leader whose disk is full cannot make new entries durable, and refuses
    /// writes: it hands leadership to the most up-to-date voter so the cluster keeps
    /// committing. Called every few ticks; the core's transfer timeout bounds each try.
    fn hand_over_if_out_of_space(&mut self) {
        if self.raft.role() != Role::Leader
            || self.raft.is_transferring()
            || !self.storage.waiting_for_space()
        {
            return;
        }
        if let Some(target) = self.most_up_to_date_voter() {
            warn!(
                node = self.raft.id(),
                target, "disk full: handing leadership over so the cluster keeps committing"
            );
            self.raft.step(Event::TransferLeader { target });
        }
    }

    fn count_read(&self, consistency: &'static str) {
        let node = self.metrics.node.clone();
        metrics::counter!(crate::metrics::READS, "node" => node, "consistency" => consistency)
            .increment(1);
    }

    /// Sets the gauges from the current state (every few ticks: cheap, and recent
    /// enough for a scrape interval of seconds).
    fn publish_gauges(&mut self) {
        let s = self.status();
        let m = &mut self.metrics;
        m.role.set(crate::metrics::role_value(s.role, s.learner));
        m.term.set(s.term as f64);
        m.leader.set(s.leader.unwrap_or(0) as f64);
        m.commit.set(s.commit_index as f64);
        m.applied.set(s.applied_index as f64);
        m.last.set(s.last_index as f64);
        m.snapshot.set(s.snapshot_index as f64);
        m.client_queue.set(self.client_rx.len() as f64);
        m.no_space.set(if s.no_space { 1.0 } else { 0.0 });
        m.peer_queue.set(self.peer_rx.len() as f64);
        for p in &s.peers {
            let (match_index, lag) = m.peer(p.id);
            match_index.set(p.match_index as f64);
            lag.set(p.lag as f64);
        }
        for (reason, n) in self.raft.refusals().iter().filter(|&(_, n)| n > 0) {
            metrics::counter!(crate::metrics::RAFT_REFUSED, "node" => m.node.clone(), "reason" => reason.name())
                .absolute(n);
        }
    }

    pub(crate) fn status(&self) -> NodeStatus {
        let r = &self.raft;
        let me = r.id();
        let last = r.log().last_index();
        let m = r.membership();
        let peers = if r.role() == Role::Leader {
            m.members()
                .into_iter()
                .filter(|&id| id != me)
                .map(|id| {
                    let (match_index, next_index) = r.progress(id).unwrap_or((0, 0));
                    PeerStatus {
                        id,
                        addr: self.book.get(id).unwrap_or_default(),
                        voter: m.is_voter(id),
                        match_index,
                        next_index,
                        lag: last.saturating_sub(match_index),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        NodeStatus {
            id: me,
            cluster_id: self.config.node.cluster_id,
            addr: self.book.get(me).unwrap_or_default(),
            role: r.role(),
            learner: m.is_learner(me),
            term: r.term(),
            leader: r.leader(),
            commit_index: r.commit_index(),
            applied_index: self.applied_index,
            first_index: r.log().first_index(),
            last_index: last,
            snapshot_index: r.snapshot_meta().last_index,
            no_space: self.storage.waiting_for_space(),
            membership: m.clone(),
            peers,
        }
    }

    fn send_apply(&mut self, job: ApplyJob) {
        if self.apply.send(job).is_err() {
            error!("the apply thread is gone");
        }
    }

    /// Sends a message of the core: replies go back on the call or stream they answer,
    /// requests through the outbound link to the peer.
    pub(crate) fn route(&mut self, to: NodeId, msg: Message) {
        trace!(to, msg = %msg, "sending");
        match &msg.body {
            Body::VoteResp { .. } | Body::PreVoteResp { .. } => {
                if let Some(w) = self.vote_waiters.remove(&to) {
                    let _ = w.send(msg);
                }
            }
            Body::AppendResp(_) | Body::HeartbeatResp { .. } => {
                match self.stream_replies.get(&to) {
                    Some(s) => {
                        if let Err(e) = s.try_send(msg)
                            && matches!(e, mpsc::error::TrySendError::Closed(_))
                        {
                            debug!(
                                to,
                                "replication stream from the leader is gone; reply dropped"
                            );
                            self.stream_replies.remove(&to);
                        }
                    }
                    None => {
                        debug!(to, msg = %msg, "no replication stream to answer on; reply dropped")
                    }
                }
            }
            _ => self.peers.send(to, msg),
        }
    }

    /// Performs the core's actions, in order.
    pub(crate) fn perform_actions(&mut self) -> Result<(), Error> {
        let actions = self.raft.take_actions();
        let mut pending_hs = None;
        let mut it = actions.into_iter().peekable();
        while let Some(action) = it.next() {
            match action {
                Action::PersistHardState(hs) => {
                    pending_hs = Some(hs);
                    if !matches!(it.peek(), Some(Action::PersistEntries { .. })) {
                        self.write(Vec::new(), pending_hs.take());
                    }
                }
                Action::PersistEntries {
                    truncate_from,
                    entries,
                } => {
                    if let Some(t) = truncate_from
                        && entries.first().is_none_or(|e| e.index != t)
                    {
                        self.truncate(t);
                    }
                    for e in &entries {
                        if let EntryPayload::Config(m) = &e.payload {
                            learn_addresses(&self.book, self.raft.id(), m);
                        }
                    }
                    if !entries.is_empty() || pending_hs.is_some() {
                        self.write(entries, pending_hs.take());
                    }
                }
                Action::Send { to, msg, when } => {
                    if when == SendWhen::Now || self.persist.all_durable() {
                        self.route(to, msg);
                    } else {
                        self.persist.hold(to, msg);
                    }
                }
                Action::Apply { entries } => self.send_apply(ApplyJob::Entries(entries)),
                Action::ProposeResult { id, result } => self.on_propose_result(id, result),
                Action::ReadResult { id, result } => self.on_read_result(id, result),
                Action::MembershipResult { id, result } => {
                    if let Some(reply) = self.waiters.membership.remove(&id) {
                        match result {
                            Ok(index) => {
                                self.metrics.membership_changes.increment(1);
                                self.waiters.membership_by_index.push((index, reply))
                            }
                            Err(crate::core::MembershipError::NotLeader { leader }) => {
                                let _ = reply.send(Err(RequestError::NotLeader { leader }));
                            }
                            Err(e) => {
                                let _ = reply.send(Err(RequestError::Membership(e.to_string())));
                            }
                        }
                    }
                }
                Action::TransferResult { result } => self.on_transfer_result(result),
                Action::TakeSnapshot { .. } => self.send_apply(ApplyJob::BuildSnapshot),
                Action::SaveSnapshotMeta(meta) => self.latest_snapshot = meta,
                Action::CompactLog { upto } => self.compact(upto),
                Action::InstallSnapshot {
                    from,
                    meta,
                    keep_suffix: _,
                } => {
                    // Storage keeps the log after the snapshot point only if it matches
                    // (same rule the core applied to decide `keep_suffix`).
                    learn_addresses(&self.book, self.raft.id(), &meta.membership);
                    match self.snapshot_inbox.remove(&from) {
                        Some((path, done)) => {
                            info!(
                                from,
                                index = meta.last_index,
                                term = meta.last_term,
                                "installing snapshot"
                            );
                            self.send_apply(ApplyJob::Install { meta, path, done })
                        }
                        None => warn!(from, "asked to install a snapshot whose data is gone"),
                    }
                }
                Action::RoleChanged { role, term, leader } => {
                    self.on_role_changed(role, term, leader)
                }
            }
        }
        if let Some(hs) = pending_hs {
            self.write(Vec::new(), Some(hs));
        }
        Ok(())
    }

    fn write(&mut self, entries: Vec<Entry>, hs: Option<crate::core::HardState>) {
        let last = entries
            .last()
            .map_or(self.persist.last, |e| (e.index, e.term));
        let seq = self.persist.issue(last, entries.len());
        let tx = self.persisted_tx.clone();
        self.storage.append_with(
            entries,
            hs,
            Box::new(move |r| {
                let _ = tx.send((seq, r.map(|_| ()).map_err(|e| e.to_string())));
            }),
        );
    }

    fn truncate(&mut self, from: LogIndex) {
        let prev = from.saturating_sub(1);
        let term = self.raft.log().term(prev).unwrap_or(0);
        let seq = self.persist.issue((prev, term), 0);
        let tx = self.persisted_tx.clone();
        self.storage.truncate_suffix_with(
            from,
            Box::new(move |r| {
                let _ = tx.send((seq, r.map_err(|e| e.to_string())));
            }),
        );
    }

    /// Lets storage drop entries up to `upto`, which the state machine's durable
    /// snapshot covers. The term comes from storage itself, so its "keep the suffix"
    /// check sees exactly what it holds.
    fn compact(&mut self, upto: LogIndex) {
        let Ok(last_term) = self.storage.term(upto) else {
            return debug!(upto, "compaction point already gone from storage");
        };
        let meta = SnapshotMeta {
            last_index: upto,
            last_term,
            membership: self.latest_snapshot.membership.clone(),
        };
        self.storage.purge_prefix_with(
            meta,
            Box::new(move |r| {
                if let Err(e) = r {
                    warn!(upto, error = %e, "log compaction failed");
                }
            }),
        );
    }

    fn on_propose_result(
        &mut self,
        id: u64,
        result: Result<(LogIndex, u64), crate::core::ProposeError>,
    ) {
        let Some(reply) = self.waiters.proposals.remove(&id) else {
            return;
        };
        match result {
            Ok((index, term)) => {
                self.waiters.by_index.insert(index, (term, reply));
            }
            Err(crate::core::ProposeError::NotLeader { leader }) => {
                let _ = reply.send(Err(RequestError::NotLeader { leader }));
            }
            Err(crate::core::ProposeError::Transferring) => {
                let _ = reply.send(Err(RequestError::Transferring));
            }
            Err(crate::core::ProposeError::Busy) => {
                self.metrics.proposals_refused_busy.increment(1);
                let _ = reply.send(Err(RequestError::Busy));
            }
        }
    }

    fn on_read_result(&mut self, id: u64, result: Result<LogIndex, crate::core::ReadError>) {
        let Some((query, reply)) = self.waiters.reads.remove(&id) else {
            return;
        };
        match result {
            // Queued behind every apply already sent, so the state machine has reached
            // the read index by the time it serves this.
            Ok(_) => self.send_apply(ApplyJob::Read { query, reply }),
            Err(crate::core::ReadError::NotLeader { leader }) => {
                let _ = reply.send(Err(RequestError::NotLeader { leader }));
            }
            Err(crate::core::ReadError::Overloaded) => {
                let _ = reply.send(Err(RequestError::Busy));
            }
        }
    }

    fn on_transfer_result(&mut self, result: Result<(), crate::core::TransferError>) {
        if let Err(e) = result
            && let Some((_, reply)) = self.waiters.transfer.take()
        {
            let err = match e {
                crate::core::TransferError::NotLeader { leader } => {
                    RequestError::NotLeader { leader }
                }
                other => RequestError::Membership(other.to_string()),
            };
            let _ = reply.send(Err(err));
        }
    }

    fn on_role_changed(&mut self, role: Role, term: u64, leader: Option<NodeId>) {
        info!(node = self.raft.id(), ?role, term, ?leader, "role changed");
        match role {
            Role::PreCandidate => self.metrics.prevotes.increment(1),
            Role::Candidate => self.metrics.elections_started.increment(1),
            Role::Leader => self.metrics.elections_won.increment(1),
            Role::Follower => {}
        }
        if matches!(role, Role::PreCandidate | Role::Candidate) {
            let span = self
                .election
                .get_or_insert_with(|| tracing::info_span!("election", term));
            span.in_scope(|| debug!(?role, term, "campaigning"));
        } else if let Some(span) = self.election.take() {
            span.in_scope(|| debug!(won = role == Role::Leader, term, "election over"));
        }
        self.view.term.store(term, Ordering::Relaxed);
        self.view
            .leader
            .store(leader.unwrap_or(0), Ordering::Relaxed);
        if let Some((target, _)) = &self.waiters.transfer
            && leader == Some(*target)
        {
            let (_, reply) = self.waiters.transfer.take().expect("checked above");
            let _ = reply.send(Ok(term));
        }
        let members = self.raft.membership().members();
        self.peers
            .retain(|id| members.contains(&id) || self.book.contains(id));
    }
}

/// Records the addresses a membership carries for nodes this one has no address of.
///
/// An address already in the book wins: the node's own configuration may route to a
/// peer differently from the node that wrote the membership (a per-link proxy, as the
/// chaos harness uses, or a NAT), and a member's address never changes under the same
/// id (ids are not reused, and adding an existing member is refused). A placeholder
/// port 0 (the OS chooses; the real address is learned once bound) is never recorded.
pub(crate) fn learn_addresses(book: &AddressBook, me: NodeId, m: &Membership) {
    for (&id, addr) in &m.addresses {
        if id != me && !addr.ends_with(":0") && !book.contains(id) {
            book.insert(id, addr.clone());
        }
    }
}
