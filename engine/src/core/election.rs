//! Elections: ticks, message dispatch by term, pre-vote, vote, role changes.

use std::collections::BTreeMap;

use super::action::{Action, ReadError, Role, SendWhen};
use super::message::{Body, Message};
use super::progress::Progress;
use super::quorum::{self, VoteResult};
use super::raft::{LeaderState, Raft};
use super::read_index::ReadIndexState;
use super::refusal::{self, Refusal, TERM_MAX};
use super::types::{EntryPayload, LogIndex, NodeId, Term};

/// Which kind of campaign to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CampaignKind {
    /// Ask whether we could win, without bumping the term.
    PreVote,
    /// A real election.
    Vote,
    /// A real election ordered by the leader (`TimeoutNow`): ignores stickiness.
    Transfer,
}

impl Raft {
    pub(crate) fn first_campaign_kind(&self) -> CampaignKind {
        if self.cfg.pre_vote {
            CampaignKind::PreVote
        } else {
            CampaignKind::Vote
        }
    }

    pub(crate) fn tick(&mut self) {
        self.ticks += 1;
        if self.cfg.snapshot_interval_ticks > 0 {
            self.maybe_take_snapshot(false);
        }
        if self.restart_blackout && self.ticks >= self.cfg.election_timeout_ticks_min {
            self.restart_blackout = false;
        }
        if self.role == Role::Leader {
            self.tick_leader();
            return;
        }
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_timeout {
            self.reset_election_timer();
            if self.promotable() {
                self.campaign(self.first_campaign_kind());
            }
        }
    }

    /// Leader stickiness: a node that heard from a live leader within the minimum
    /// election timeout (or restarted less than that ago) refuses to help depose it.
    pub(crate) fn in_lease(&self) -> bool {
        if !self.cfg.check_quorum {
            return false;
        }
        self.restart_blackout
            || (self.leader.is_some()
                && self.election_elapsed < self.cfg.election_timeout_ticks_min)
    }

