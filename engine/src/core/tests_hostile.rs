//! Hostile or corrupt peer input: each message is refused (no action at all), counted
//! by reason, and leaves term, role and log as they were (see `refusal.rs`).

use super::refusal::{INDEX_MAX, TERM_MAX};
use super::tests::{leader1, msg, node, noop, send};
use super::*;

/// Node 2, following leader 1 in term 1, holding entries 1..=2, both committed.
fn follower2() -> Raft {
    let mut r = node(2);
    r.step(Event::Message {
        from: 1,
        msg: msg(1, append(0, 0, vec![noop(1, 1), noop(2, 1)], 2)),
    });
    r.step(Event::Persisted { index: 2, term: 1 });
    r.take_actions();
    assert_eq!((r.leader(), r.commit_index()), (Some(1), 2));
    r
}

fn append(prev_index: LogIndex, prev_term: Term, entries: Vec<Entry>, commit: LogIndex) -> Body {
    Body::Append(Append {
        id: 1,
        prev_index,
        prev_term,
        entries,
        leader_commit: commit,
    })
}

fn snapshot(last_index: LogIndex, last_term: Term, voters: &[NodeId]) -> Body {
    Body::InstallSnapshot {
        meta: SnapshotMeta {
            last_index,
            last_term,
            membership: Membership::with_voters(voters.iter().copied()),
        },
    }
}

/// A follower's acknowledgement (id 0, as for a snapshot).
fn ack(match_index: LogIndex) -> Body {
    Body::AppendResp(AppendResp {
        id: 0,
        success: true,
        match_index,
        reject_index: 0,
        conflict_term: None,
        conflict_index: 0,
    })
}

/// Steps `from`'s message and asserts it was refused for `why`: no action, and the
/// term, role, leader and log unchanged.
fn assert_refused(r: &mut Raft, from: NodeId, m: Message, why: Refusal) {
    let before = (r.hard_state(), r.role(), r.leader(), r.log().last_index());
    let (count, total) = (r.refusals().get(why), r.refusals().total());
    r.step(Event::Message { from, msg: m });
    assert_eq!(r.take_actions(), vec![], "{why}: refused without a word");
    let after = (r.hard_state(), r.role(), r.leader(), r.log().last_index());
    assert_eq!(after, before, "{why}: nothing changed");
    assert_eq!(r.refusals().get(why), count + 1, "{why}: counted");
    assert_eq!(r.refusals().total(), total + 1, "{why}: counted once");
}

/// Regression: a header term of u64::MAX was adopted, and the next campaign wrapped
/// the term to 0 (an overflow panic in debug builds).
#[test]
fn a_term_of_u64_max_is_refused_and_the_next_campaign_does_not_wrap() {
    let mut r = node(2);
    let hb = Body::Heartbeat {
        commit: 0,
        read_ctx: 1,
    };
    assert_refused(&mut r, 1, msg(u64::MAX, hb.clone()), Refusal::AbsurdTerm);
    assert_refused(
        &mut r,
        1,
        msg(u64::MAX, append(0, 0, vec![], 0)),
        Refusal::AbsurdTerm,
    );
    let vote = Body::Vote {
        last_log_index: 0,
        last_log_term: 0,
        transfer: false,
    };
    assert_refused(&mut r, 3, msg(u64::MAX, vote), Refusal::AbsurdTerm);
    // The largest term a node may hold is still accepted.
    r.step(Event::Message {
        from: 1,
        msg: msg(TERM_MAX, hb),
    });
    assert_eq!(r.term(), TERM_MAX);
}

#[test]
fn a_node_at_the_last_term_stays_a_follower_instead_of_wrapping() {
    let restored = |term| Restored {
        hard_state: HardState {
            term,
            voted_for: None,
        },
        ..Restored::bootstrap([1, 2, 3])
    };
    // One below: it may still pre-vote, for TERM_MAX itself.
    let mut r = Raft::new(1, RaftConfig::default(), 42, restored(TERM_MAX - 1)).unwrap();
    r.step(Event::Campaign);
    let pv = Body::PreVote {
        last_log_index: 0,
        last_log_term: 0,
    };
    assert_eq!(
        r.take_actions(),
        vec![
            send(2, TERM_MAX, pv.clone(), SendWhen::Now),
            send(3, TERM_MAX, pv, SendWhen::Now),
            Action::RoleChanged {
                role: Role::PreCandidate,
                term: TERM_MAX - 1,
                leader: None
            },
        ]
    );
    // At TERM_MAX there is no next term: neither the timer nor a request campaigns.
    let mut r = Raft::new(1, RaftConfig::default(), 42, restored(TERM_MAX)).unwrap();
    r.step(Event::Campaign);
    for _ in 0..100 {
        r.step(Event::Tick);
    }
    assert_eq!(r.take_actions(), vec![]);
    assert_eq!((r.role(), r.term()), (Role::Follower, TERM_MAX));
    assert!(r.refusals().get(Refusal::TermExhausted) >= 2);
}

/// Regression: a same-term append to a leader hit `debug_assert!(false)`.
#[test]
fn a_same_term_append_heartbeat_or_snapshot_to_the_leader_is_refused() {
    let mut r = leader1();
    let hb = Body::Heartbeat {
        commit: 0,
        read_ctx: 1,
    };
    assert_refused(
        &mut r,
        3,
        msg(1, append(0, 0, vec![], 0)),
        Refusal::NotLeader,
    );
    assert_refused(&mut r, 3, msg(1, hb), Refusal::NotLeader);
    assert_refused(
        &mut r,
        3,
        msg(1, snapshot(5, 1, &[1, 2, 3])),
        Refusal::NotLeader,
    );
    assert_refused(&mut r, 3, msg(1, Body::TimeoutNow), Refusal::NotLeader);
    assert_eq!(r.role(), Role::Leader);
}

