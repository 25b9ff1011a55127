//! Every message of the protocol survives encode → decode unchanged, and malformed or
//! oversized bytes decode to an error, never a panic.

use std::collections::BTreeSet;
use std::fmt::Debug;

use bytes::Bytes;
use d_engine_proto::limits::{self, DecodeError};
use d_engine_proto::v1::*;
use d_engine_proto::{FILE_DESCRIPTOR_SET, decode_bounded};
use prost::Message;

/// A sample of one message kind: its encoding, and a check that decoding gives it back.
struct Sample {
    name: &'static str,
    encoded: Vec<u8>,
    decode: fn(&[u8]) -> Result<(), DecodeError>,
}

fn sample<M: Message + Default + PartialEq + Debug>(name: &'static str, m: M) -> Sample {
    let encoded = m.encode_to_vec();
    let back: M = decode_bounded(&encoded, usize::MAX).expect("round trip decodes");
    assert_eq!(back, m, "{name} changed in a round trip");
    Sample {
        name,
        encoded,
        decode: |b| decode_bounded::<M>(b, usize::MAX).map(|_| ()),
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn peer(term: u64) -> Option<PeerHeader> {
    Some(PeerHeader {
        cluster_id: 7,
        from: 2,
        term,
    })
}

fn membership() -> Option<Membership> {
    Some(Membership {
        voters: vec![1, 2, 3],
        voters_outgoing: vec![1, 2, 4],
        learners: vec![5],
        addresses: vec![MemberAddress {
            id: 5,
            addr: "127.0.0.1:9005".into(),
        }],
    })
}

fn req() -> Option<RequestHeader> {
    Some(RequestHeader {
        cluster_id: 7,
        session: Some(ClientSession {
            client_id: 99,
            seq: 12,
            lane: 3,
        }),
        timeout_ms: 250,
    })
}

fn resp() -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: 7,
        node_id: 1,
        term: 4,
        leader_id: 1,
        applied_index: 1234,
    })
}

fn not_leader() -> Option<ReplyError> {
    Some(ReplyError {
        code: ErrorCode::NotLeader as i32,
        message: "not the leader".into(),
        leader_id: 3,
        leader_addr: "127.0.0.1:7003".into(),
    })
}

fn entry(kind: EntryKind, index: u64) -> Entry {
    Entry {
        term: 4,
        index,
        kind: kind as i32,
        data: if kind == EntryKind::Command {
            b("put k v")
        } else {
            Bytes::new()
        },
        session: (kind == EntryKind::Command).then_some(ClientSession {
            client_id: 1,
            seq: index,
            lane: 0,
        }),
        config: if kind == EntryKind::Config {
            membership()
        } else {
            None
        },
    }
}

