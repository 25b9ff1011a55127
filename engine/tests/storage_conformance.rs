//! One conformance suite for every storage backend: each generic test below runs
//! against the memory, file and (with feature `rocksdb`) RocksDB implementations.

mod storage;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use d_engine::core::types::{
    ClientSession, Entry, EntryPayload, HardState, Membership, SnapshotMeta,
};
use d_engine::storage::{KvCommand, KvResult, StateMachine, StorageEngine, StorageError, recover};
use storage::*;

fn append(e: &dyn StorageEngine, es: Vec<Entry>) -> u64 {
    e.append(es, None).wait().expect("append")
}

// ---------------------------------------------------------------- log engines

fn empty_log<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    assert_eq!(e.first_index(), 1);
    assert_eq!(e.last_index(), 0);
    assert_eq!(e.term(0).unwrap(), 0);
    assert!(matches!(e.term(1), Err(StorageError::Unavailable { .. })));
    assert_eq!(e.entries(1, 1).unwrap(), vec![]);
    assert!(matches!(
        e.entries(1, 2),
        Err(StorageError::Unavailable { .. })
    ));
    assert_eq!(e.hard_state(), HardState::default());
    assert_eq!(e.snapshot_meta(), SnapshotMeta::default());
    drop(e);
    let e = b.open();
    assert_eq!((e.first_index(), e.last_index()), (1, 0));
}

fn append_and_read_ranges<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    assert_eq!(append(&e, ents(1, 3, 1)), 3);
    assert_eq!(append(&e, ents(4, 10, 2)), 10);
    assert_eq!(
        e.entries(1, 11).unwrap(),
        [ents(1, 3, 1), ents(4, 10, 2)].concat()
    );
    assert_eq!(e.entries(3, 5).unwrap(), vec![ent(3, 1), ent(4, 2)]);
    assert_eq!(e.entries(10, 11).unwrap(), vec![ent(10, 2)]);
    assert_eq!(e.term(3).unwrap(), 1);
    assert_eq!(e.term(4).unwrap(), 2);
    assert!(matches!(
        e.entries(0, 2),
        Err(StorageError::Compacted { .. })
    ));
    assert!(matches!(
        e.entries(5, 12),
        Err(StorageError::Unavailable { .. })
    ));
    assert!(matches!(e.term(11), Err(StorageError::Unavailable { .. })));
}

fn every_payload_kind_round_trips<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    let es = vec![
        Entry {
            term: 1,
            index: 1,
            payload: EntryPayload::Noop,
        },
        Entry {
            term: 1,
            index: 2,
            payload: EntryPayload::Config(Membership {
                voters: [1, 2, 3].into(),
                voters_outgoing: [1, 2].into(),
                learners: [9].into(),
                addresses: [(9, "127.0.0.1:9009".to_string())].into(),
            }),
        },
        Entry {
            term: 1,
            index: 3,
            payload: EntryPayload::Command {
                session: Some(ClientSession {
                    client_id: 77,
                    seq: 5,
                    lane: 3,
                }),
                data: Bytes::from(vec![0u8; 3000]),
            },
        },
        Entry {
            term: 2,
            index: 4,
            payload: EntryPayload::Command {
                session: None,
                data: Bytes::new(),
            },
        },
    ];
    append(&e, es.clone());
    assert_eq!(e.entries(1, 5).unwrap(), es);
    drop(e);
    assert_eq!(b.open().entries(1, 5).unwrap(), es);
}

