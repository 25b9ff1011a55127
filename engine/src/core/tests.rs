//! Exact action lists of the main transitions.

use bytes::Bytes;

use super::*;

pub(super) fn node(id: NodeId) -> Raft {
    Raft::new(
        id,
        RaftConfig::default(),
        42,
        Restored::bootstrap([1, 2, 3]),
    )
    .unwrap()
}

pub(super) fn send(to: NodeId, term: Term, body: Body, when: SendWhen) -> Action {
    Action::Send {
        to,
        msg: Message { term, body },
        when,
    }
}

pub(super) fn msg(term: Term, body: Body) -> Message {
    Message { term, body }
}

pub(super) fn noop(index: LogIndex, term: Term) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Noop,
    }
}

/// Ticks until the node's role changes; returns the actions of that last tick.
fn tick_until_role_change(r: &mut Raft) -> Vec<Action> {
    let role = r.role();
    for _ in 0..100 {
        r.step(Event::Tick);
        let a = r.take_actions();
        if r.role() != role {
            return a;
        }
        assert!(a.is_empty(), "a quiet follower tick emits nothing: {a:?}");
    }
    panic!("no election");
}

/// Node 1 becomes leader of term 1 with votes from 2; returns it with actions drained.
pub(super) fn leader1() -> Raft {
    let mut r = node(1);
    tick_until_role_change(&mut r);
    r.step(Event::Message {
        from: 2,
        msg: msg(1, Body::PreVoteResp { granted: true }),
    });
    r.step(Event::Message {
        from: 2,
        msg: msg(1, Body::VoteResp { granted: true }),
    });
    assert_eq!(r.role(), Role::Leader);
    r.take_actions();
    r
}

#[test]
fn election_timeout_starts_pre_vote_without_touching_term() {
    let mut r = node(1);
    let pv = Body::PreVote {
        last_log_index: 0,
        last_log_term: 0,
    };
    assert_eq!(
        tick_until_role_change(&mut r),
        vec![
            send(2, 1, pv.clone(), SendWhen::Now),
            send(3, 1, pv, SendWhen::Now),
            Action::RoleChanged {
                role: Role::PreCandidate,
                term: 0,
                leader: None
            },
        ]
    );
    assert_eq!(r.hard_state(), HardState::default());
}

#[test]
fn pre_vote_win_persists_term_and_vote_before_vote_requests() {
    let mut r = node(1);
    tick_until_role_change(&mut r);
    r.step(Event::Message {
        from: 3,
        msg: msg(1, Body::PreVoteResp { granted: true }),
    });
    let v = Body::Vote {
        last_log_index: 0,
        last_log_term: 0,
        transfer: false,
    };
    assert_eq!(
        r.take_actions(),
        vec![
            Action::PersistHardState(HardState {
                term: 1,
                voted_for: Some(1)
            }),
            send(2, 1, v.clone(), SendWhen::AfterPersist),
            send(3, 1, v, SendWhen::AfterPersist),
            Action::RoleChanged {
                role: Role::Candidate,
                term: 1,
                leader: None
            },
        ]
    );
}

#[test]
fn new_leader_appends_noop_persists_and_sends_in_parallel() {
    let mut r = node(1);
    tick_until_role_change(&mut r);
    r.step(Event::Message {
        from: 2,
        msg: msg(1, Body::PreVoteResp { granted: true }),
    });
    r.take_actions();
    r.step(Event::Message {
        from: 2,
        msg: msg(1, Body::VoteResp { granted: true }),
    });
    let app = Body::Append(Append {
        id: 1,
        prev_index: 0,
        prev_term: 0,
        entries: vec![noop(1, 1)],
        leader_commit: 0,
    });
    let mut app3 = app.clone();
    if let Body::Append(a) = &mut app3 {
        a.id = 2;
    }
    assert_eq!(
        r.take_actions(),
        vec![
            Action::PersistEntries {
                truncate_from: None,
                entries: vec![noop(1, 1)]
            },
            send(2, 1, app, SendWhen::Now),
            send(3, 1, app3, SendWhen::Now),
            Action::RoleChanged {
                role: Role::Leader,
                term: 1,
                leader: Some(1)
            },
        ]
    );
}

#[test]
fn vote_grant_is_persisted_before_the_reply() {
    let mut r = node(2);
    r.step(Event::Message {
        from: 1,
        msg: msg(
            1,
            Body::Vote {
                last_log_index: 0,
                last_log_term: 0,
                transfer: false,
            },
        ),
    });
    assert_eq!(
        r.take_actions(),
        vec![
            Action::PersistHardState(HardState {
                term: 1,
                voted_for: None
            }),
            Action::PersistHardState(HardState {
                term: 1,
                voted_for: Some(1)
            }),
            send(
                1,
                1,
                Body::VoteResp { granted: true },
                SendWhen::AfterPersist
            ),
            Action::RoleChanged {
                role: Role::Follower,
                term: 1,
                leader: None
            },
        ]
    );
    // A second candidate of the same term is refused.
    r.step(Event::Message {
        from: 3,
        msg: msg(
            1,
            Body::Vote {
                last_log_index: 5,
                last_log_term: 1,
                transfer: false,
            },
        ),
    });
    assert_eq!(
        r.take_actions(),
        vec![send(3, 1, Body::VoteResp { granted: false }, SendWhen::Now)]
    );
}

