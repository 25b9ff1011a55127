//! `Raft`: the main type. Holds the state, dispatches events to the handlers in the
//! sibling modules (election, replication, follower, read_index, transfer, membership,
//! snapshot) and collects the actions they emit.

use std::collections::{BTreeMap, VecDeque};

use super::action::{Action, ProposeError, Role, SendWhen};
use super::config::{ConfigError, RaftConfig};
use super::event::{Event, Proposal};
use super::log::RaftLog;
use super::message::{Body, Message};
use super::progress::Progress;
use super::read_index::ReadIndexState;
use super::refusal::Refusals;
use super::rng::Rng;
use super::transfer::Transfer;
use super::types::{
    Entry, EntryPayload, HardState, LogIndex, Membership, NodeId, SnapshotMeta, Term,
};

/// The durable state a node restarts from, as loaded by the runtime from storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub hard_state: HardState,
    /// The latest snapshot (index 0 with a membership for a freshly bootstrapped node).
    pub snapshot: SnapshotMeta,
    /// Stored entries; those at or below `snapshot.last_index` are ignored.
    pub entries: Vec<Entry>,
    /// The state machine's applied index (stored atomically with its data).
    pub applied: LogIndex,
}

impl Restored {
    /// A brand-new member of a brand-new cluster with these voters. The runtime must
    /// persist `snapshot` (index 0) so that a restart sees the same membership.
    pub fn bootstrap(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Restored {
            snapshot: SnapshotMeta {
                last_index: 0,
                last_term: 0,
                membership: Membership::with_voters(voters),
            },
            ..Default::default()
        }
    }

    /// A node joining an existing cluster: it learns everything from the leader.
    pub fn joining() -> Self {
        Restored::default()
    }
}

/// Leader-only state.
#[derive(Debug)]
pub(crate) struct LeaderState {
    pub progress: BTreeMap<NodeId, Progress>,
    pub reads: ReadIndexState,
    pub transfer: Option<Transfer>,
    /// Lease reads may be served while `ticks < lease_until`.
    pub lease_until: u64,
    /// Set once `TimeoutNow` went out: the target may win without stickiness.
    pub lease_revoked: bool,
    pub next_append_id: u64,
}

/// The Raft state machine of one node. See the module docs of [`crate::core`].
#[derive(Debug)]
pub struct Raft {
    pub(crate) id: NodeId,
    pub(crate) cfg: RaftConfig,
    pub(crate) rng: Rng,
    pub(crate) hs: HardState,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    pub(crate) membership: Membership,
    pub(crate) membership_index: LogIndex,
    /// The latest snapshot this node has (built or installed).
    pub(crate) snapshot: SnapshotMeta,
    pub(crate) snapshot_building: bool,
    /// After a failed build, the policy waits until this tick before asking again.
    pub(crate) snapshot_retry_tick: u64,
    /// When the last snapshot was built (for `snapshot_interval_ticks`).
    pub(crate) snapshot_tick: u64,
    /// A snapshot handed to the runtime for installation, and who sent it.
    pub(crate) installing: Option<(NodeId, SnapshotMeta)>,
    /// The node's clock: ticks since construction.
    pub(crate) ticks: u64,
    pub(crate) election_elapsed: u64,
    pub(crate) heartbeat_elapsed: u64,
    pub(crate) randomized_timeout: u64,
    /// After a restart the node may have promised a lease to an old leader: it refuses
    /// votes for one election timeout.
    pub(crate) restart_blackout: bool,
    pub(crate) votes: BTreeMap<NodeId, bool>,
    pub(crate) lead: Option<Box<LeaderState>>,
    /// Confirmed reads waiting for the state machine to reach their index.
    pub(crate) reads_waiting_apply: VecDeque<(u64, LogIndex)>,
    pub(crate) actions: Vec<Action>,
    /// Peer messages ignored as hostile or corrupt (see `refusal.rs`).
    pub(crate) refusals: Refusals,
    reported: (Role, Term, Option<NodeId>),
}