fn invalid_appends_write_nothing<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    append(&e, ents(1, 5, 2));
    let gap = e.append(ents(7, 8, 2), None).wait();
    assert!(
        matches!(gap, Err(StorageError::InvalidRequest(_))),
        "{gap:?}"
    );
    let not_consecutive = e.append(vec![ent(6, 2), ent(8, 2)], None).wait();
    assert!(matches!(
        not_consecutive,
        Err(StorageError::InvalidRequest(_))
    ));
    let term_goes_down = e.append(vec![ent(6, 3), ent(7, 2)], None).wait();
    assert!(matches!(
        term_goes_down,
        Err(StorageError::InvalidRequest(_))
    ));
    let below_previous = e.append(vec![ent(6, 1)], None).wait();
    assert!(matches!(
        below_previous,
        Err(StorageError::InvalidRequest(_))
    ));
    assert_eq!(e.last_index(), 5);
    // A refused overwrite does not truncate anything either (regression: the suffix
    // was cut before the term check refused the request).
    let bad_overwrite = e.append(vec![ent(3, 1)], None).wait();
    assert!(matches!(
        bad_overwrite,
        Err(StorageError::InvalidRequest(_))
    ));
    assert_eq!(e.entries(1, 6).unwrap(), ents(1, 5, 2));
    // The engine still works after refusing requests.
    assert_eq!(append(&e, ents(6, 6, 2)), 6);
    drop(e);
    assert_eq!(b.open().entries(1, 7).unwrap(), ents(1, 6, 2));
}

fn append_overwrites_conflicting_suffix<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    append(&e, ents(1, 10, 1));
    assert_eq!(append(&e, ents(6, 8, 2)), 8);
    let want = [ents(1, 5, 1), ents(6, 8, 2)].concat();
    assert_eq!(e.entries(1, 9).unwrap(), want);
    assert!(matches!(e.term(9), Err(StorageError::Unavailable { .. })));
    drop(e);
    let e = b.open();
    assert_eq!(e.last_index(), 8);
    assert_eq!(e.entries(1, 9).unwrap(), want);
    // Overwrite the very first entry.
    append(&e, ents(1, 2, 3));
    assert_eq!(e.entries(1, 3).unwrap(), ents(1, 2, 3));
    assert_eq!(e.last_index(), 2);
}

fn truncate_suffix<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    append(&e, ents(1, 10, 1));
    e.truncate_suffix(100).wait().unwrap();
    assert_eq!(e.last_index(), 10);
    e.truncate_suffix(5).wait().unwrap();
    assert_eq!(e.last_index(), 4);
    assert_eq!(e.entries(1, 5).unwrap(), ents(1, 4, 1));
    assert!(matches!(
        e.entries(1, 6),
        Err(StorageError::Unavailable { .. })
    ));
    append(&e, ents(5, 6, 2));
    drop(e);
    let e = b.open();
    assert_eq!(
        e.entries(1, 7).unwrap(),
        [ents(1, 4, 1), ents(5, 6, 2)].concat()
    );
    e.truncate_suffix(1).wait().unwrap();
    assert_eq!((e.first_index(), e.last_index()), (1, 0));
    drop(e);
    let e = b.open();
    assert_eq!(e.last_index(), 0);
    append(&e, ents(1, 1, 4));
    assert_eq!(e.entries(1, 2).unwrap(), ents(1, 1, 4));
}

fn purge_prefix<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    append(&e, ents(1, 10, 1));
    e.purge_prefix(meta(5, 1)).wait().unwrap();
    assert_eq!((e.first_index(), e.last_index()), (6, 10));
    assert_eq!(e.term(5).unwrap(), 1);
    assert!(matches!(
        e.term(4),
        Err(StorageError::Compacted { first: 6, .. })
    ));
    assert!(matches!(
        e.entries(5, 7),
        Err(StorageError::Compacted { .. })
    ));
    assert_eq!(e.entries(6, 11).unwrap(), ents(6, 10, 1));
    // Purging to an older point changes nothing.
    e.purge_prefix(meta(3, 1)).wait().unwrap();
    assert_eq!(e.first_index(), 6);
    drop(e);
    let e = b.open();
    assert_eq!(e.snapshot_meta(), meta(5, 1));
    assert_eq!((e.first_index(), e.last_index()), (6, 10));
    assert_eq!(e.entries(6, 11).unwrap(), ents(6, 10, 1));
}