fn samples() -> Vec<Sample> {
    use compare_and_swap_request::Expected;
    use install_snapshot_response::Status;
    vec![
        sample("PeerHeader", peer(9).unwrap()),
        sample(
            "ClientSession",
            ClientSession {
                client_id: u64::MAX,
                seq: 1,
                lane: u32::MAX,
            },
        ),
        sample("Membership", membership().unwrap()),
        sample(
            "MemberAddress",
            MemberAddress {
                id: 4,
                addr: "[::1]:9004".into(),
            },
        ),
        sample("Entry", entry(EntryKind::Command, 10)),
        sample(
            "SnapshotMeta",
            SnapshotMeta {
                last_index: 100,
                last_term: 3,
                membership: membership(),
            },
        ),
        sample("ReplyError", not_leader().unwrap()),
        sample("RequestHeader", req().unwrap()),
        sample("ResponseHeader", resp().unwrap()),
        sample(
            "VoteRequest",
            VoteRequest {
                header: peer(5),
                last_log_index: 10,
                last_log_term: 4,
                pre_vote: true,
                leadership_transfer: true,
            },
        ),
        sample(
            "VoteResponse",
            VoteResponse {
                header: peer(5),
                granted: false,
                pre_vote: true,
                reject_reason: "log behind".into(),
            },
        ),
        sample(
            "AppendEntries",
            AppendEntries {
                prev_log_index: 9,
                prev_log_term: 3,
                entries: vec![
                    entry(EntryKind::Noop, 10),
                    entry(EntryKind::Command, 11),
                    entry(EntryKind::Config, 12),
                ],
                leader_commit: 9,
            },
        ),
        sample(
            "Heartbeat",
            Heartbeat {
                leader_commit: 12,
                read_ctx: 77,
            },
        ),
        sample(
            "ReplicateRequest",
            ReplicateRequest {
                header: peer(4),
                msg_id: 42,
                body: Some(replicate_request::Body::Append(AppendEntries {
                    prev_log_index: 0,
                    prev_log_term: 0,
                    entries: vec![entry(EntryKind::Command, 1)],
                    leader_commit: 0,
                })),
            },
        ),
        sample(
            "AppendEntriesResponse",
            AppendEntriesResponse {
                success: false,
                match_index: 0,
                conflict_term: 2,
                conflict_index: 5,
                last_log_index: 8,
                reject_index: 9,
            },
        ),
        sample(
            "HeartbeatResponse",
            HeartbeatResponse {
                read_ctx: 77,
                match_index: 12,
            },
        ),
        sample(
            "ReplicateResponse",
            ReplicateResponse {
                header: peer(4),
                msg_id: 43,
                body: Some(replicate_response::Body::Rejected(
                    PeerRejection::WrongCluster as i32,
                )),
            },
        ),
        sample(
            "SnapshotChunk",
            SnapshotChunk {
                header: peer(4),
                meta: Some(SnapshotMeta {
                    last_index: 100,
                    last_term: 3,
                    membership: membership(),
                }),
                snapshot_id: 5,
                offset: 4096,
                data: Bytes::from(vec![0xAB; 300]),
                chunk_crc32c: 0xDEAD_BEEF,
                last: true,
                total_bytes: 4396,
                total_crc32c: 0x1234_5678,
            },
        ),
        sample(
            "InstallSnapshotResponse",
            InstallSnapshotResponse {
                header: peer(4),
                status: Status::Incomplete as i32,
                next_offset: 4096,
                reason: String::new(),
            },
        ),
        sample("TimeoutNowRequest", TimeoutNowRequest { header: peer(4) }),
        sample(
            "TimeoutNowResponse",
            TimeoutNowResponse {
                header: peer(4),
                accepted: true,
            },
        ),
        sample(
            "KeyValue",
            KeyValue {
                key: b("k"),
                value: b("v"),
            },
        ),
        sample(
            "PutRequest",
            PutRequest {
                header: req(),
                key: b("k"),
                value: Bytes::from(vec![7; 256]),
            },
        ),
        sample(
            "PutResponse",
            PutResponse {
                header: resp(),
                error: not_leader(),
            },
        ),
        sample(
            "GetRequest",
            GetRequest {
                header: req(),
                key: b("k"),
                consistency: ReadConsistency::Lease as i32,
            },
        ),
        sample(
            "GetResponse",
            GetResponse {
                header: resp(),
                error: None,
                found: true,
                value: b("v"),
            },
        ),
        sample(
            "DeleteRequest",
            DeleteRequest {
                header: req(),
                key: b("k"),
            },
        ),
        sample(
            "DeleteResponse",
            DeleteResponse {
                header: resp(),
                error: None,
                existed: true,
            },
        ),
        sample(
            "CompareAndSwapRequest",
            CompareAndSwapRequest {
                header: req(),
                key: b("k"),
                expected: Some(Expected::ExpectedValue(b("old"))),
                new_value: b("new"),
            },
        ),
        sample(
            "CompareAndSwapResponse",
            CompareAndSwapResponse {
                header: resp(),
                error: None,
                succeeded: false,
                current_found: true,
                current_value: b("other"),
            },
        ),
        sample(
            "BatchRequest",
            BatchRequest {
                ops: vec![
                    BatchOp {
                        op: Some(batch_op::Op::Put(PutRequest {
                            header: req(),
                            key: b("k"),
                            value: b("v"),
                        })),
                    },
                    BatchOp {
                        op: Some(batch_op::Op::Get(GetRequest {
                            header: req(),
                            key: b("k"),
                            consistency: ReadConsistency::Lease as i32,
                        })),
                    },
                    BatchOp {
                        op: Some(batch_op::Op::Delete(DeleteRequest {
                            header: req(),
                            key: b("gone"),
                        })),
                    },
                    BatchOp {
                        op: Some(batch_op::Op::CompareAndSwap(CompareAndSwapRequest {
                            header: req(),
                            key: b("k"),
                            expected: Some(Expected::ExpectAbsent(true)),
                            new_value: b("first"),
                        })),
                    },
                    BatchOp { op: None },
                ],
            },
        ),
        sample(
            "BatchOp",
            BatchOp {
                op: Some(batch_op::Op::Get(GetRequest {
                    header: None,
                    key: b("k"),
                    consistency: 0,
                })),
            },
        ),
        sample(
            "BatchResponse",
            BatchResponse {
                error: None,
                results: vec![
                    BatchResult {
                        result: Some(batch_result::Result::Put(PutResponse {
                            header: resp(),
                            error: None,
                        })),
                    },
                    BatchResult {
                        result: Some(batch_result::Result::Get(GetResponse {
                            header: resp(),
                            error: None,
                            found: true,
                            value: b("v"),
                        })),
                    },
                    BatchResult {
                        result: Some(batch_result::Result::Delete(DeleteResponse {
                            header: resp(),
                            error: None,
                            existed: false,
                        })),
                    },
                    BatchResult {
                        result: Some(batch_result::Result::CompareAndSwap(
                            CompareAndSwapResponse {
                                header: resp(),
                                error: None,
                                succeeded: true,
                                current_found: false,
                                current_value: Bytes::new(),
                            },
                        )),
                    },
                ],
            },
        ),
        sample(
            "BatchResult",
            BatchResult {
                result: Some(batch_result::Result::Put(PutResponse {
                    header: None,
                    error: Some(ReplyError {
                        code: ErrorCode::NotLeader as i32,
                        message: "not the leader".into(),
                        leader_id: 2,
                        leader_addr: "127.0.0.1:9".into(),
                    }),
                })),
            },
        ),
        sample(
            "ScanRequest",
            ScanRequest {
                header: req(),
                start: Bytes::new(),
                end: Bytes::new(),
                prefix: b("user/"),
                limit: 100,
                consistency: ReadConsistency::Serializable as i32,
            },
        ),
        sample(
            "ScanResponse",
            ScanResponse {
                header: resp(),
                error: None,
                items: vec![
                    KeyValue {
                        key: b("user/1"),
                        value: b("a"),
                    },
                    KeyValue {
                        key: b("user/2"),
                        value: b("b"),
                    },
                ],
                more: true,
                next_key: b("user/3"),
            },
        ),
        sample(
            "NodeAddress",
            NodeAddress {
                id: 4,
                addr: "127.0.0.1:7004".into(),
            },
        ),
        sample(
            "AddLearnerRequest",
            AddLearnerRequest {
                header: req(),
                learners: vec![
                    NodeAddress {
                        id: 4,
                        addr: "127.0.0.1:7004".into(),
                    },
                    NodeAddress {
                        id: 5,
                        addr: "127.0.0.1:7005".into(),
                    },
                ],
            },
        ),
        sample(
            "PromoteRequest",
            PromoteRequest {
                header: req(),
                node_ids: vec![4, 5],
            },
        ),
        sample(
            "RemoveNodeRequest",
            RemoveNodeRequest {
                header: req(),
                node_ids: vec![1],
            },
        ),
        sample(
            "TransferLeaderRequest",
            TransferLeaderRequest {
                header: req(),
                target: 2,
            },
        ),
        sample("SnapshotNowRequest", SnapshotNowRequest { header: req() }),
        sample(
            "AdminResponse",
            AdminResponse {
                header: resp(),
                error: None,
                index: 57,
            },
        ),
        sample("StatusRequest", StatusRequest { header: req() }),
        sample(
            "PeerProgress",
            PeerProgress {
                id: 2,
                addr: "127.0.0.1:7002".into(),
                voter: true,
                state: ProgressState::Replicate as i32,
                match_index: 1200,
                next_index: 1201,
                lag: 34,
                last_contact_ms: 12,
            },
        ),
        sample(
            "StatusResponse",
            StatusResponse {
                header: resp(),
                error: None,
                role: Role::Leader as i32,
                commit_index: 1234,
                applied_index: 1234,
                first_index: 1000,
                last_index: 1234,
                snapshot_index: 999,
                membership: membership(),
                peers: vec![PeerProgress {
                    id: 3,
                    voter: false,
                    state: ProgressState::Snapshot as i32,
                    ..Default::default()
                }],
                addr: "127.0.0.1:7001".into(),
                version: "0.1.0".into(),
                no_space: false,
            },
        ),
    ]
}

