//! Refusing hostile or corrupt peer input: a message that breaks a rule here is
//! ignored and counted, never allowed to panic the core or wrap an index or term.
//!
//! # The rule for terms and indexes
//!
//! Terms and indexes only grow by one at a time (a campaign, an append), so the core
//! must always be able to add 1 to any term it holds and to any index in its log. A peer
//! could otherwise hand it `u64::MAX`: a node that adopted that term would wrap to term
//! 0 at its next campaign (a panic in debug builds). Hence:
//!
//! - **No term or index of `u64::MAX`** anywhere in a message (header, entries,
//!   snapshot meta, vote and response fields), and no append whose last index would be
//!   `u64::MAX`. Every such value is refused as [`Refusal::AbsurdTerm`] or
//!   [`Refusal::AbsurdIndex`].
//! - **No term above the message's own term** in what it carries (entries, the
//!   snapshot's last term, a candidate's last log term, a follower's conflict term):
//!   an honest sender's log never holds a term it has not reached.
//! - **A node never campaigns into `u64::MAX`** ([`Refusal::TermExhausted`]): a node
//!   at term `u64::MAX - 1` stays a follower, since its peers would refuse the term.
//!
//! There is deliberately no bound on *how far* a term may jump: a node that was
//! partitioned away for a long time legitimately catches up by many terms at once.
//! A peer that knows the cluster id can still push the cluster to a huge term (and so
//! wedge elections near `u64::MAX`); that is a trust problem for mutual TLS, not for
//! arithmetic. These rules only guarantee that nothing panics or wraps.
//!
//! The stateless rules are in [`check`], which the network layer also applies (and
//! counts in `dengine_peer_refused_total`) before a message reaches the core; the core
//! applies them again, plus the rules that need its state (a second leader in one term,
//! acknowledgements beyond the leader's log), and counts every refusal in
//! [`Refusals`].

use super::message::{Append, AppendResp, Body, Message};
use super::raft::Raft;
use super::types::{EntryPayload, LogIndex, SnapshotMeta, Term};

/// Why a peer message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// A term of `u64::MAX`, or a carried term above the message's own term.
    AbsurdTerm,
    /// An index of `u64::MAX`, or an append whose last index would overflow.
    AbsurdIndex,
    /// Append entries with gaps, not following `prev_index`, with decreasing terms, or a
    /// configuration entry without voters.
    MalformedAppend,
    /// A snapshot whose membership has no voters.
    MalformedSnapshot,
    /// A leader's message (append, heartbeat, snapshot, timeout-now) in our term from a
    /// node that is not the leader of our term: we lead it, or follow another node.
    NotLeader,
    /// A response acknowledging or rejecting an index beyond the leader's log, or
    /// answering a read round that was never started.
    BadResponse,
    /// This node's term leaves no next term: it cannot campaign (not a message).
    TermExhausted,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::AbsurdTerm,
        Refusal::AbsurdIndex,
        Refusal::MalformedAppend,
        Refusal::MalformedSnapshot,
        Refusal::NotLeader,
        Refusal::BadResponse,
        Refusal::TermExhausted,
    ];

    /// The `reason` label of the refusal metrics.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::AbsurdTerm => "absurd_term",
            Refusal::AbsurdIndex => "absurd_index",
            Refusal::MalformedAppend => "malformed_append",
            Refusal::MalformedSnapshot => "malformed_snapshot",
            Refusal::NotLeader => "not_leader",
            Refusal::BadResponse => "bad_response",
            Refusal::TermExhausted => "term_exhausted",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Refusals counted by the core since it was built, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refusals {
    counts: [u64; Refusal::ALL.len()],
}

impl Refusals {
    pub(crate) fn count(&mut self, r: Refusal) {
        let c = &mut self.counts[r as usize];
        *c = c.saturating_add(1);
    }

    pub fn get(&self, r: Refusal) -> u64 {
        self.counts[r as usize]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0, |a, &c| a.saturating_add(c))
    }

    /// Every reason with its count (zeros included), for metrics.
    pub fn iter(&self) -> impl Iterator<Item = (Refusal, u64)> + '_ {
        Refusal::ALL.iter().map(|&r| (r, self.get(r)))
    }
}

/// The largest term a node may hold, adopt or campaign in.
pub const TERM_MAX: Term = u64::MAX - 1;
/// The largest index a log may hold (so that `index + 1` never overflows).
pub const INDEX_MAX: LogIndex = u64::MAX - 1;

fn term_ok(carried: Term, msg_term: Term) -> Result<(), Refusal> {
    if carried > msg_term {
        Err(Refusal::AbsurdTerm)
    } else {
        Ok(())
    }
}

fn index_ok(i: LogIndex) -> Result<(), Refusal> {
    if i > INDEX_MAX {
        Err(Refusal::AbsurdIndex)
    } else {
        Ok(())
    }
}

