//! Safety invariants, one file each, checked after every step of the simulation.
//! The first violation is recorded (with the step it happened at) and the run stops.

mod at_most_once;
mod commit_safety;
mod election_safety;
mod leader_completeness;
mod log_matching;
mod no_lost_ack;
mod no_refusal;
mod read_linearizable;
mod state_machine_safety;

use std::collections::BTreeMap;

use d_engine::core::{
    Entry, EntryPayload, LogIndex, NodeId, Raft, ReadConsistency, ReadError, Term,
};

use super::cluster::SimNode;
use super::storage::{Applied, OpId};

/// A stable digest of an entry's payload (for comparing entries across nodes).
pub fn digest(e: &Entry) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    match &e.payload {
        EntryPayload::Noop => eat(b"noop"),
        EntryPayload::Command { session, data } => {
            eat(b"cmd");
            if let Some(s) = session {
                eat(&s.client_id.to_le_bytes());
                eat(&s.seq.to_le_bytes());
            }
            eat(data);
        }
        EntryPayload::Config(m) => eat(format!("{m:?}").as_bytes()),
    }
    h
}

#[derive(Default)]
pub struct Invariants {
    pub violation: Option<String>,
    /// Term of every entry known committed, by index (index 0 unused).
    pub committed: Vec<Term>,
    /// The term of the node that first saw each index committed: an upper bound of the
    /// term in which it was committed (leader completeness applies to later terms).
    pub committed_at: Vec<Term>,
    /// Per node: up to where its commits were recorded (reset on restart).
    recorded: BTreeMap<NodeId, LogIndex>,
    election: election_safety::ElectionSafety,
    matching: log_matching::LogMatching,
    completeness: leader_completeness::LeaderCompleteness,
    sm: state_machine_safety::StateMachineSafety,
    commit: commit_safety::CommitSafety,
    acks: no_lost_ack::NoLostAck,
    once: at_most_once::AtMostOnce,
    reads: read_linearizable::ReadLinearizable,
    pub steps: u64,
}

impl Invariants {
    fn fail(&mut self, what: &str, r: Result<(), String>) {
        if let Err(e) = r
            && self.violation.is_none()
        {
            self.violation = Some(format!("{what}: {e} (at step {})", self.steps));
        }
    }

    pub fn max_commit(&self) -> LogIndex {
        self.committed.len().saturating_sub(1) as LogIndex
    }

    pub fn acked(&self) -> &[(OpId, LogIndex, Term, Term)] {
        &self.acks.acked
    }

    pub fn after_step(&mut self, nodes: &BTreeMap<NodeId, SimNode>, id: NodeId) {
        self.steps += 1;
        let Some(raft) = nodes.get(&id).and_then(|n| n.raft.as_ref()) else {
            return;
        };
        let r = self.election.check(raft);
        self.fail("election safety", r);
        let r = self.commit.check(raft, nodes, &self.committed);
        self.fail("commit monotonic / durable quorum", r);
        let grew = self.record_commits(raft);
        if grew.is_err() {
            self.fail(
                "state machine safety (committed entry changed)",
                grew.clone().map(|_| ()),
            );
        }
        let leaders: Vec<&Raft> = nodes
            .values()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.role() == d_engine::core::Role::Leader)
            .collect();
        let r = self.completeness.check(
            raft,
            &leaders,
            &self.committed,
            &self.committed_at,
            grew.unwrap_or(0),
        );
        self.fail("leader completeness", r);
        let r = self.acks.check(raft);
        self.fail("no acknowledged proposal lost", r);
        self.fail("no honest message refused", no_refusal::check(raft));
    }

    /// Records entries newly committed at `raft`; returns the lowest new global index.
    fn record_commits(&mut self, raft: &Raft) -> Result<LogIndex, String> {
        let from = self
            .recorded
            .get(&raft.id())
            .copied()
            .unwrap_or(0)
            .max(raft.log().start_index())
            + 1;
        let to = raft.commit_index();
        let before = self.committed.len() as LogIndex;
        if self.committed.is_empty() {
            self.committed.push(0);
            self.committed_at.push(0);
        }
        for i in from..=to {
            let Some(t) = raft.log().term(i) else {
                continue;
            };
            if (i as usize) < self.committed.len() {
                if self.committed[i as usize] != t {
                    return Err(format!(
                        "node {} committed {i}/{t} but {i}/{} was committed before",
                        raft.id(),
                        self.committed[i as usize]
                    ));
                }
            } else {
                // A gap (snapshot-installed prefix): unknown terms, filled as 0.
                while (self.committed.len() as LogIndex) < i {
                    self.committed.push(0);
                    self.committed_at.push(0);
                }
                self.committed.push(t);
                self.committed_at.push(raft.term());
            }
        }
        self.recorded.insert(
            raft.id(),
            to.max(self.recorded.get(&raft.id()).copied().unwrap_or(0)),
        );
        Ok(before.max(1))
    }

    pub fn on_crash(&mut self, id: NodeId) {
        self.recorded.remove(&id);
        self.commit.on_crash(id);
        self.election.on_crash(id);
    }

    pub fn on_persist_entries(&mut self, id: NodeId, raft: &Raft, entries: &[Entry]) {
        let r = self.matching.check(id, raft, entries);
        self.fail("log matching", r);
    }

    pub fn on_apply(&mut self, id: NodeId, e: &Entry, expected: LogIndex, r: &Applied) {
        let res = self.sm.check(id, e, expected);
        self.fail("state machine safety", res);
        let res = self.once.check(id, e, r);
        self.fail("at most once", res);
    }

    pub fn on_ack(&mut self, op: OpId, index: LogIndex, term: Term, at: Term) {
        self.acks.acked.push((op, index, term, at));
    }

    pub fn on_read_issue(&mut self, req: u64, node: NodeId, c: ReadConsistency, min: LogIndex) {
        self.reads.issue(req, node, c, min);
    }

    pub fn on_read_result(
        &mut self,
        req: u64,
        node: NodeId,
        result: Result<LogIndex, ReadError>,
        applied: LogIndex,
    ) {
        let r = self.reads.result(req, node, result, applied);
        self.fail("linearizable reads", r);
    }

    /// End-of-run check: every acknowledged write is in every listed state machine.
    pub fn check_acks_applied(&mut self, nodes: &BTreeMap<NodeId, SimNode>, members: &[NodeId]) {
        let r = self.acks.check_final(nodes, members);
        self.fail("no acknowledged proposal lost", r);
    }
}