fn purge_everything_then_continue<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    append(&e, ents(1, 10, 1));
    e.purge_prefix(meta(10, 1)).wait().unwrap();
    assert_eq!((e.first_index(), e.last_index()), (11, 10));
    assert_eq!(e.term(10).unwrap(), 1);
    assert_eq!(e.entries(11, 11).unwrap(), vec![]);
    drop(e);
    let e = b.open();
    assert_eq!((e.first_index(), e.last_index()), (11, 10));
    append(&e, ents(11, 12, 2));
    // A snapshot from a leader beyond the log: everything goes, the log restarts after it.
    e.purge_prefix(meta(20, 3)).wait().unwrap();
    assert_eq!((e.first_index(), e.last_index()), (21, 20));
    assert_eq!(e.term(20).unwrap(), 3);
    let gap = e.append(ents(22, 22, 3), None).wait();
    assert!(matches!(gap, Err(StorageError::InvalidRequest(_))));
    let inside = e.append(ents(20, 20, 3), None).wait();
    assert!(matches!(inside, Err(StorageError::InvalidRequest(_))));
    append(&e, ents(21, 22, 3));
    drop(e);
    let e = b.open();
    assert_eq!((e.first_index(), e.last_index()), (21, 22));
    assert_eq!(e.entries(21, 23).unwrap(), ents(21, 22, 3));
}

fn purge_with_other_term_discards_the_log<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    append(&e, ents(1, 10, 1));
    // The leader's snapshot at 7 has term 2: our entries 1..=10 of term 1 conflict.
    e.purge_prefix(meta(7, 2)).wait().unwrap();
    assert_eq!((e.first_index(), e.last_index()), (8, 7));
    assert_eq!(e.term(7).unwrap(), 2);
    drop(e);
    let e = b.open();
    assert_eq!((e.first_index(), e.last_index()), (8, 7));
    append(&e, ents(8, 9, 2));
    assert_eq!(e.entries(8, 10).unwrap(), ents(8, 9, 2));
}

fn truncate_after_purge<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    append(&e, ents(1, 10, 1));
    e.purge_prefix(meta(5, 1)).wait().unwrap();
    e.truncate_suffix(8).wait().unwrap();
    assert_eq!(e.last_index(), 7);
    let into_snapshot = e.truncate_suffix(5).wait();
    assert!(matches!(
        into_snapshot,
        Err(StorageError::InvalidRequest(_))
    ));
    e.truncate_suffix(6).wait().unwrap();
    assert_eq!((e.first_index(), e.last_index()), (6, 5));
    drop(e);
    let e = b.open();
    assert_eq!((e.first_index(), e.last_index()), (6, 5));
    append(&e, ents(6, 6, 2));
    assert_eq!(e.entries(6, 7).unwrap(), ents(6, 6, 2));
}

fn hard_state_persists<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    let hs = HardState {
        term: 3,
        voted_for: Some(2),
    };
    e.save_hard_state(hs).wait().unwrap();
    assert_eq!(e.hard_state(), hs);
    let hs2 = HardState {
        term: 4,
        voted_for: None,
    };
    e.append(ents(1, 2, 4), Some(hs2)).wait().unwrap();
    assert_eq!(e.hard_state(), hs2);
    e.purge_prefix(meta(1, 4)).wait().unwrap();
    drop(e);
    let e = b.open();
    assert_eq!(e.hard_state(), hs2);
    let r = recover(&e).unwrap();
    assert_eq!(r.hard_state, hs2);
    assert_eq!(r.snapshot, meta(1, 4));
    assert_eq!(r.entries, ents(2, 2, 4));
}

fn callbacks_arrive_in_order<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for i in 1..=200u64 {
        let seen = seen.clone();
        e.append_with(
            vec![ent(i, 1)],
            None,
            Box::new(move |r| seen.lock().unwrap().push(r.unwrap())),
        );
    }
    // A refused request is reported after the requests queued before it.
    let s2 = seen.clone();
    e.append_with(
        vec![ent(500, 1)],
        None,
        Box::new(move |r| {
            assert!(r.is_err());
            s2.lock().unwrap().push(0);
        }),
    );
    // A truncation is ordered after the appends queued before it.
    e.truncate_suffix(150).wait().unwrap();
    let mut want: Vec<u64> = (1..=200).collect();
    want.push(0);
    assert_eq!(*seen.lock().unwrap(), want);
    assert_eq!(e.last_index(), 149);
}