/// The stateless rules: what no honest peer ever sends, whatever our state.
pub fn check(msg: &Message) -> Result<(), Refusal> {
    let t = msg.term;
    if t > TERM_MAX {
        return Err(Refusal::AbsurdTerm);
    }
    match &msg.body {
        Body::PreVote {
            last_log_index,
            last_log_term,
        }
        | Body::Vote {
            last_log_index,
            last_log_term,
            ..
        } => {
            index_ok(*last_log_index)?;
            term_ok(*last_log_term, t)
        }
        Body::PreVoteResp { .. } | Body::VoteResp { .. } | Body::TimeoutNow => Ok(()),
        Body::Append(a) => check_append(a, t),
        Body::AppendResp(r) => check_append_resp(r, t),
        Body::Heartbeat { commit, .. } => index_ok(*commit),
        Body::HeartbeatResp { .. } => Ok(()),
        Body::InstallSnapshot { meta } => check_snapshot(meta, t),
    }
}

impl Raft {
    /// Ignores a message (the caller returns) and counts why.
    pub(crate) fn refuse(&mut self, r: Refusal) {
        self.refusals.count(r);
    }
}

fn check_append(a: &Append, t: Term) -> Result<(), Refusal> {
    index_ok(a.prev_index)?;
    index_ok(a.leader_commit)?;
    term_ok(a.prev_term, t)?;
    match a.prev_index.checked_add(a.entries.len() as u64) {
        Some(last) if last <= INDEX_MAX => {}
        _ => return Err(Refusal::AbsurdIndex),
    }
    let mut prev_term = a.prev_term;
    for (k, e) in a.entries.iter().enumerate() {
        term_ok(e.term, t)?;
        // The last index fits, so this sum cannot overflow.
        let expected = a.prev_index + 1 + k as u64;
        if e.index != expected || e.term < prev_term {
            return Err(Refusal::MalformedAppend);
        }
        if let EntryPayload::Config(m) = &e.payload
            && m.voters.is_empty()
        {
            return Err(Refusal::MalformedAppend);
        }
        prev_term = e.term;
    }
    Ok(())
}

fn check_append_resp(r: &AppendResp, t: Term) -> Result<(), Refusal> {
    index_ok(r.match_index)?;
    index_ok(r.reject_index)?;
    index_ok(r.conflict_index)?;
    match r.conflict_term {
        Some(ct) => term_ok(ct, t),
        None => Ok(()),
    }
}

fn check_snapshot(meta: &SnapshotMeta, t: Term) -> Result<(), Refusal> {
    index_ok(meta.last_index)?;
    term_ok(meta.last_term, t)?;
    if meta.membership.voters.is_empty() {
        return Err(Refusal::MalformedSnapshot);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::{Entry, Membership};

    fn append(prev_index: LogIndex, indexes: &[(LogIndex, Term)]) -> Message {
        Message {
            term: 5,
            body: Body::Append(Append {
                id: 1,
                prev_index,
                prev_term: 1,
                entries: indexes
                    .iter()
                    .map(|&(index, term)| Entry {
                        term,
                        index,
                        payload: EntryPayload::Noop,
                    })
                    .collect(),
                leader_commit: 0,
            }),
        }
    }

    #[test]
    fn honest_messages_pass() {
        assert_eq!(check(&append(3, &[(4, 1), (5, 2), (6, 5)])), Ok(()));
        assert_eq!(check(&append(INDEX_MAX - 1, &[(INDEX_MAX, 5)])), Ok(()));
        let snap = Message {
            term: TERM_MAX,
            body: Body::InstallSnapshot {
                meta: SnapshotMeta {
                    last_index: 9,
                    last_term: TERM_MAX,
                    membership: Membership::with_voters([1]),
                },
            },
        };
        assert_eq!(check(&snap), Ok(()));
    }

    #[test]
    fn absurd_terms_and_indexes_are_refused() {
        let hb = |term, commit| Message {
            term,
            body: Body::Heartbeat {
                commit,
                read_ctx: 0,
            },
        };
        assert_eq!(check(&hb(u64::MAX, 0)), Err(Refusal::AbsurdTerm));
        assert_eq!(check(&hb(1, u64::MAX)), Err(Refusal::AbsurdIndex));
        assert_eq!(
            check(&append(u64::MAX, &[])),
            Err(Refusal::AbsurdIndex),
            "prev_index + 1 would overflow"
        );
        assert_eq!(
            check(&append(INDEX_MAX, &[(u64::MAX, 5)])),
            Err(Refusal::AbsurdIndex),
            "the last entry's index + 1 would overflow"
        );
        assert_eq!(
            check(&append(3, &[(4, 6)])),
            Err(Refusal::AbsurdTerm),
            "an entry of a term above the sender's"
        );
        let vote = Message {
            term: 3,
            body: Body::Vote {
                last_log_index: 1,
                last_log_term: 4,
                transfer: false,
            },
        };
        assert_eq!(check(&vote), Err(Refusal::AbsurdTerm));
    }

    #[test]
    fn gapped_or_misplaced_entries_are_refused() {
        assert_eq!(
            check(&append(3, &[(4, 1), (6, 1)])),
            Err(Refusal::MalformedAppend)
        );
        assert_eq!(check(&append(3, &[(5, 1)])), Err(Refusal::MalformedAppend));
        assert_eq!(
            check(&append(3, &[(4, 2), (5, 1)])),
            Err(Refusal::MalformedAppend),
            "terms going backwards"
        );
    }
}
