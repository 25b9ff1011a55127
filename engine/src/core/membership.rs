//! Membership changes by joint consensus.
//!
//! A request (any number of learner additions, promotions and removals) becomes one
//! config entry. If the voter set changes, that entry is the joint configuration
//! C_old,new (`voters` = new, `voters_outgoing` = old): decisions need both majorities.
//! Once it commits the leader appends C_new on its own; once C_new commits, a leader
//! that is not a voter in it steps down. Configurations take effect when appended.
//! Only one change is in flight at a time, and only after the leader committed an entry
//! of its term.

use std::collections::BTreeSet;

use super::action::{Action, MembershipError};
use super::event::ConfChange;
use super::raft::Raft;
use super::types::{EntryPayload, Membership, NodeId};

impl Raft {
    pub(crate) fn change_membership(&mut self, id: u64, changes: Vec<ConfChange>) {
        let result = self
            .plan_membership(&changes)
            .map(|m| self.append_as_leader(vec![EntryPayload::Config(m)]));
        self.actions.push(Action::MembershipResult { id, result });
    }

    fn plan_membership(&self, changes: &[ConfChange]) -> Result<Membership, MembershipError> {
        let Some(lead) = self.lead.as_ref() else {
            return Err(MembershipError::NotLeader {
                leader: self.leader,
            });
        };
        if lead.transfer.is_some() {
            return Err(MembershipError::Transferring);
        }
        if self.membership.is_joint()
            || self.membership_index > self.log.committed
            || !self.committed_in_current_term()
        {
            return Err(MembershipError::ChangeInProgress);
        }
        let old = &self.membership;
        let (mut voters, mut learners) = (old.voters.clone(), old.learners.clone());
        for &c in changes {
            match c {
                ConfChange::AddLearner(n) => {
                    if voters.contains(&n) || !learners.insert(n) {
                        return Err(MembershipError::AlreadyMember(n));
                    }
                }
                ConfChange::Promote(n) => {
                    if !learners.contains(&n) {
                        return Err(MembershipError::NotLearner(n));
                    }
                    if !self.learner_caught_up(n) {
                        return Err(MembershipError::NotCaughtUp(n));
                    }
                    learners.remove(&n);
                    voters.insert(n);
                }
                ConfChange::Remove(n) => {
                    if !voters.remove(&n) && !learners.remove(&n) {
                        return Err(MembershipError::NotMember(n));
                    }
                }
            }
        }
        if voters.is_empty() {
            return Err(MembershipError::NoVoters);
        }
        let voters_outgoing = if voters == old.voters {
            BTreeSet::new()
        } else {
            old.voters.clone()
        };
        Ok(Membership {
            voters,
            voters_outgoing,
            learners,
        })
    }

    /// The promotion condition: lag within bounds for long enough.
    pub fn learner_caught_up(&self, n: NodeId) -> bool {
        let Some(pr) = self.lead.as_ref().and_then(|l| l.progress.get(&n)) else {
            return false;
        };
        let need = self.cfg.learner_promotion.sustained_ticks;
        let lag = self.log.last_index().saturating_sub(pr.match_index);
        lag <= self.cfg.learner_promotion.max_lag_entries
            && pr
                .caught_up_since
                .is_some_and(|since| self.ticks.saturating_sub(since) >= need)
    }

    /// With `learner_auto_promote`, promote every caught-up learner (one joint change).
    pub(crate) fn maybe_auto_promote(&mut self) {
        if !self.cfg.learner_auto_promote || self.membership.learners.is_empty() {
            return;
        }
        let ready: Vec<ConfChange> = self
            .membership
            .learners
            .iter()
            .filter(|&&n| self.learner_caught_up(n))
            .map(|&n| ConfChange::Promote(n))
            .collect();
        if ready.is_empty() {
            return;
        }
        if let Ok(m) = self.plan_membership(&ready) {
            self.append_as_leader(vec![EntryPayload::Config(m)]);
        }
    }

    /// After a config entry commits: leave the joint config, or step down if removed.
    pub(crate) fn advance_membership_change(&mut self) {
        if self.membership_index > self.log.committed {
            return;
        }
        if self.membership.is_joint() {
            let m = Membership {
                voters: self.membership.voters.clone(),
                voters_outgoing: BTreeSet::new(),
                learners: self.membership.learners.clone(),
            };
            self.append_as_leader(vec![EntryPayload::Config(m)]);
        } else if !self.membership.voters.contains(&self.id) {
            self.become_follower(self.hs.term, None);
        }
    }
}