    pub(crate) fn on_message(&mut self, from: NodeId, msg: Message) {
        // Before anything else, and above all before adopting its term.
        if let Err(r) = refusal::check(&msg) {
            self.refuse(r);
            return;
        }
        let Message { term, body } = msg;
        if term > self.hs.term {
            match &body {
                Body::PreVote { .. } => {}
                Body::PreVoteResp { granted: true } => {}
                Body::Vote { transfer, .. } if !transfer && self.in_lease() => return,
                _ => {
                    let leader = matches!(
                        body,
                        Body::Append(_) | Body::Heartbeat { .. } | Body::InstallSnapshot { .. }
                    )
                    .then_some(from);
                    self.become_follower(term, leader);
                }
            }
        } else if term < self.hs.term {
            match body {
                // Tell a stale leader (or a lagging pre-candidate) about the newer term.
                Body::Append(_) | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    self.send(from, Body::HeartbeatResp { read_ctx: 0 }, SendWhen::Now)
                }
                Body::PreVote { .. } => {
                    self.send(from, Body::PreVoteResp { granted: false }, SendWhen::Now)
                }
                _ => {}
            }
            return;
        }
        self.dispatch(from, term, body);
    }

    fn dispatch(&mut self, from: NodeId, term: Term, body: Body) {
        match body {
            Body::PreVote {
                last_log_index,
                last_log_term,
            } => self.on_pre_vote(from, term, last_log_index, last_log_term),
            Body::Vote {
                last_log_index,
                last_log_term,
                ..
            } => self.on_vote(from, last_log_index, last_log_term),
            Body::PreVoteResp { granted } => {
                let counts = self.role == Role::PreCandidate
                    && (!granted || self.hs.term.checked_add(1) == Some(term));
                if counts {
                    self.tally(from, granted);
                }
            }
            Body::VoteResp { granted } => {
                if self.role == Role::Candidate {
                    self.tally(from, granted);
                }
            }
            Body::Append(a) => {
                if self.accept_leader(from, term) {
                    self.on_append(from, a);
                }
            }
            Body::Heartbeat { commit, read_ctx } => {
                if self.accept_leader(from, term) {
                    self.on_heartbeat(from, commit, read_ctx);
                }
            }
            Body::InstallSnapshot { meta } => {
                if self.accept_leader(from, term) {
                    self.on_install_snapshot(from, meta);
                }
            }
            Body::TimeoutNow => {
                if self.leader.is_some_and(|l| l != from) {
                    self.refuse(Refusal::NotLeader);
                } else if self.role == Role::Follower && self.promotable() {
                    self.campaign(CampaignKind::Transfer);
                }
            }
            Body::AppendResp(r) => {
                if self.role == Role::Leader {
                    self.on_append_resp(from, r);
                }
            }
            Body::HeartbeatResp { read_ctx } => {
                if self.role == Role::Leader {
                    self.on_heartbeat_resp(from, read_ctx);
                }
            }
        }
    }

    /// A message from the leader of our term: follow it. A term has one leader, so a
    /// leader's message from anyone else (while we lead the term, or follow another
    /// node in it) is forged or corrupt: refused.
    fn accept_leader(&mut self, from: NodeId, term: Term) -> bool {
        let other = self.leader.is_some_and(|l| l != from);
        if self.role == Role::Leader || (self.role == Role::Follower && other) {
            self.refuse(Refusal::NotLeader);
            return false;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        }
        self.election_elapsed = 0;
        true
    }

    fn on_pre_vote(&mut self, from: NodeId, term: Term, li: LogIndex, lt: Term) {
        let grant = term > self.hs.term && self.log.is_up_to_date(li, lt) && !self.in_lease();
        let body = Body::PreVoteResp { granted: grant };
        if grant {
            // A grant carries the prospective term so the pre-candidate can count it.
            let msg = Message { term, body };
            self.actions.push(Action::Send {
                to: from,
                msg,
                when: SendWhen::Now,
            });
        } else {
            self.send(from, body, SendWhen::Now);
        }
    }

    fn on_vote(&mut self, from: NodeId, li: LogIndex, lt: Term) {
        let free = self.hs.voted_for.is_none() && self.leader.is_none();
        let can_vote = self.hs.voted_for == Some(from) || free;
        if !(can_vote && self.log.is_up_to_date(li, lt)) {
            self.send(from, Body::VoteResp { granted: false }, SendWhen::Now);
            return;
        }
        self.hs.voted_for = Some(from);
        self.reset_election_timer();
        if !self.cfg.bugs.skip_vote_persist {
            self.persist_hard_state();
        }
        // The grant is a promise: it may only leave once the vote is durable.
        self.send(
            from,
            Body::VoteResp { granted: true },
            SendWhen::AfterPersist,
        );
    }

    pub(crate) fn campaign(&mut self, kind: CampaignKind) {
        // Peers refuse a term above TERM_MAX (see `refusal.rs`), so there is no
        // election to run beyond it: stay a follower.
        let Some(next_term) = self.hs.term.checked_add(1).filter(|&t| t <= TERM_MAX) else {
            self.refuse(Refusal::TermExhausted);
            self.become_follower(self.hs.term, self.leader);
            return;
        };
        self.votes.clear();
        self.reset_election_timer();
        self.leader = None;
        let (li, lt) = (self.log.last_index(), self.log.last_term());
        if kind == CampaignKind::PreVote {
            self.role = Role::PreCandidate;
            for to in self.peer_voters() {
                let body = Body::PreVote {
                    last_log_index: li,
                    last_log_term: lt,
                };
                let msg = Message {
                    term: next_term,
                    body,
                };
                self.actions.push(Action::Send {
                    to,
                    msg,
                    when: SendWhen::Now,
                });
            }
        } else {
            self.role = Role::Candidate;
            self.hs.term = next_term;
            self.hs.voted_for = Some(self.id);
            self.persist_hard_state();
            for to in self.peer_voters() {
                let body = Body::Vote {
                    last_log_index: li,
                    last_log_term: lt,
                    transfer: kind == CampaignKind::Transfer,
                };
                self.send(to, body, SendWhen::AfterPersist);
            }
        }
        self.tally(self.id, true);
    }

    fn tally(&mut self, from: NodeId, granted: bool) {
        self.votes.insert(from, granted);
        let votes = &self.votes;
        match quorum::vote_result(&self.membership, |id| votes.get(&id).copied()) {
            VoteResult::Pending => {}
            VoteResult::Lost => self.become_follower(self.hs.term, None),
            VoteResult::Won if self.role == Role::PreCandidate => self.campaign(CampaignKind::Vote),
            VoteResult::Won => self.become_leader(),
        }
    }

    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.hs.term {
            self.hs.term = term;
            self.hs.voted_for = None;
            self.persist_hard_state();
        }
        if let Some(lead) = self.lead.take() {
            self.fail_pending_reads(lead.reads, leader);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_election_timer();
    }

    fn fail_pending_reads(&mut self, reads: ReadIndexState, leader: Option<NodeId>) {
        for id in reads.all_pending() {
            self.actions.push(Action::ReadResult {
                id,
                result: Err(ReadError::NotLeader { leader }),
            });
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes.clear();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let next = self.log.last_index() + 1;
        let progress: BTreeMap<NodeId, Progress> = self
            .membership
            .members()
            .into_iter()
            .filter(|&id| id != self.id)
            .map(|id| (id, Progress::new(next)))
            .collect();
        self.lead = Some(Box::new(LeaderState {
            progress,
            reads: ReadIndexState::default(),
            transfer: None,
            lease_until: 0,
            lease_revoked: false,
            next_append_id: 1,
        }));
        // The no-op lets entries of earlier terms commit (Figure 8) and lets reads start.
        self.append_as_leader(vec![EntryPayload::Noop]);
        self.maybe_commit();
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.heartbeat_elapsed >= self.cfg.heartbeat_interval_ticks {
            self.heartbeat_elapsed = 0;
            self.start_read_round();
        }
        if self.election_elapsed >= self.cfg.election_timeout_ticks_min {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_recently_active() {
                self.become_follower(self.hs.term, None);
                return;
            }
        }
        self.tick_transfer();
        self.tick_snapshot_progress();
        self.maybe_auto_promote();
    }

    /// Check-quorum: has a quorum been heard from since the last check? Resets the marks.
    fn quorum_recently_active(&mut self) -> bool {
        let id = self.id;
        let lead = self.lead.as_mut().expect("leader");
        let mut active = std::collections::BTreeSet::from([id]);
        for (&peer, pr) in lead.progress.iter_mut() {
            if pr.recent_active {
                active.insert(peer);
            }
            pr.recent_active = false;
        }
        quorum::is_quorum(&self.membership, &active)
    }
}