/// Every message of d-engine's own protocol, with its nested messages.
fn declared_messages() -> BTreeSet<String> {
    let fds = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    fn walk(prefix: &str, msgs: &[prost_types::DescriptorProto], out: &mut BTreeSet<String>) {
        for m in msgs {
            let name = format!("{prefix}{}", m.name());
            walk(&format!("{name}."), &m.nested_type, out);
            out.insert(name);
        }
    }
    let mut out = BTreeSet::new();
    for file in fds.file.iter().filter(|f| f.package() == "dengine.v1") {
        walk("", &file.message_type, &mut out);
    }
    out
}

#[test]
fn every_declared_message_has_a_round_trip_sample() {
    let sampled: BTreeSet<String> = samples().iter().map(|s| s.name.to_string()).collect();
    let declared = declared_messages();
    let missing: Vec<_> = declared.difference(&sampled).collect();
    assert!(
        missing.is_empty(),
        "messages without a round-trip sample: {missing:?}"
    );
    let unknown: Vec<_> = sampled.difference(&declared).collect();
    assert!(
        unknown.is_empty(),
        "samples of undeclared messages: {unknown:?}"
    );
}

#[test]
fn every_oneof_arm_round_trips() {
    use compare_and_swap_request::Expected;
    for body in [
        replicate_request::Body::Append(AppendEntries::default()),
        replicate_request::Body::Heartbeat(Heartbeat {
            leader_commit: 3,
            read_ctx: 0,
        }),
    ] {
        sample(
            "ReplicateRequest",
            ReplicateRequest {
                header: peer(1),
                msg_id: 1,
                body: Some(body),
            },
        );
    }
    for body in [
        replicate_response::Body::Append(AppendEntriesResponse {
            success: true,
            match_index: 5,
            ..Default::default()
        }),
        replicate_response::Body::Heartbeat(HeartbeatResponse {
            read_ctx: 9,
            match_index: 5,
        }),
        replicate_response::Body::Rejected(PeerRejection::UnknownSender as i32),
    ] {
        sample(
            "ReplicateResponse",
            ReplicateResponse {
                header: peer(1),
                msg_id: 1,
                body: Some(body),
            },
        );
    }
    for expected in [
        Expected::ExpectedValue(b("x")),
        Expected::ExpectAbsent(true),
    ] {
        sample(
            "CompareAndSwapRequest",
            CompareAndSwapRequest {
                header: req(),
                key: b("k"),
                expected: Some(expected),
                new_value: b("y"),
            },
        );
    }
    for kind in [EntryKind::Noop, EntryKind::Command, EntryKind::Config] {
        sample("Entry", entry(kind, 3));
    }
}