fn many_entries_across_segments<B: EngineBackend>(b: &mut B) {
    let e = b.open();
    let big = |i: u64| Entry {
        term: 1 + i / 100,
        index: i,
        payload: EntryPayload::Command {
            session: None,
            data: Bytes::from(vec![(i % 251) as u8; 100 + (i as usize * 37) % 3000]),
        },
    };
    let all: Vec<Entry> = (1..=600).map(big).collect();
    for chunk in all.chunks(7) {
        append(&e, chunk.to_vec());
    }
    assert_eq!(e.entries(1, 601).unwrap(), all);
    e.purge_prefix(meta(300, all[299].term)).wait().unwrap();
    e.truncate_suffix(500).wait().unwrap();
    drop(e);
    let e = b.open();
    assert_eq!(e.entries(301, 500).unwrap(), all[300..499].to_vec());
    assert_eq!(e.last_index(), 499);
}

/// Random operations (with restarts) checked against the reference model.
fn random_ops_match_the_model<B: EngineBackend>(b: &mut B) {
    let seed = 0x5eed_0000_0000_0001u64;
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let mut e = b.open();
    for step in 0..400 {
        let ctx = format!("seed {seed:#x} step {step}");
        match rng.below(10) {
            0..=5 => {
                let last = model.last_index();
                let first = model.snapshot.last_index + 1;
                let back = rng.below(4).min(last + 1 - first);
                let start = last + 1 - back;
                let term = model.last_term().max(model.term(start - 1).unwrap_or(0)) + rng.below(2);
                let es = ents(start, start + rng.below(20), term);
                e.append(es.clone(), None)
                    .wait()
                    .unwrap_or_else(|err| panic!("{ctx}: {err}"));
                model.append(&es);
            }
            6 => {
                let from =
                    model.snapshot.last_index + 1 + rng.below(model.entries.len() as u64 + 2);
                e.truncate_suffix(from).wait().unwrap();
                model.truncate(from);
            }
            7 => {
                let upto = model.snapshot.last_index + rng.below(model.entries.len() as u64 + 3);
                let term = if rng.below(4) == 0 {
                    model.last_term() + 1
                } else {
                    model.term(upto).unwrap_or(model.last_term())
                };
                let m = meta(upto, term);
                e.purge_prefix(m.clone()).wait().unwrap();
                model.purge(m);
            }
            8 => {
                let hs = HardState {
                    term: rng.below(100),
                    voted_for: Some(rng.below(5) + 1),
                };
                e.save_hard_state(hs).wait().unwrap();
                model.hard_state = hs;
            }
            _ => {
                drop(e);
                e = b.open();
            }
        }
        model.check(&e, &ctx);
    }
}

