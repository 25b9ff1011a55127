//! Linearizable reads: ReadIndex rounds, leader lease, serializable reads.
//!
//! Every heartbeat broadcast opens a *round* `(ctx, commit index, start tick)`. When a
//! quorum has answered a heartbeat carrying `ctx' >= ctx`, the leader knows it was still
//! leader when the round started, so every read attached to that round can be served at
//! the round's index. Reads arriving while a read round is in flight wait for the next
//! round, so one round trip confirms a whole batch. A confirmed round also extends the
//! lease to `start tick + election_timeout_ticks_min - lease_drift_margin_ticks`.

use std::collections::{BTreeSet, VecDeque};

use super::action::{Action, ReadError, Role, SendWhen};
use super::event::ReadConsistency;
use super::message::Body;
use super::quorum;
use super::raft::Raft;
use super::types::{LogIndex, NodeId};

/// Heartbeat rounds without reads kept for lease renewal.
const MAX_LEASE_ROUNDS: usize = 8;

#[derive(Debug)]
pub(crate) struct ReadRound {
    ctx: u64,
    index: LogIndex,
    start_tick: u64,
    acks: BTreeSet<NodeId>,
    reads: Vec<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct ReadIndexState {
    next_ctx: u64,
    rounds: VecDeque<ReadRound>,
    /// Waiting for the next round.
    queued: Vec<u64>,
    /// Waiting for the leader's first commit in its term.
    waiting_commit: Vec<(u64, ReadConsistency)>,
}

impl ReadIndexState {
    pub(crate) fn all_pending(self) -> Vec<u64> {
        let mut v: Vec<u64> = self.rounds.into_iter().flat_map(|r| r.reads).collect();
        v.extend(self.queued);
        v.extend(self.waiting_commit.into_iter().map(|(id, _)| id));
        v
    }

    fn pending(&self) -> usize {
        self.queued.len()
            + self.waiting_commit.len()
            + self.rounds.iter().map(|r| r.reads.len()).sum::<usize>()
    }

    /// False for a ctx no round of this leadership has carried yet.
    pub(crate) fn was_started(&self, ctx: u64) -> bool {
        ctx <= self.next_ctx
    }

    fn read_round_in_flight(&self) -> bool {
        self.rounds.iter().any(|r| !r.reads.is_empty())
    }
}

impl Raft {
    pub(crate) fn read(&mut self, id: u64, consistency: ReadConsistency) {
        if consistency == ReadConsistency::Serializable {
            let applied = self.log.applied;
            self.actions.push(Action::ReadResult {
                id,
                result: Ok(applied),
            });
            return;
        }
        let leader = self.leader;
        let max = self.cfg.max_pending_reads;
        let committed_now = self.committed_in_current_term();
        let Some(lead) = self.lead.as_mut() else {
            let result = Err(ReadError::NotLeader { leader });
            self.actions.push(Action::ReadResult { id, result });
            return;
        };
        if lead.reads.pending() + self.reads_waiting_apply.len() >= max {
            let result = Err(ReadError::Overloaded);
            self.actions.push(Action::ReadResult { id, result });
            return;
        }
        if !committed_now {
            // Until its no-op commits, the leader does not know the commit index.
            lead.reads.waiting_commit.push((id, consistency));
            return;
        }
        self.serve_read(id, consistency);
    }

    fn serve_read(&mut self, id: u64, consistency: ReadConsistency) {
        if consistency == ReadConsistency::Lease && self.lease_valid() {
            let c = self.log.committed;
            self.wait_apply(id, c);
            return;
        }
        let lead = self.lead.as_mut().expect("leader");
        lead.reads.queued.push(id);
        if !lead.reads.read_round_in_flight() {
            self.start_read_round();
        }
    }

    /// The lease holds: a quorum confirmed us recently, and we are not handing over.
    fn lease_valid(&self) -> bool {
        let Some(lead) = self.lead.as_ref() else {
            return false;
        };
        self.cfg.lease_reads
            && lead.transfer.is_none()
            && !lead.lease_revoked
            && self.ticks < lead.lease_until
    }

    pub(crate) fn release_reads_waiting_commit(&mut self) {
        let committed_now = self.committed_in_current_term();
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        if lead.reads.waiting_commit.is_empty() || !committed_now {
            return;
        }
        let waiting = std::mem::take(&mut lead.reads.waiting_commit);
        for (id, c) in waiting {
            self.serve_read(id, c);
        }
    }

    /// Opens a round: broadcast a heartbeat carrying its ctx. Called on every heartbeat
    /// interval and whenever reads are queued with no read round in flight.
    pub(crate) fn start_read_round(&mut self) {
        let (id, commit, tick) = (self.id, self.log.committed, self.ticks);
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        lead.reads.next_ctx += 1;
        let ctx = lead.reads.next_ctx;
        // Rounds without reads only matter for the lease: keep a bounded number of the
        // most recent ones (an answer to a newer round also confirms older ones).
        let mut readless = lead
            .reads
            .rounds
            .iter()
            .filter(|r| r.reads.is_empty())
            .count();
        while readless >= MAX_LEASE_ROUNDS {
            let k = lead
                .reads
                .rounds
                .iter()
                .position(|r| r.reads.is_empty())
                .expect("some");
            lead.reads.rounds.remove(k);
            readless -= 1;
        }
        let reads = std::mem::take(&mut lead.reads.queued);
        lead.reads.rounds.push_back(ReadRound {
            ctx,
            index: commit,
            start_tick: tick,
            acks: BTreeSet::from([id]),
            reads,
        });
        let peers: Vec<(NodeId, LogIndex)> = lead
            .progress
            .iter()
            .map(|(&p, pr)| (p, pr.match_index.min(commit)))
            .collect();
        for (to, commit) in peers {
            let body = Body::Heartbeat {
                commit,
                read_ctx: ctx,
            };
            self.send(to, body, SendWhen::Now);
        }
        self.confirm_read_rounds();
    }

    pub(crate) fn ack_read_round(&mut self, from: NodeId, ctx: u64) {
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        for r in lead.reads.rounds.iter_mut() {
            if r.ctx <= ctx {
                r.acks.insert(from);
            }
        }
        self.confirm_read_rounds();
    }

    fn confirm_read_rounds(&mut self) {
        let lease_ticks = self.cfg.lease_ticks();
        let mut confirmed = Vec::new();
        {
            let Some(lead) = self.lead.as_mut() else {
                return;
            };
            while let Some(r) = lead.reads.rounds.front() {
                if !quorum::is_quorum(&self.membership, &r.acks) {
                    break;
                }
                let r = lead.reads.rounds.pop_front().expect("front");
                if lead.transfer.is_none() {
                    lead.lease_until = lead.lease_until.max(r.start_tick + lease_ticks);
                }
                confirmed.extend(r.reads.into_iter().map(|id| (id, r.index)));
            }
        }
        for (id, idx) in confirmed {
            self.wait_apply(id, idx);
        }
        let Some(lead) = self.lead.as_ref() else {
            return;
        };
        if !lead.reads.queued.is_empty()
            && !lead.reads.read_round_in_flight()
            && self.role == Role::Leader
        {
            self.start_read_round();
        }
    }

    fn wait_apply(&mut self, id: u64, index: LogIndex) {
        if self.log.applied >= index && self.reads_waiting_apply.is_empty() {
            self.actions.push(Action::ReadResult {
                id,
                result: Ok(index),
            });
        } else {
            self.reads_waiting_apply.push_back((id, index));
        }
    }
}
