//! Messages exchanged between cores. The network layer converts them to the wire form;
//! snapshot data travels beside `InstallSnapshot` (the core only sees the meta).

use super::types::{Entry, LogIndex, SnapshotMeta, Term};

/// One message. `term` is the sender's current term, except for pre-votes where it is
/// the term the sender would campaign in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub term: Term,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    PreVote {
        last_log_index: LogIndex,
        last_log_term: Term,
    },
    PreVoteResp {
        granted: bool,
    },
    Vote {
        last_log_index: LogIndex,
        last_log_term: Term,
        /// Sent after a `TimeoutNow`: voters ignore leader stickiness.
        transfer: bool,
    },
    VoteResp {
        granted: bool,
    },
    Append(Append),
    AppendResp(AppendResp),
    /// Leader liveness plus a read-round id; `commit` is capped at the follower's match.
    Heartbeat {
        commit: LogIndex,
        read_ctx: u64,
    },
    HeartbeatResp {
        read_ctx: u64,
    },
    InstallSnapshot {
        meta: SnapshotMeta,
    },
    /// Leadership transfer: campaign now, ignoring the election timer.
    TimeoutNow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    /// Leader-assigned id, echoed in the response (pipelining diagnostics).
    pub id: u64,
    pub prev_index: LogIndex,
    pub prev_term: Term,
    pub entries: Vec<Entry>,
    pub leader_commit: LogIndex,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendResp {
    pub id: u64,
    pub success: bool,
    /// On success: the follower durably holds the leader's log up to here.
    pub match_index: LogIndex,
    /// On rejection: the `prev_index` of the rejected request.
    pub reject_index: LogIndex,
    /// On rejection: the follower's term at `reject_index` (None if its log is shorter).
    pub conflict_term: Option<Term>,
    /// On rejection: where the leader should retry (first index of `conflict_term`, or
    /// the follower's last index + 1).
    pub conflict_index: LogIndex,
}

impl Body {
    pub fn name(&self) -> &'static str {
        match self {
            Body::PreVote { .. } => "PreVote",
            Body::PreVoteResp { .. } => "PreVoteResp",
            Body::Vote { .. } => "Vote",
            Body::VoteResp { .. } => "VoteResp",
            Body::Append(_) => "Append",
            Body::AppendResp(_) => "AppendResp",
            Body::Heartbeat { .. } => "Heartbeat",
            Body::HeartbeatResp { .. } => "HeartbeatResp",
            Body::InstallSnapshot { .. } => "InstallSnapshot",
            Body::TimeoutNow => "TimeoutNow",
        }
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} t{}", self.body.name(), self.term)?;
        match &self.body {
            Body::PreVote {
                last_log_index,
                last_log_term,
            }
            | Body::Vote {
                last_log_index,
                last_log_term,
                ..
            } => write!(f, " last={last_log_index}/{last_log_term}"),
            Body::PreVoteResp { granted } | Body::VoteResp { granted } => {
                write!(f, " {}", if *granted { "granted" } else { "rejected" })
            }
            Body::Append(a) => write!(
                f,
                " prev={}/{} n={} commit={}",
                a.prev_index,
                a.prev_term,
                a.entries.len(),
                a.leader_commit
            ),
            Body::AppendResp(r) if r.success => write!(f, " ok match={}", r.match_index),
            Body::AppendResp(r) => write!(
                f,
                " reject at={} hint={}/{:?}",
                r.reject_index, r.conflict_index, r.conflict_term
            ),
            Body::Heartbeat { commit, read_ctx } => write!(f, " commit={commit} ctx={read_ctx}"),
            Body::HeartbeatResp { read_ctx } => write!(f, " ctx={read_ctx}"),
            Body::InstallSnapshot { meta } => {
                write!(f, " snap={}/{}", meta.last_index, meta.last_term)
            }
            Body::TimeoutNow => Ok(()),
        }
    }
}
