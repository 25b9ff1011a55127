//! Majority arithmetic for simple and joint configurations.

use std::collections::BTreeSet;

use super::types::{LogIndex, Membership, NodeId};

/// Outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// The largest index that a majority of `voters` has reached, given each voter's
/// acknowledged index. An empty voter set places no constraint (`u64::MAX`).
pub fn majority_index(voters: &BTreeSet<NodeId>, acked: impl Fn(NodeId) -> LogIndex) -> LogIndex {
    if voters.is_empty() {
        return LogIndex::MAX;
    }
    let mut v: Vec<LogIndex> = voters.iter().map(|&id| acked(id)).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v[v.len() / 2]
}

/// The index acknowledged by a quorum of the (possibly joint) configuration.
pub fn committed_index(m: &Membership, acked: impl Fn(NodeId) -> LogIndex) -> LogIndex {
    let a = majority_index(&m.voters, &acked);
    if m.is_joint() {
        a.min(majority_index(&m.voters_outgoing, &acked))
    } else {
        a
    }
}

fn majority_vote(voters: &BTreeSet<NodeId>, vote: &impl Fn(NodeId) -> Option<bool>) -> VoteResult {
    if voters.is_empty() {
        return VoteResult::Won;
    }
    let (mut yes, mut no) = (0, 0);
    for &id in voters {
        match vote(id) {
            Some(true) => yes += 1,
            Some(false) => no += 1,
            None => {}
        }
    }
    let need = voters.len() / 2 + 1;
    if yes >= need {
        VoteResult::Won
    } else if voters.len() - no < need {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}

/// Result of an election (or of any yes/no poll) in a possibly joint configuration.
pub fn vote_result(m: &Membership, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
    let a = majority_vote(&m.voters, &vote);
    if !m.is_joint() {
        return a;
    }
    let b = majority_vote(&m.voters_outgoing, &vote);
    match (a, b) {
        (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
        (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
        _ => VoteResult::Pending,
    }
}

/// True if the nodes in `set` form a quorum of the configuration.
pub fn is_quorum(m: &Membership, set: &BTreeSet<NodeId>) -> bool {
    vote_result(m, |id| if set.contains(&id) { Some(true) } else { None }) == VoteResult::Won
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[NodeId]) -> BTreeSet<NodeId> {
        v.iter().copied().collect()
    }

    #[test]
    fn simple_majority_index() {
        let m = Membership::with_voters([1, 2, 3]);
        assert_eq!(committed_index(&m, |id| [0, 5, 3, 1][id as usize]), 3);
    }

    #[test]
    fn joint_takes_minimum() {
        let m = Membership {
            voters: set(&[1, 2, 3]),
            voters_outgoing: set(&[3, 4, 5]),
            learners: set(&[]),
            ..Default::default()
        };
        let acked = |id: NodeId| [0, 9, 9, 2, 1, 1][id as usize];
        assert_eq!(committed_index(&m, acked), 1);
    }

    #[test]
    fn votes() {
        let m = Membership::with_voters([1, 2, 3]);
        assert_eq!(
            vote_result(&m, |id| (id == 1).then_some(true)),
            VoteResult::Pending
        );
        assert_eq!(
            vote_result(&m, |id| (id != 3).then_some(true)),
            VoteResult::Won
        );
        assert_eq!(vote_result(&m, |id| Some(id == 1)), VoteResult::Lost);
        let j = Membership {
            voters: set(&[1, 2, 3]),
            voters_outgoing: set(&[1, 4, 5]),
            learners: set(&[]),
            ..Default::default()
        };
        assert_eq!(
            vote_result(&j, |id| (id <= 3).then_some(true)),
            VoteResult::Pending
        );
        assert!(is_quorum(&j, &set(&[1, 2, 4])));
    }
}
