//! Conversions between the core's types and the wire protocol.
//!
//! Decoding is total: a malformed message (an unknown entry kind, a config entry
//! without its membership) is an error, never a panic, and changes nothing.

use d_engine_proto::v1 as pb;

use crate::core::{
    Append, AppendResp, Body, ClientSession, Entry, EntryPayload, Membership, Message, SnapshotMeta,
};

/// Why a peer message could not be turned into a core message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed peer message: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> DecodeError {
    DecodeError::Malformed(what.into())
}

pub fn membership_to_pb(m: &Membership) -> pb::Membership {
    pb::Membership {
        voters: m.voters.iter().copied().collect(),
        voters_outgoing: m.voters_outgoing.iter().copied().collect(),
        learners: m.learners.iter().copied().collect(),
        addresses: m
            .addresses
            .iter()
            .map(|(&id, addr)| pb::MemberAddress {
                id,
                addr: addr.clone(),
            })
            .collect(),
    }
}

pub fn membership_from_pb(m: &pb::Membership) -> Result<Membership, DecodeError> {
    let total = m.voters.len() + m.voters_outgoing.len() + m.learners.len();
    if total > d_engine_proto::limits::MAX_MEMBERS * 3 {
        return Err(malformed(format!("membership lists {total} ids")));
    }
    if m.voters
        .iter()
        .chain(&m.voters_outgoing)
        .chain(&m.learners)
        .any(|&id| id == 0)
    {
        return Err(malformed("membership contains node id 0"));
    }
    let mut out = Membership {
        voters: m.voters.iter().copied().collect(),
        voters_outgoing: m.voters_outgoing.iter().copied().collect(),
        learners: m.learners.iter().copied().collect(),
        addresses: Default::default(),
    };
    let members = out.members();
    for a in &m.addresses {
        if !members.contains(&a.id) {
            return Err(malformed(format!(
                "address for node {} that is not a member",
                a.id
            )));
        }
        if a.addr.is_empty() || a.addr.len() > d_engine_proto::limits::MAX_ADDRESS_BYTES {
            return Err(malformed(format!(
                "address of node {} has {} bytes",
                a.id,
                a.addr.len()
            )));
        }
        if out.addresses.insert(a.id, a.addr.clone()).is_some() {
            return Err(malformed(format!("two addresses for node {}", a.id)));
        }
    }
    Ok(out)
}

pub fn snapshot_meta_to_pb(m: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        last_index: m.last_index,
        last_term: m.last_term,
        membership: Some(membership_to_pb(&m.membership)),
    }
}

pub fn snapshot_meta_from_pb(m: &pb::SnapshotMeta) -> Result<SnapshotMeta, DecodeError> {
    let membership = m
        .membership
        .as_ref()
        .ok_or_else(|| malformed("snapshot meta without membership"))?;
    Ok(SnapshotMeta {
        last_index: m.last_index,
        last_term: m.last_term,
        membership: membership_from_pb(membership)?,
    })
}

pub fn entry_to_pb(e: &Entry) -> pb::Entry {
    let mut out = pb::Entry {
        term: e.term,
        index: e.index,
        ..Default::default()
    };
    match &e.payload {
        EntryPayload::Noop => out.kind = pb::EntryKind::Noop as i32,
        EntryPayload::Command { session, data } => {
            out.kind = pb::EntryKind::Command as i32;
            out.data = data.clone();
            out.session = session.map(|s| pb::ClientSession {
                client_id: s.client_id,
                seq: s.seq,
                lane: s.lane,
            });
        }
        EntryPayload::Config(m) => {
            out.kind = pb::EntryKind::Config as i32;
            out.config = Some(membership_to_pb(m));
        }
    }
    out
}

