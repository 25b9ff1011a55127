//! The leader's bounds: uncommitted proposals, the apply queue, snapshots by bytes.

use bytes::Bytes;

use super::tests::{leader1, msg};
use super::*;

fn proposal(id: u64, len: usize) -> Proposal {
    Proposal {
        id,
        session: None,
        data: Bytes::from(vec![1u8; len]),
    }
}

fn results(r: &mut Raft) -> Vec<Result<(LogIndex, Term), ProposeError>> {
    r.take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::ProposeResult { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

fn ack(r: &mut Raft, from: NodeId, index: LogIndex) {
    let resp = AppendResp {
        id: 0,
        success: true,
        match_index: index,
        reject_index: 0,
        conflict_term: None,
        conflict_index: 0,
    };
    r.step(Event::Message {
        from,
        msg: msg(r.term(), Body::AppendResp(resp)),
    });
}

#[test]
fn proposals_beyond_the_uncommitted_entry_bound_are_busy_and_append_nothing() {
    let mut r = leader1();
    r.cfg.max_uncommitted_entries = 3;
    // The leader's no-op (index 1) is uncommitted: room for two more.
    r.step(Event::Propose(vec![proposal(1, 8), proposal(2, 8)]));
    assert!(results(&mut r).iter().all(|x| x.is_ok()));
    let last = r.log.last_index();
    r.step(Event::Propose(vec![proposal(3, 8)]));
    assert_eq!(results(&mut r), vec![Err(ProposeError::Busy)]);
    assert_eq!(
        r.log.last_index(),
        last,
        "a refused proposal appends nothing"
    );
    // Once a quorum holds them, they commit and there is room again.
    r.step(Event::Persisted {
        index: last,
        term: 1,
    });
    ack(&mut r, 2, last);
    assert_eq!(r.commit_index(), last);
    r.take_actions();
    r.step(Event::Propose(vec![proposal(4, 8)]));
    assert!(results(&mut r)[0].is_ok());
}

#[test]
fn the_uncommitted_byte_bound_refuses_but_a_lone_large_entry_gets_in() {
    let mut r = leader1();
    r.cfg.max_uncommitted_bytes = 1000;
    r.step(Event::Persisted { index: 1, term: 1 });
    ack(&mut r, 2, 1);
    r.take_actions();
    // Nothing uncommitted: an entry larger than the bound is accepted alone.
    r.step(Event::Propose(vec![proposal(1, 5000)]));
    assert!(results(&mut r)[0].is_ok());
    r.step(Event::Propose(vec![proposal(2, 10)]));
    assert_eq!(results(&mut r), vec![Err(ProposeError::Busy)]);
}

#[test]
fn the_apply_queue_holds_at_most_max_apply_entries() {
    let mut r = leader1();
    r.cfg.max_apply_entries = 2;
    r.step(Event::Propose((1..=4).map(|i| proposal(i, 8)).collect()));
    r.take_actions();
    let last = r.log.last_index();
    r.step(Event::Persisted {
        index: last,
        term: 1,
    });
    ack(&mut r, 2, last);
    let applied_batches: Vec<Vec<LogIndex>> = r
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Apply { entries } => Some(entries.iter().map(|e| e.index).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(applied_batches, vec![vec![1, 2]], "two in flight at most");
    r.step(Event::Applied { index: 2 });
    let next: Vec<LogIndex> = r
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Apply { entries } => Some(entries.iter().map(|e| e.index).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(next, vec![3, 4]);
}

#[test]
fn a_snapshot_is_taken_once_the_applied_entries_hold_enough_bytes() {
    let mut r = leader1();
    r.cfg.snapshot_policy = SnapshotPolicy::EveryEntries(1_000_000);
    r.cfg.snapshot_log_bytes = 10_000;
    r.step(Event::Propose(vec![proposal(1, 6000), proposal(2, 6000)]));
    r.take_actions();
    let last = r.log.last_index();
    r.step(Event::Persisted {
        index: last,
        term: 1,
    });
    ack(&mut r, 2, last);
    r.take_actions();
    r.step(Event::Applied { index: 2 });
    let took = |a: &Vec<Action>| a.iter().any(|a| matches!(a, Action::TakeSnapshot { .. }));
    assert!(!took(&r.take_actions()), "6 KB applied: not yet");
    r.step(Event::Applied { index: last });
    assert!(took(&r.take_actions()), "12 KB applied: a snapshot");
}

/// Regression (issue 14): a snapshot build that failed (a full disk) stopped the
/// node. Now the core waits `SNAPSHOT_RETRY_TIMEOUTS` election timeouts before the
/// policy asks again, instead of asking at the next applied entry; an operator's
/// `SnapshotNow` still asks at once.
#[test]
fn a_failed_snapshot_build_is_retried_after_a_pause_not_at_every_apply() {
    let mut r = leader1();
    r.cfg.snapshot_policy = SnapshotPolicy::EveryEntries(1);
    let took = |a: &Vec<Action>| a.iter().any(|a| matches!(a, Action::TakeSnapshot { .. }));
    let commit_one = |r: &mut Raft, id| {
        r.step(Event::Propose(vec![proposal(id, 10)]));
        let last = r.log.last_index();
        r.step(Event::Persisted {
            index: last,
            term: 1,
        });
        ack(r, 2, last);
        r.take_actions();
        r.step(Event::Applied { index: last });
        r.take_actions()
    };
    assert!(took(&commit_one(&mut r, 1)), "the policy asks");
    r.step(Event::SnapshotFailed);
    assert!(!took(&commit_one(&mut r, 2)), "not again at the next apply");
    r.step(Event::SnapshotNow);
    assert!(took(&r.take_actions()), "on demand: at once");
    r.step(Event::SnapshotFailed);
    let pause = crate::core::SNAPSHOT_RETRY_TIMEOUTS * r.cfg.election_timeout_ticks_max;
    for _ in 0..pause {
        r.step(Event::Tick);
    }
    r.take_actions();
    assert!(took(&commit_one(&mut r, 3)), "asked again after the pause");
}

#[test]
fn a_snapshot_is_taken_once_the_interval_passed_and_something_was_applied() {
    let mut r = leader1();
    r.cfg.snapshot_policy = SnapshotPolicy::EveryEntries(1_000_000);
    // Short, so the leader (whose followers never answer here) still leads.
    r.cfg.snapshot_interval_ticks = 3;
    let took = |a: &Vec<Action>| a.iter().any(|a| matches!(a, Action::TakeSnapshot { .. }));
    let ticked = |r: &mut Raft, n| {
        (0..n).any(|_| {
            r.step(Event::Tick);
            took(&r.take_actions())
        })
    };
    assert!(
        !ticked(&mut r, 5),
        "nothing applied since the last: no snapshot"
    );
    r.step(Event::Propose(vec![proposal(1, 10)]));
    let last = r.log.last_index();
    r.step(Event::Persisted {
        index: last,
        term: 1,
    });
    ack(&mut r, 2, last);
    r.take_actions(); // hands the committed entries to the state machine
    r.step(Event::Applied { index: last });
    let applied_now = took(&r.take_actions());
    assert!(
        applied_now || ticked(&mut r, 1),
        "the interval has passed: a snapshot"
    );
}
