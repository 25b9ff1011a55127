//! Membership changes by joint consensus.
//!
//! A request (any number of learner additions, promotions and removals) becomes one
//! config entry. If the voter set changes, that entry is the joint configuration
//! C_old,new (`voters` = new, `voters_outgoing` = old): decisions need both majorities.
//! Once it commits the leader appends C_new on its own; once C_new commits, a leader
//! that is not a voter in it steps down. Configurations take effect when appended.
//! Only one change is in flight at a time, and only after the leader committed an entry
//! of its term.

use std::collections::{BTreeMap, BTreeSet};

use super::action::{Action, MembershipError};
use super::event::ConfChange;
use super::raft::Raft;
use super::types::{EntryPayload, Membership, NodeId};

impl Raft {
    pub(crate) fn change_membership(
        &mut self,
        id: u64,
        changes: Vec<ConfChange>,
        addresses: BTreeMap<NodeId, String>,
    ) {
        let result = self
            .plan_membership(&changes, addresses)
            .map(|m| self.append_as_leader(vec![EntryPayload::Config(m)]));
        self.actions.push(Action::MembershipResult { id, result });
    }

    fn plan_membership(
        &self,
        changes: &[ConfChange],
        addresses: BTreeMap<NodeId, String>,
    ) -> Result<Membership, MembershipError> {
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
        let mut next = Membership {
            voters,
            voters_outgoing,
            learners,
            addresses: old.addresses.clone(),
        };
        next.addresses.extend(addresses);
        // A removed voter keeps its address while it is still in C_old (joint phase).
        next.retain_member_addresses();
        Ok(next)
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
        if let Ok(m) = self.plan_membership(&ready, BTreeMap::new()) {
            self.append_as_leader(vec![EntryPayload::Config(m)]);
        }
    }

    /// After a config entry commits: leave the joint config, or step down if removed.
    pub(crate) fn advance_membership_change(&mut self) {
        if self.membership_index > self.log.committed {
            return;
        }
        if self.membership.is_joint() {
            let mut m = Membership {
                voters: self.membership.voters.clone(),
                voters_outgoing: BTreeSet::new(),
                learners: self.membership.learners.clone(),
                addresses: self.membership.addresses.clone(),
            };
            m.retain_member_addresses();
            self.append_as_leader(vec![EntryPayload::Config(m)]);
        } else if !self.membership.voters.contains(&self.id) {
            self.become_follower(self.hs.term, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::tests::{leader1, msg};
    use super::super::*;

    /// Leader 1 of term 1 with its no-op committed, so it may change membership.
    fn settled_leader() -> Raft {
        let mut r = leader1();
        let ack = |index| AppendResp {
            id: 0,
            success: true,
            match_index: index,
            reject_index: 0,
            conflict_term: None,
            conflict_index: 0,
        };
        r.step(Event::Message {
            from: 2,
            msg: msg(1, Body::AppendResp(ack(1))),
        });
        r.step(Event::Persisted { index: 1, term: 1 });
        assert_eq!(r.commit_index(), 1);
        r.take_actions();
        r
    }

    fn change(r: &mut Raft, changes: Vec<ConfChange>, addrs: &[(NodeId, &str)]) {
        let addresses: BTreeMap<NodeId, String> =
            addrs.iter().map(|(id, a)| (*id, a.to_string())).collect();
        r.step(Event::ChangeMembership {
            id: 9,
            changes,
            addresses,
        });
    }

    #[test]
    fn an_added_learner_address_is_part_of_the_appended_membership() {
        let mut r = settled_leader();
        change(
            &mut r,
            vec![ConfChange::AddLearner(4)],
            &[(4, "10.0.0.4:1")],
        );
        let appended: Vec<Membership> = r
            .take_actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::PersistEntries { entries, .. } => Some(entries),
                _ => None,
            })
            .flatten()
            .filter_map(|e| match e.payload {
                EntryPayload::Config(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(appended.len(), 1, "{appended:?}");
        assert_eq!(
            appended[0].addresses.get(&4).map(String::as_str),
            Some("10.0.0.4:1")
        );
        assert_eq!(r.membership().addresses, appended[0].addresses);
    }

    #[test]
    fn a_removed_member_address_is_dropped_and_others_kept() {
        let mut r = settled_leader();
        let addrs = [(4, "a:1"), (2, "b:2"), (7, "c:7")];
        change(&mut r, vec![ConfChange::AddLearner(4)], &addrs);
        // Members' addresses are recorded (2's replaced); a non-member's (7) is not.
        assert_eq!(
            r.membership().addresses.keys().copied().collect::<Vec<_>>(),
            vec![2, 4]
        );
        let mut m = r.membership().clone();
        m.learners.remove(&4);
        m.retain_member_addresses();
        assert_eq!(m.addresses.keys().copied().collect::<Vec<_>>(), vec![2]);
    }
}