macro_rules! engine_suite {
    ($modname:ident, $backend:expr, $($(#[$attr:meta])* $test:ident),* $(,)?) => {
        mod $modname {
            use super::*;
            $(
                $(#[$attr])*
                #[test]
                fn $test() {
                    let mut b = $backend;
                    super::$test(&mut b);
                }
            )*
        }
    };
}

macro_rules! all_engine_tests {
    ($modname:ident, $backend:expr) => {
        engine_suite!(
            $modname,
            $backend,
            empty_log,
            append_and_read_ranges,
            every_payload_kind_round_trips,
            invalid_appends_write_nothing,
            append_overwrites_conflicting_suffix,
            truncate_suffix,
            purge_prefix,
            purge_everything_then_continue,
            purge_with_other_term_discards_the_log,
            truncate_after_purge,
            hard_state_persists,
            callbacks_arrive_in_order,
            many_entries_across_segments,
            random_ops_match_the_model,
        );
    };
}

all_engine_tests!(mem_engine, MemBackend::new());
all_engine_tests!(file_engine, FileBackend::new());
#[cfg(feature = "rocksdb")]
all_engine_tests!(rocksdb_engine, storage::rocks::RocksBackend::new());

// ------------------------------------------------------------- state machines

fn cmd(index: u64, session: Option<(u64, u64)>, c: KvCommand) -> Entry {
    Entry {
        term: 1 + index / 50,
        index,
        payload: EntryPayload::Command {
            session: session.map(|(client_id, seq)| ClientSession {
                client_id,
                seq,
                lane: 0,
            }),
            data: c.encode(),
        },
    }
}

fn put(k: &str, v: &str) -> KvCommand {
    KvCommand::Put {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
    }
}

/// A workload of puts, deletes, CASes, sessions, no-ops and a config change.
fn workload(n: u64) -> Vec<Entry> {
    (1..=n)
        .map(|i| match i % 7 {
            0 => Entry {
                term: 1 + i / 50,
                index: i,
                payload: EntryPayload::Noop,
            },
            1 => cmd(
                i,
                Some((i % 5, i)),
                put(&format!("key{:03}", i % 40), &format!("v{i}")),
            ),
            2 => cmd(
                i,
                None,
                KvCommand::Delete {
                    key: Bytes::from(format!("key{:03}", (i * 3) % 40)),
                },
            ),
            3 => cmd(
                i,
                Some((9, i)),
                KvCommand::CompareAndSwap {
                    key: Bytes::from(format!("cas{}", i % 3)),
                    expected: None,
                    new: Bytes::from(format!("c{i}")),
                },
            ),
            4 if i == 11 => Entry {
                term: 1,
                index: i,
                payload: EntryPayload::Config(Membership::with_voters([1, 2, 3])),
            },
            _ => cmd(i, None, put(&format!("p/{}", i % 13), &format!("w{i}"))),
        })
        .collect()
}

fn dump(sm: &dyn StateMachine) -> Vec<(Bytes, Bytes)> {
    sm.range(b"", None, usize::MAX).unwrap()
}

fn apply_and_read<S: SmBackend>(b: &mut S) {
    let sm = b.open();
    let r = sm
        .apply(&[
            cmd(1, None, put("a", "1")),
            cmd(2, None, put("b", "2")),
            cmd(
                3,
                None,
                KvCommand::CompareAndSwap {
                    key: "a".into(),
                    expected: Some("1".into()),
                    new: "3".into(),
                },
            ),
            cmd(
                4,
                None,
                KvCommand::CompareAndSwap {
                    key: "z".into(),
                    expected: Some("1".into()),
                    new: "3".into(),
                },
            ),
            cmd(5, None, KvCommand::Delete { key: "b".into() }),
            cmd(6, None, put("ab", "x")),
        ])
        .unwrap();
    let r: Vec<KvResult> = r.iter().map(|b| KvResult::decode(b).unwrap()).collect();
    assert_eq!(r[0], KvResult::Written);
    assert_eq!(
        r[2],
        KvResult::Cas {
            swapped: true,
            current: Some("1".into())
        }
    );
    assert_eq!(
        r[3],
        KvResult::Cas {
            swapped: false,
            current: None
        }
    );
    assert_eq!(r[4], KvResult::Deleted { existed: true });
    assert_eq!(sm.get(b"a").unwrap(), Some("3".into()));
    assert_eq!(sm.get(b"b").unwrap(), None);
    assert_eq!(sm.prefix_scan(b"a", 10).unwrap().len(), 2);
    assert_eq!(
        sm.prefix_scan(b"a", 1).unwrap(),
        vec![("a".into(), "3".into())]
    );
    assert_eq!(sm.range(b"a", Some(b"ab"), 10).unwrap().len(), 1);
    assert_eq!(sm.last_applied(), 6);
    // Already-applied entries are skipped; a gap is refused.
    assert_eq!(
        sm.apply(&[cmd(6, None, put("ab", "again"))]).unwrap(),
        vec![Bytes::new()]
    );
    assert_eq!(sm.get(b"ab").unwrap(), Some("x".into()));
    assert!(matches!(
        sm.apply(&[cmd(8, None, put("q", "q"))]),
        Err(StorageError::InvalidRequest(_))
    ));
}

fn sessions_apply_once<S: SmBackend>(b: &mut S) {
    let sm = b.open();
    let first = sm.apply(&[cmd(1, Some((5, 1)), put("k", "v1"))]).unwrap();
    sm.apply(&[cmd(2, None, put("k", "other"))]).unwrap();
    let retried = sm.apply(&[cmd(3, Some((5, 1)), put("k", "v1"))]).unwrap();
    assert_eq!(first, retried);
    assert_eq!(sm.get(b"k").unwrap(), Some("other".into()));
    // Another lane of the same client is a session of its own: its seq 1 is new.
    sm.apply(&[lane_cmd(4, (5, 9, 1), put("lane", "9"))])
        .unwrap();
    assert_eq!(sm.get(b"lane").unwrap(), Some("9".into()));
    // The session table, lanes included, survives a snapshot and a restart.
    sm.build_snapshot().unwrap();
    let sm = b.restart(sm);
    sm.apply(&[cmd(4, Some((5, 1)), put("k", "v1"))]).unwrap();
    let again = sm.apply(&[cmd(5, Some((5, 1)), put("k", "v1"))]).unwrap();
    assert_eq!(again, first);
    assert_eq!(sm.get(b"k").unwrap(), Some("other".into()));
    sm.apply(&[lane_cmd(6, (5, 9, 1), put("lane", "again"))])
        .unwrap();
    assert_eq!(
        sm.get(b"lane").unwrap(),
        Some("9".into()),
        "lane 9's retry skipped"
    );
}

/// A command on lane `lane` of client `client`, with sequence number `seq`.
fn lane_cmd(index: u64, (client_id, lane, seq): (u64, u32, u64), c: KvCommand) -> Entry {
    Entry {
        term: 1,
        index,
        payload: EntryPayload::Command {
            session: Some(ClientSession {
                client_id,
                seq,
                lane,
            }),
            data: c.encode(),
        },
    }
}

fn snapshot_build_and_install<S: FreshSm>(b: &mut S) {
    let src = b.open();
    let wl = workload(200);
    src.apply(&wl).unwrap();
    let snap = src.build_snapshot().unwrap();
    assert_eq!(snap.meta, src.applied());
    assert_eq!(snap.meta.last_index, 200);
    assert_eq!(snap.meta.membership, Membership::with_voters([1, 2, 3]));
    assert_eq!(src.durable_meta(), snap.meta);
    let meta = snap.meta.clone();
    let chunks: Vec<Bytes> = snap.chunks.map(|c| c.unwrap()).collect();
    assert_eq!(
        chunks.iter().map(|c| c.len() as u64).sum::<u64>(),
        snap.size_bytes
    );

    // Into a fresh state machine of the same kind (a second instance of the backend).
    let mut other = S::fresh();
    let dst = other.open();
    dst.apply(&workload(3)).unwrap();
    // A damaged stream is refused and leaves the state alone.
    let mut bad = chunks.clone();
    let mid = bad.len() / 2;
    let mut v = bad[mid].to_vec();
    let at = v.len() / 2;
    v[at] ^= 0x10;
    bad[mid] = v.into();
    assert!(
        dst.install_snapshot(&meta, &mut bad.into_iter().map(Ok))
            .is_err()
    );
    assert_eq!(dst.last_applied(), 3);
    // A stream for another index is refused too.
    let wrong = SnapshotMeta {
        last_index: 199,
        ..meta.clone()
    };
    assert!(
        dst.install_snapshot(&wrong, &mut chunks.clone().into_iter().map(Ok))
            .is_err()
    );
    dst.install_snapshot(&meta, &mut chunks.clone().into_iter().map(Ok))
        .unwrap();
    assert_eq!(dump(&dst), dump(&src));
    assert_eq!(dst.applied(), src.applied());
    // It continues from there like the source.
    let more = vec![cmd(201, Some((9, 500)), put("after", "snap"))];
    assert_eq!(dst.apply(&more).unwrap(), src.apply(&more).unwrap());
    let dst = other.restart(dst);
    assert!(dst.durable_meta().last_index >= 200);
    // The installed snapshot is the one a restarted node starts from.
    assert!(dst.current_snapshot().unwrap().is_some());
}

fn restart_and_replay<S: FreshSm>(b: &mut S) {
    let wl = workload(300);
    let reference = b.open();
    reference.apply(&wl).unwrap();
    let want = dump(&reference);
    drop(reference);

    let mut fresh = S::fresh();
    let sm = fresh.open();
    assert_eq!(sm.last_applied(), 0);
    sm.apply(&wl[..120]).unwrap();
    sm.build_snapshot().unwrap();
    sm.apply(&wl[120..]).unwrap();
    let sm = fresh.restart(sm);
    // The engine replays the log after what the state machine says it has.
    let from = sm.durable_meta().last_index;
    assert!(
        from >= 120 && sm.last_applied() >= from,
        "durable {from}, applied {}",
        sm.last_applied()
    );
    sm.apply(&wl[from as usize..]).unwrap();
    assert_eq!(dump(&sm), want);
    assert_eq!(sm.last_applied(), 300);
}

/// Makes a second, independent instance of a backend.
trait Fresh {
    fn fresh() -> Self;
}
impl Fresh for MemSm {
    fn fresh() -> Self {
        MemSm
    }
}
impl Fresh for FileSm {
    fn fresh() -> Self {
        FileSm::new()
    }
}
#[cfg(feature = "rocksdb")]
impl Fresh for storage::rocks::RocksSm {
    fn fresh() -> Self {
        storage::rocks::RocksSm::new()
    }
}

trait FreshSm: SmBackend + Fresh {}
impl<T: SmBackend + Fresh> FreshSm for T {}

macro_rules! sm_suite {
    ($modname:ident, $backend:expr) => {
        mod $modname {
            use super::*;
            #[test]
            fn apply_and_read() {
                super::apply_and_read(&mut $backend);
            }
            #[test]
            fn sessions_apply_once() {
                super::sessions_apply_once(&mut $backend);
            }
            #[test]
            fn snapshot_build_and_install() {
                super::snapshot_build_and_install(&mut $backend);
            }
            #[test]
            fn restart_and_replay() {
                super::restart_and_replay(&mut $backend);
            }
        }
    };
}

sm_suite!(mem_state_machine, MemSm);
sm_suite!(file_state_machine, FileSm::new());
#[cfg(feature = "rocksdb")]
sm_suite!(rocksdb_state_machine, storage::rocks::RocksSm::new());

fn dropped_from_its_own_callback<B: EngineBackend>(b: &mut B) {
    // Regression guard: the last handle dropped inside a completion callback must not
    // deadlock the writer (it would join itself).
    let e = Arc::new(b.open());
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = Arc::new(Mutex::new(Some(e.clone())));
    let h = holder.clone();
    e.append_with(
        ents(1, 1, 1),
        None,
        Box::new(move |r| {
            drop(h.lock().unwrap().take());
            let _ = tx.send(r.map(|_| ()));
        }),
    );
    drop(e);
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("callback ran")
        .unwrap();
    assert!(holder.lock().unwrap().is_none());
    // The writer finishes in the background; nothing here waits for it, so `b` is
    // not reopened (RocksDB would still hold its lock for a moment).
    let _ = b;
}

engine_suite!(
    mem_engine_drop,
    MemBackend::new(),
    dropped_from_its_own_callback
);
engine_suite!(
    file_engine_drop,
    FileBackend::new(),
    dropped_from_its_own_callback
);
#[cfg(feature = "rocksdb")]
engine_suite!(
    rocksdb_engine_drop,
    storage::rocks::RocksBackend::new(),
    dropped_from_its_own_callback
);