pub fn entry_from_pb(e: pb::Entry) -> Result<Entry, DecodeError> {
    let payload = match pb::EntryKind::try_from(e.kind) {
        Ok(pb::EntryKind::Noop) => EntryPayload::Noop,
        Ok(pb::EntryKind::Command) => EntryPayload::Command {
            session: e.session.map(|s| ClientSession {
                client_id: s.client_id,
                seq: s.seq,
                lane: s.lane,
            }),
            data: e.data,
        },
        Ok(pb::EntryKind::Config) => {
            let m = e
                .config
                .as_ref()
                .ok_or_else(|| malformed(format!("config entry {} without membership", e.index)))?;
            EntryPayload::Config(membership_from_pb(m)?)
        }
        _ => {
            return Err(malformed(format!(
                "entry {} has unknown kind {}",
                e.index, e.kind
            )));
        }
    };
    if e.index == 0 {
        return Err(malformed("entry with index 0"));
    }
    Ok(Entry {
        term: e.term,
        index: e.index,
        payload,
    })
}

/// A vote or pre-vote request of the core, as the wire's VoteRequest.
pub fn vote_request_to_pb(header: pb::PeerHeader, body: &Body) -> Option<pb::VoteRequest> {
    match *body {
        Body::PreVote {
            last_log_index,
            last_log_term,
        } => Some(pb::VoteRequest {
            header: Some(header),
            last_log_index,
            last_log_term,
            pre_vote: true,
            leadership_transfer: false,
        }),
        Body::Vote {
            last_log_index,
            last_log_term,
            transfer,
        } => Some(pb::VoteRequest {
            header: Some(header),
            last_log_index,
            last_log_term,
            pre_vote: false,
            leadership_transfer: transfer,
        }),
        _ => None,
    }
}

pub fn vote_request_from_pb(r: &pb::VoteRequest, term: u64) -> Message {
    let body = if r.pre_vote {
        Body::PreVote {
            last_log_index: r.last_log_index,
            last_log_term: r.last_log_term,
        }
    } else {
        Body::Vote {
            last_log_index: r.last_log_index,
            last_log_term: r.last_log_term,
            transfer: r.leadership_transfer,
        }
    };
    Message { term, body }
}

pub fn vote_response_from_pb(r: &pb::VoteResponse, term: u64) -> Message {
    let body = if r.pre_vote {
        Body::PreVoteResp { granted: r.granted }
    } else {
        Body::VoteResp { granted: r.granted }
    };
    Message { term, body }
}

/// The body of a ReplicateRequest for an append or heartbeat of the core.
pub fn replicate_body_to_pb(body: &Body) -> Option<(u64, pb::replicate_request::Body)> {
    match body {
        Body::Append(a) => Some((
            a.id,
            pb::replicate_request::Body::Append(pb::AppendEntries {
                prev_log_index: a.prev_index,
                prev_log_term: a.prev_term,
                entries: a.entries.iter().map(entry_to_pb).collect(),
                leader_commit: a.leader_commit,
            }),
        )),
        Body::Heartbeat { commit, read_ctx } => Some((
            *read_ctx,
            pb::replicate_request::Body::Heartbeat(pb::Heartbeat {
                leader_commit: *commit,
                read_ctx: *read_ctx,
            }),
        )),
        _ => None,
    }
}

pub fn replicate_request_from_pb(
    msg_id: u64,
    body: pb::replicate_request::Body,
) -> Result<Body, DecodeError> {
    Ok(match body {
        pb::replicate_request::Body::Append(a) => {
            if a.entries.len() > d_engine_proto::limits::MAX_ENTRIES_PER_APPEND {
                return Err(malformed(format!(
                    "append with {} entries",
                    a.entries.len()
                )));
            }
            let entries = a
                .entries
                .into_iter()
                .map(entry_from_pb)
                .collect::<Result<Vec<_>, _>>()?;
            if entries
                .windows(2)
                .any(|w| w[0].index.checked_add(1) != Some(w[1].index))
            {
                return Err(malformed("append entries are not consecutive"));
            }
            if entries
                .first()
                .is_some_and(|e| a.prev_log_index.checked_add(1) != Some(e.index))
            {
                return Err(malformed("append entries do not follow prev_log_index"));
            }
            Body::Append(Append {
                id: msg_id,
                prev_index: a.prev_log_index,
                prev_term: a.prev_log_term,
                entries,
                leader_commit: a.leader_commit,
            })
        }
        pb::replicate_request::Body::Heartbeat(h) => Body::Heartbeat {
            commit: h.leader_commit,
            read_ctx: h.read_ctx,
        },
    })
}