#[test]
fn truncated_length_delimited_fields_are_errors() {
    for s in samples() {
        // Cutting inside a length-delimited field (or a varint) must fail; cutting at a
        // field boundary may legally decode to a shorter message. Neither may panic.
        for cut in 0..s.encoded.len() {
            let _ = (s.decode)(&s.encoded[..cut]);
        }
        if s.encoded.len() >= 2 {
            // A length prefix promising more bytes than remain.
            let mut bad = s.encoded.clone();
            bad.extend_from_slice(&[0x0A, 0x7F]);
            assert!(
                matches!((s.decode)(&bad), Err(DecodeError::Malformed(_))),
                "{} accepted a field running past the end",
                s.name
            );
        }
    }
}

#[test]
fn invalid_wire_types_and_varints_are_errors() {
    // Wire types 6 and 7 do not exist.
    let bad_wire_type = [0x0E, 0x01];
    // A varint of eleven bytes overflows 64 bits.
    let long_varint = [
        0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
    ];
    // Field number 0 is reserved.
    let field_zero = [0x00, 0x01];
    for s in samples() {
        for bytes in [&bad_wire_type[..], &long_varint[..], &field_zero[..]] {
            assert!(
                (s.decode)(bytes).is_err(),
                "{} accepted {bytes:02x?}",
                s.name
            );
        }
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let value = Bytes::from(vec![
        1u8;
        limits::MAX_VALUE_BYTES
            + limits::MAX_KEY_BYTES
            + 64 * 1024
    ]);
    let put = PutRequest {
        header: req(),
        key: b("k"),
        value,
    }
    .encode_to_vec();
    let err = decode_bounded::<PutRequest>(&put, limits::MAX_CLIENT_MESSAGE_BYTES).unwrap_err();
    assert!(
        matches!(err, DecodeError::TooLarge { max, .. } if max == limits::MAX_CLIENT_MESSAGE_BYTES)
    );
    assert!(err.to_string().contains("exceeds the limit"));
    // Exactly at the bound is fine.
    let small = PutRequest {
        header: req(),
        key: b("k"),
        value: b("v"),
    }
    .encode_to_vec();
    assert!(decode_bounded::<PutRequest>(&small, small.len()).is_ok());
    assert!(decode_bounded::<PutRequest>(&small, small.len() - 1).is_err());
}

#[test]
fn random_mutations_never_panic() {
    // A small xorshift generator: the test is deterministic and needs no crate.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let samples = samples();
    let mut errors = 0usize;
    for round in 0..20_000 {
        let s = &samples[round % samples.len()];
        let mut bytes = s.encoded.clone();
        if bytes.is_empty() {
            bytes.push(0);
        }
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % bytes.len();
            bytes[i] = next() as u8;
        }
        // Decode the mutated bytes as every message kind: none may panic.
        for t in &samples {
            if (t.decode)(&bytes).is_err() {
                errors += 1;
            }
        }
    }
    // The mutations do produce invalid input (otherwise this test would prove nothing).
    assert!(
        errors > 10_000,
        "only {errors} mutated inputs were rejected"
    );
}