#[test]
fn a_second_leader_of_the_term_is_refused_by_a_follower() {
    let mut r = follower2();
    // Entry 3 from node 3, claiming to lead term 1 too, would overwrite nothing yet
    // but would make node 2 follow it.
    let forged = msg(1, append(2, 1, vec![noop(3, 1)], 3));
    assert_refused(&mut r, 3, forged, Refusal::NotLeader);
    assert_refused(
        &mut r,
        3,
        msg(1, snapshot(9, 1, &[1, 2, 3])),
        Refusal::NotLeader,
    );
    assert_refused(&mut r, 3, msg(1, Body::TimeoutNow), Refusal::NotLeader);
    assert_eq!(r.commit_index(), 2);
}

/// The term of a refused append is not adopted either: the refusal comes first.
#[test]
fn appends_with_gapped_or_misplaced_entries_are_refused() {
    let mut r = follower2();
    let gapped = append(2, 1, vec![noop(3, 2), noop(5, 2)], 0);
    assert_refused(&mut r, 1, msg(2, gapped), Refusal::MalformedAppend);
    let misplaced = append(2, 1, vec![noop(4, 2)], 0);
    assert_refused(&mut r, 1, msg(2, misplaced), Refusal::MalformedAppend);
    let backwards = append(2, 1, vec![noop(3, 2), noop(4, 1)], 0);
    assert_refused(&mut r, 1, msg(2, backwards), Refusal::MalformedAppend);
    let future = append(2, 1, vec![noop(3, 3)], 0);
    assert_refused(&mut r, 1, msg(2, future), Refusal::AbsurdTerm);
    let no_voters = Entry {
        term: 2,
        index: 3,
        payload: EntryPayload::Config(Membership::default()),
    };
    let config = append(2, 1, vec![no_voters], 0);
    assert_refused(&mut r, 1, msg(2, config), Refusal::MalformedAppend);
    assert_eq!(r.term(), 1);
}

#[test]
fn an_append_whose_indexes_would_overflow_is_refused() {
    let mut r = follower2();
    let at_max = append(u64::MAX, 1, vec![], 0);
    assert_refused(&mut r, 1, msg(1, at_max), Refusal::AbsurdIndex);
    let past_max = append(INDEX_MAX, 1, vec![noop(u64::MAX, 1)], 0);
    assert_refused(&mut r, 1, msg(1, past_max), Refusal::AbsurdIndex);
    let commit = append(2, 1, vec![], u64::MAX);
    assert_refused(&mut r, 1, msg(1, commit), Refusal::AbsurdIndex);
    let hb = Body::Heartbeat {
        commit: u64::MAX,
        read_ctx: 1,
    };
    assert_refused(&mut r, 1, msg(1, hb), Refusal::AbsurdIndex);
}

#[test]
fn forged_snapshot_headers_are_refused() {
    let mut r = follower2();
    let cases = [
        (snapshot(9, 1, &[]), Refusal::MalformedSnapshot),
        (snapshot(9, 7, &[1, 2, 3]), Refusal::AbsurdTerm),
        (snapshot(u64::MAX, 1, &[1, 2, 3]), Refusal::AbsurdIndex),
    ];
    for (body, why) in cases {
        assert_refused(&mut r, 1, msg(1, body), why);
    }
    // From a higher term: still refused, and that term is not adopted.
    assert_refused(
        &mut r,
        1,
        msg(4, snapshot(9, 3, &[])),
        Refusal::MalformedSnapshot,
    );
    // Below our commit index: not installed, answered with what we hold (a duplicate
    // of an old snapshot looks the same, so it is not counted as a refusal).
    r.step(Event::Message {
        from: 1,
        msg: msg(1, snapshot(1, 1, &[1, 2, 3])),
    });
    assert_eq!(
        r.take_actions(),
        vec![send(1, 1, ack(2), SendWhen::AfterPersist)]
    );
    assert_eq!(r.refusals().total(), 4);
}

#[test]
fn answers_beyond_the_leaders_log_are_refused() {
    let mut r = leader1();
    let before = r.progress(2);
    assert_refused(&mut r, 2, msg(1, ack(2)), Refusal::BadResponse);
    assert_refused(&mut r, 2, msg(1, ack(u64::MAX)), Refusal::AbsurdIndex);
    let reject = |reject_index| {
        Body::AppendResp(AppendResp {
            id: 1,
            success: false,
            match_index: 0,
            reject_index,
            conflict_term: None,
            conflict_index: 1,
        })
    };
    assert_refused(&mut r, 2, msg(1, reject(7)), Refusal::BadResponse);
    assert_refused(&mut r, 2, msg(1, reject(u64::MAX)), Refusal::AbsurdIndex);
    let future_round = Body::HeartbeatResp { read_ctx: 1000 };
    assert_refused(&mut r, 2, msg(1, future_round), Refusal::BadResponse);
    assert_eq!(r.progress(2), before);
    // The honest answer still moves the follower forward.
    r.step(Event::Message {
        from: 2,
        msg: msg(1, ack(1)),
    });
    assert_eq!(r.progress(2), Some((1, 2)));
}

#[test]
fn a_candidate_claiming_a_log_term_above_its_own_term_is_refused() {
    let mut r = node(2);
    let vote = Body::Vote {
        last_log_index: 1,
        last_log_term: 9,
        transfer: false,
    };
    assert_refused(&mut r, 3, msg(2, vote), Refusal::AbsurdTerm);
    let pre_vote = Body::PreVote {
        last_log_index: u64::MAX,
        last_log_term: 0,
    };
    assert_refused(&mut r, 3, msg(2, pre_vote), Refusal::AbsurdIndex);
}