#[test]
fn follower_acknowledges_appends_only_after_persisting() {
    let mut r = node(2);
    let a = Append {
        id: 7,
        prev_index: 0,
        prev_term: 0,
        entries: vec![noop(1, 1)],
        leader_commit: 0,
    };
    r.step(Event::Message {
        from: 1,
        msg: msg(1, Body::Append(a)),
    });
    let ack = Body::AppendResp(AppendResp {
        id: 7,
        success: true,
        match_index: 1,
        reject_index: 0,
        conflict_term: None,
        conflict_index: 0,
    });
    assert_eq!(
        r.take_actions(),
        vec![
            Action::PersistHardState(HardState {
                term: 1,
                voted_for: None
            }),
            Action::PersistEntries {
                truncate_from: None,
                entries: vec![noop(1, 1)]
            },
            send(1, 1, ack, SendWhen::AfterPersist),
            Action::RoleChanged {
                role: Role::Follower,
                term: 1,
                leader: Some(1)
            },
        ]
    );
}

#[test]
fn follower_rejects_with_conflict_hint() {
    let mut r = node(2);
    let a = Append {
        id: 3,
        prev_index: 5,
        prev_term: 1,
        entries: vec![],
        leader_commit: 0,
    };
    r.step(Event::Message {
        from: 1,
        msg: msg(1, Body::Append(a)),
    });
    let rej = Body::AppendResp(AppendResp {
        id: 3,
        success: false,
        match_index: 0,
        reject_index: 5,
        conflict_term: None,
        conflict_index: 1,
    });
    let acts = r.take_actions();
    assert_eq!(acts[1], send(1, 1, rej, SendWhen::Now));
}

#[test]
fn leader_commits_only_once_its_own_write_is_durable() {
    let mut r = leader1();
    let ack = AppendResp {
        id: 1,
        success: true,
        match_index: 1,
        reject_index: 0,
        conflict_term: None,
        conflict_index: 0,
    };
    r.step(Event::Message {
        from: 2,
        msg: msg(1, Body::AppendResp(ack)),
    });
    // Follower 2 holds entry 1 but the leader's own write is not durable: 1 of 3.
    assert_eq!(r.commit_index(), 0);
    assert_eq!(r.take_actions(), vec![]);
    r.step(Event::Persisted { index: 1, term: 1 });
    assert_eq!(r.commit_index(), 1);
    assert_eq!(
        r.take_actions(),
        vec![Action::Apply {
            entries: vec![noop(1, 1)]
        }]
    );
}

#[test]
fn proposals_at_a_follower_are_refused_with_a_hint() {
    let mut r = node(2);
    r.step(Event::Message {
        from: 1,
        msg: msg(
            1,
            Body::Heartbeat {
                commit: 0,
                read_ctx: 1,
            },
        ),
    });
    r.take_actions();
    r.step(Event::Propose(vec![Proposal {
        id: 9,
        session: None,
        data: Bytes::from_static(b"x"),
    }]));
    assert_eq!(
        r.take_actions(),
        vec![Action::ProposeResult {
            id: 9,
            result: Err(ProposeError::NotLeader { leader: Some(1) })
        }]
    );
}

#[test]
fn read_index_waits_for_a_heartbeat_quorum() {
    let mut r = leader1();
    r.step(Event::Persisted { index: 1, term: 1 });
    let ack = AppendResp {
        id: 1,
        success: true,
        match_index: 1,
        reject_index: 0,
        conflict_term: None,
        conflict_index: 0,
    };
    r.step(Event::Message {
        from: 2,
        msg: msg(1, Body::AppendResp(ack)),
    });
    r.step(Event::Applied { index: 1 });
    r.take_actions();
    r.step(Event::Read {
        id: 5,
        consistency: ReadConsistency::Linearizable,
    });
    let acts = r.take_actions();
    let hb: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                msg:
                    Message {
                        body: Body::Heartbeat { read_ctx, .. },
                        ..
                    },
                ..
            } => Some((*to, *read_ctx)),
            _ => None,
        })
        .collect();
    assert_eq!(hb, vec![(2, 1), (3, 1)]);
    assert!(!acts.iter().any(|a| matches!(a, Action::ReadResult { .. })));
    r.step(Event::Message {
        from: 3,
        msg: msg(1, Body::HeartbeatResp { read_ctx: 1 }),
    });
    let acts = r.take_actions();
    assert!(
        acts.contains(&Action::ReadResult {
            id: 5,
            result: Ok(1)
        }),
        "{acts:?}"
    );
}

#[test]
fn serializable_read_is_served_locally() {
    let mut r = node(3);
    r.step(Event::Read {
        id: 1,
        consistency: ReadConsistency::Serializable,
    });
    assert_eq!(
        r.take_actions(),
        vec![Action::ReadResult {
            id: 1,
            result: Ok(0)
        }]
    );
}

#[test]
fn sticky_follower_ignores_disruptive_vote() {
    let mut r = node(2);
    r.step(Event::Message {
        from: 1,
        msg: msg(
            1,
            Body::Heartbeat {
                commit: 0,
                read_ctx: 1,
            },
        ),
    });
    r.take_actions();
    r.step(Event::Message {
        from: 3,
        msg: msg(
            5,
            Body::Vote {
                last_log_index: 9,
                last_log_term: 4,
                transfer: false,
            },
        ),
    });
    assert_eq!(r.take_actions(), vec![]);
    assert_eq!(r.term(), 1);
}