#[test]
fn etcd_subset_round_trips() {
    use d_engine_proto::etcd::etcdserverpb::{
        Compare, PutRequest as EtcdPut, RequestOp, TxnRequest, compare, request_op,
    };
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            key: b("k"),
            target_union: Some(compare::TargetUnion::Value(b("old"))),
            range_end: Bytes::new(),
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(EtcdPut {
                key: b("k"),
                value: b("new"),
                lease: 0,
                prev_kv: false,
            })),
        }],
        failure: vec![],
    };
    sample("TxnRequest", txn);
}

/// The watch messages carry etcd's field numbers: bytes written by hand from
/// them decode to what they say, and encoding gives the same bytes back.
#[test]
fn etcd_watch_messages_use_etcds_field_numbers() {
    use d_engine_proto::etcd::etcdserverpb::{
        WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
    };
    use d_engine_proto::etcd::mvccpb::{Event, KeyValue, event};
    // create_request (1) { key (1) = "a", start_revision (3) = 5, prev_kv (6) = true }
    let wire = [0x0a, 0x07, 0x0a, 0x01, b'a', 0x18, 0x05, 0x30, 0x01];
    let req = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b("a"),
                start_revision: 5,
                prev_kv: true,
                ..Default::default()
            },
        )),
    };
    assert_eq!(req.encode_to_vec(), wire);
    // watch_id (2) = 3, events (11) [{ type (1) = DELETE, kv (2) { key (1) = "k", mod_revision (3) = 9 } }]
    let wire = [
        0x10, 0x03, 0x5a, 0x09, 0x08, 0x01, 0x12, 0x05, 0x0a, 0x01, b'k', 0x18, 0x09,
    ];
    let resp = WatchResponse::decode(&wire[..]).expect("decodes");
    assert_eq!(resp.watch_id, 3);
    assert_eq!(
        resp.events,
        vec![Event {
            r#type: event::EventType::Delete as i32,
            kv: Some(KeyValue {
                key: b("k"),
                mod_revision: 9,
                ..Default::default()
            }),
            prev_kv: None,
        }]
    );
    assert_eq!(resp.encode_to_vec(), wire);
}