impl Raft {
    /// Builds a core from what storage holds. `seed` drives the election jitter.
    pub fn new(
        id: NodeId,
        cfg: RaftConfig,
        seed: u64,
        restored: Restored,
    ) -> Result<Raft, ConfigError> {
        cfg.validate()?;
        assert!(id != 0, "node id 0 is reserved");
        let log = RaftLog::restore(&restored.snapshot, restored.entries, restored.applied);
        let last = log.last_index();
        let mut raft = Raft {
            id,
            rng: Rng::new(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            hs: restored.hard_state,
            role: Role::Follower,
            leader: None,
            membership: log.membership_at(last),
            membership_index: log.membership_index_at(last),
            snapshot: restored.snapshot,
            snapshot_building: false,
            snapshot_retry_tick: 0,
            snapshot_tick: 0,
            installing: None,
            ticks: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            restart_blackout: restored.hard_state.term > 0,
            votes: BTreeMap::new(),
            lead: None,
            reads_waiting_apply: VecDeque::new(),
            actions: Vec::new(),
            refusals: Refusals::default(),
            reported: (Role::Follower, restored.hard_state.term, None),
            log,
            cfg,
        };
        raft.reset_election_timer();
        Ok(raft)
    }

    /// Feeds one event; the resulting actions accumulate until [`Raft::take_actions`].
    pub fn step(&mut self, event: Event) {
        match event {
            Event::Tick => self.tick(),
            Event::Message { from, msg } => self.on_message(from, msg),
            Event::Propose(ps) => self.propose(ps),
            Event::Read { id, consistency } => self.read(id, consistency),
            Event::ChangeMembership {
                id,
                changes,
                addresses,
            } => self.change_membership(id, changes, addresses),
            Event::TransferLeader { target } => self.transfer_leader(target),
            Event::SnapshotNow => self.maybe_take_snapshot(true),
            Event::Campaign => {
                if self.role != Role::Leader && self.promotable() {
                    self.campaign(self.first_campaign_kind());
                }
            }
            Event::Persisted { index, term } => self.on_persisted(index, term),
            Event::Applied { index } => self.on_applied(index),
            Event::SnapshotBuilt { last_index } => self.on_snapshot_built(last_index),
            Event::SnapshotFailed => self.on_snapshot_failed(),
            Event::SnapshotInstallFailed { meta } => self.on_snapshot_install_failed(meta),
            Event::SnapshotInstalled { meta } => self.on_snapshot_installed(meta),
        }
        self.emit_apply();
        let now = (self.role, self.hs.term, self.leader);
        if now != self.reported {
            self.reported = now;
            self.actions.push(Action::RoleChanged {
                role: now.0,
                term: now.1,
                leader: now.2,
            });
        }
    }

    /// Drains the actions emitted so far, in the order they must be performed.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Like [`Raft::take_actions`] but reuses the caller's buffer.
    pub fn drain_actions_into(&mut self, out: &mut Vec<Action>) {
        out.append(&mut self.actions);
    }

    // ----- accessors -----

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> Term {
        self.hs.term
    }
    pub fn hard_state(&self) -> HardState {
        self.hs
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    pub fn commit_index(&self) -> LogIndex {
        self.log.committed
    }
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }
    pub fn config(&self) -> &RaftConfig {
        &self.cfg
    }
    pub fn ticks(&self) -> u64 {
        self.ticks
    }
    /// The leader's view of a peer: (match index, next index).
    pub fn progress(&self, peer: NodeId) -> Option<(LogIndex, LogIndex)> {
        let pr = self.lead.as_ref()?.progress.get(&peer)?;
        Some((pr.match_index, pr.next_index))
    }
    /// The snapshot this node is installing, if any.
    pub fn installing(&self) -> Option<&SnapshotMeta> {
        self.installing.as_ref().map(|(_, m)| m)
    }

    pub fn is_transferring(&self) -> bool {
        self.lead.as_ref().is_some_and(|l| l.transfer.is_some())
    }
    /// Peer messages this core ignored as hostile or corrupt, by reason.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    // ----- shared helpers -----

    pub(crate) fn send(&mut self, to: NodeId, body: Body, when: SendWhen) {
        let msg = Message {
            term: self.hs.term,
            body,
        };
        self.actions.push(Action::Send { to, msg, when });
    }

    pub(crate) fn persist_hard_state(&mut self) {
        self.actions.push(Action::PersistHardState(self.hs));
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.randomized_timeout = self.rng.range(
            self.cfg.election_timeout_ticks_min,
            self.cfg.election_timeout_ticks_max,
        );
    }

    /// Voters of either half of the configuration, except this node.
    pub(crate) fn peer_voters(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self
            .membership
            .voters
            .union(&self.membership.voters_outgoing)
            .copied()
            .filter(|&id| id != self.id)
            .collect();
        v.dedup();
        v
    }

    pub(crate) fn promotable(&self) -> bool {
        self.membership.is_voter(self.id) && self.installing.is_none()
    }

    pub(crate) fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.hs.term)
    }

    /// Installs the configuration in force at the end of the log.
    pub(crate) fn refresh_membership(&mut self) {
        let last = self.log.last_index();
        let m = self.log.membership_at(last);
        self.membership_index = self.log.membership_index_at(last);
        if m != self.membership {
            self.membership = m;
            self.sync_progress_with_membership();
        }
    }

    /// Appends entries of the current term as leader: persist (in parallel) and send.
    pub(crate) fn append_as_leader(&mut self, payloads: Vec<EntryPayload>) -> LogIndex {
        let first = self.log.last_index() + 1;
        let term = self.hs.term;
        let mut has_config = false;
        let entries: Vec<Entry> = payloads
            .into_iter()
            .enumerate()
            .map(|(k, payload)| {
                has_config |= matches!(payload, EntryPayload::Config(_));
                Entry {
                    term,
                    index: first + k as u64,
                    payload,
                }
            })
            .collect();
        self.log.append(&entries);
        self.actions.push(Action::PersistEntries {
            truncate_from: None,
            entries,
        });
        if has_config {
            self.refresh_membership();
        }
        // A single-voter cluster commits as soon as its own write is durable; nothing
        // to do here. Otherwise ship the new entries right away.
        self.broadcast_append();
        first
    }

    fn propose(&mut self, proposals: Vec<Proposal>) {
        let err = match &self.lead {
            None => Some(ProposeError::NotLeader {
                leader: self.leader,
            }),
            Some(l) if l.transfer.is_some() => Some(ProposeError::Transferring),
            Some(_) if self.uncommitted_full(&proposals) => Some(ProposeError::Busy),
            Some(_) => None,
        };
        if let Some(e) = err {
            for p in proposals {
                self.actions.push(Action::ProposeResult {
                    id: p.id,
                    result: Err(e),
                });
            }
            return;
        }
        let term = self.hs.term;
        let ids: Vec<u64> = proposals.iter().map(|p| p.id).collect();
        let payloads = proposals
            .into_iter()
            .map(|p| EntryPayload::Command {
                session: p.session,
                data: p.data,
            })
            .collect();
        let first = self.append_as_leader(payloads);
        for (k, id) in ids.into_iter().enumerate() {
            self.actions.push(Action::ProposeResult {
                id,
                result: Ok((first + k as u64, term)),
            });
        }
    }

    fn on_persisted(&mut self, index: LogIndex, term: Term) {
        // The term check discards acknowledgements of writes that a later truncation
        // has since replaced (log matching makes (index, term) identify the prefix).
        if index > self.log.stable
            && index <= self.log.last_index()
            && self.log.term(index) == Some(term)
        {
            self.log.stable = index;
            if self.role == Role::Leader {
                self.maybe_commit();
            }
        }
    }

    pub(crate) fn on_applied(&mut self, index: LogIndex) {
        let index = index.min(self.log.apply_sent);
        if index > self.log.applied {
            self.log.applied = index;
        }
        while let Some(&(id, idx)) = self.reads_waiting_apply.front() {
            if idx > self.log.applied {
                break;
            }
            self.reads_waiting_apply.pop_front();
            self.actions.push(Action::ReadResult {
                id,
                result: Ok(idx),
            });
        }
        self.maybe_take_snapshot(false);
    }

    /// Whether appending `proposals` would pass the uncommitted bounds. A lone
    /// proposal is always let in when nothing is uncommitted, so an entry larger than
    /// the byte bound cannot be refused for ever.
    fn uncommitted_full(&self, proposals: &[Proposal]) -> bool {
        let (committed, last) = (self.log.committed, self.log.last_index());
        if last <= committed {
            return false;
        }
        let adding: u64 = proposals.iter().map(|p| p.data.len() as u64 + 32).sum();
        let entries = last - committed + proposals.len() as u64;
        let bytes = self.log.bytes_between(committed, last) + adding;
        entries > self.cfg.max_uncommitted_entries || bytes > self.cfg.max_uncommitted_bytes
    }

    /// Hands committed and locally durable entries to the state machine, at most
    /// `max_apply_entries` / `max_apply_bytes` beyond what it reported applied.
    fn emit_apply(&mut self) {
        if self.installing.is_some() {
            return;
        }
        let (applied, sent) = (self.log.applied, self.log.apply_sent);
        let queued = sent.saturating_sub(applied);
        let queued_bytes = self.log.bytes_between(applied, sent);
        if queued >= self.cfg.max_apply_entries
            || (queued > 0 && queued_bytes >= self.cfg.max_apply_bytes)
        {
            return;
        }
        let room = (self.cfg.max_apply_entries - queued) as usize;
        let entries = self
            .log
            .next_to_apply(room, self.cfg.max_apply_bytes - queued_bytes);
        if let Some(last) = entries.last() {
            self.log.apply_sent = last.index;
            self.actions.push(Action::Apply { entries });
        }
    }
}