/// The body of a ReplicateResponse for a response of the core.
pub fn replicate_response_to_pb(body: &Body) -> Option<(u64, pb::replicate_response::Body)> {
    match body {
        Body::AppendResp(r) => Some((
            r.id,
            pb::replicate_response::Body::Append(pb::AppendEntriesResponse {
                success: r.success,
                match_index: r.match_index,
                conflict_term: r.conflict_term.unwrap_or(0),
                conflict_index: r.conflict_index,
                last_log_index: 0,
                reject_index: r.reject_index,
            }),
        )),
        Body::HeartbeatResp { read_ctx } => Some((
            *read_ctx,
            pb::replicate_response::Body::Heartbeat(pb::HeartbeatResponse {
                read_ctx: *read_ctx,
                match_index: 0,
            }),
        )),
        _ => None,
    }
}

pub fn replicate_response_from_pb(msg_id: u64, body: pb::replicate_response::Body) -> Option<Body> {
    match body {
        pb::replicate_response::Body::Append(r) => Some(Body::AppendResp(AppendResp {
            id: msg_id,
            success: r.success,
            match_index: r.match_index,
            reject_index: r.reject_index,
            conflict_term: (r.conflict_term != 0).then_some(r.conflict_term),
            conflict_index: r.conflict_index,
        })),
        pb::replicate_response::Body::Heartbeat(h) => Some(Body::HeartbeatResp {
            read_ctx: h.read_ctx,
        }),
        pb::replicate_response::Body::Rejected(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                term: 2,
                index: 5,
                payload: EntryPayload::Noop,
            },
            Entry {
                term: 2,
                index: 6,
                payload: EntryPayload::Command {
                    session: Some(ClientSession {
                        client_id: 9,
                        seq: 3,
                        lane: 2,
                    }),
                    data: Bytes::from_static(b"cmd"),
                },
            },
            Entry {
                term: 2,
                index: 7,
                payload: EntryPayload::Config(Membership::with_voters([1, 2, 3])),
            },
        ]
    }

    #[test]
    fn entries_round_trip() {
        for e in entries() {
            assert_eq!(entry_from_pb(entry_to_pb(&e)).unwrap(), e);
        }
    }

    #[test]
    fn appends_and_responses_round_trip() {
        let append = Body::Append(Append {
            id: 11,
            prev_index: 4,
            prev_term: 2,
            entries: entries(),
            leader_commit: 4,
        });
        let (id, pb_body) = replicate_body_to_pb(&append).unwrap();
        assert_eq!(replicate_request_from_pb(id, pb_body).unwrap(), append);
        for resp in [
            Body::AppendResp(AppendResp {
                id: 3,
                success: true,
                match_index: 9,
                reject_index: 0,
                conflict_term: None,
                conflict_index: 0,
            }),
            Body::AppendResp(AppendResp {
                id: 4,
                success: false,
                match_index: 0,
                reject_index: 8,
                conflict_term: Some(3),
                conflict_index: 6,
            }),
            Body::HeartbeatResp { read_ctx: 77 },
        ] {
            let (id, pb_body) = replicate_response_to_pb(&resp).unwrap();
            assert_eq!(replicate_response_from_pb(id, pb_body).unwrap(), resp);
        }
    }

    #[test]
    fn malformed_entries_are_errors() {
        let mut e = entry_to_pb(&entries()[2]);
        e.config = None;
        assert!(entry_from_pb(e).is_err());
        let mut e = entry_to_pb(&entries()[0]);
        e.kind = 99;
        assert!(entry_from_pb(e).is_err());
        let gap = pb::AppendEntries {
            prev_log_index: 4,
            prev_log_term: 2,
            entries: vec![entry_to_pb(&entries()[0]), entry_to_pb(&entries()[2])],
            leader_commit: 0,
        };
        assert!(replicate_request_from_pb(1, pb::replicate_request::Body::Append(gap)).is_err());
    }
}
