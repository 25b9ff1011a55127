//! Snapshots of a large state through the chunk stream, on every state machine
//! backend: a build → install round trip of ~64 MiB, and installs that must be refused
//! (a flipped byte, a truncated stream, a wrong checksum, a stream failing midway)
//! with the old state still in place. With feature `rocksdb`, also that applies go on
//! while a RocksDB build streams.

mod storage;

use bytes::Bytes;
use d_engine::core::types::{Entry, EntryPayload, SnapshotMeta};
use d_engine::storage::{FileStateMachine, KvCommand, MemStateMachine, StateMachine, StorageError};
use storage::TestDir;

const KEYS: u64 = 64 * 1024;
const VALUE_BYTES: usize = 1024;

fn put(index: u64, key: u64, tag: u8) -> Entry {
    let mut value = vec![tag; VALUE_BYTES];
    value[..8].copy_from_slice(&key.to_le_bytes());
    Entry {
        term: 3,
        index,
        payload: EntryPayload::Command {
            session: None,
            data: KvCommand::Put {
                key: Bytes::from(format!("key-{key:08}")),
                value: Bytes::from(value),
            }
            .encode(),
        },
    }
}

/// Applies `keys` puts of `VALUE_BYTES` each, from index `first`, in batches.
pub fn fill(sm: &dyn StateMachine, first: u64, keys: u64, tag: u8) -> u64 {
    let mut index = first;
    for lo in (0..keys).step_by(1000) {
        let batch: Vec<Entry> = (lo..(lo + 1000).min(keys))
            .map(|k| {
                index += 1;
                put(index - 1, k, tag)
            })
            .collect();
        sm.apply(&batch).unwrap();
    }
    index
}

/// Every pair.
fn dump(sm: &dyn StateMachine) -> Vec<(Bytes, Bytes)> {
    sm.range(b"", None, usize::MAX).unwrap()
}

fn install_vec(
    sm: &dyn StateMachine,
    meta: &SnapshotMeta,
    chunks: Vec<Bytes>,
) -> Result<(), StorageError> {
    sm.install_snapshot(meta, &mut chunks.into_iter().map(Ok))
}

/// The old state of `dst`: one key written before any install.
fn assert_old_state(dst: &dyn StateMachine, what: &str) {
    assert_eq!(dst.last_applied(), 1, "{what}: applied index moved");
    assert_eq!(
        dst.get(b"old").unwrap().as_deref(),
        Some(&b"state"[..]),
        "{what}: old state lost"
    );
    assert_eq!(
        dst.get(b"key-00000000").unwrap(),
        None,
        "{what}: half installed"
    );
    assert_eq!(
        dst.durable_meta().last_index,
        1,
        "{what}: durable snapshot moved"
    );
    let old = dst.current_snapshot().unwrap().expect("the old snapshot");
    assert_eq!(old.meta.last_index, 1, "{what}: another snapshot served");
    let bytes: usize = old.chunks.map(|c| c.unwrap().len()).sum();
    assert_eq!(bytes as u64, old.size_bytes, "{what}: old image damaged");
}

fn old_state(dst: &dyn StateMachine) {
    let e = Entry {
        term: 1,
        index: 1,
        payload: EntryPayload::Command {
            session: None,
            data: KvCommand::Put {
                key: "old".into(),
                value: "state".into(),
            }
            .encode(),
        },
    };
    dst.apply(&[e]).unwrap();
    dst.build_snapshot().unwrap();
}

/// The whole check for one backend: `src` holds nothing yet, `dst` is another
/// instance of the same backend.
fn round_trip_and_refusals(src: &dyn StateMachine, dst: &dyn StateMachine) {
    let last = fill(src, 1, KEYS, 7) - 1;
    let snap = src.build_snapshot().unwrap();
    assert_eq!(snap.meta.last_index, last);
    assert!(snap.size_bytes > KEYS * VALUE_BYTES as u64);
    let meta = snap.meta.clone();
    old_state(dst);

    // Refusals first, on copies of the chunks.
    let chunks: Vec<Bytes> = src
        .current_snapshot()
        .unwrap()
        .unwrap()
        .chunks
        .map(|c| c.unwrap())
        .collect();
    assert!(chunks.len() > 4, "a stream of {} chunks", chunks.len());
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    assert_eq!(total as u64, snap.size_bytes);

    let mut flipped = chunks.clone();
    let mid = flipped.len() / 2;
    let mut c = flipped[mid].to_vec();
    let at = c.len() / 3;
    c[at] ^= 0x01;
    flipped[mid] = c.into();
    assert!(install_vec(dst, &meta, flipped).is_err());
    assert_old_state(dst, "flipped byte");

    let mut truncated = chunks.clone();
    truncated.truncate(chunks.len() - 2);
    assert!(install_vec(dst, &meta, truncated).is_err());
    assert_old_state(dst, "truncated");

    let mut wrong_sum = chunks.clone();
    let n = wrong_sum.len() - 1;
    let mut c = wrong_sum[n].to_vec();
    let end = c.len() - 1;
    c[end] ^= 0x80;
    wrong_sum[n] = c.into();
    assert!(install_vec(dst, &meta, wrong_sum).is_err());
    assert_old_state(dst, "wrong checksum");

    let half = chunks.len() / 2;
    let mut failing = chunks.clone().into_iter().enumerate().map(|(i, c)| {
        if i == half {
            Err(StorageError::InvalidRequest("the sender went away".into()))
        } else {
            Ok(c)
        }
    });
    let err = dst.install_snapshot(&meta, &mut failing).unwrap_err();
    assert!(matches!(err, StorageError::InvalidRequest(_)), "{err}");
    assert_old_state(dst, "stream failing midway");
    drop(chunks);

    // Then the real install, straight from the build's stream.
    let mut stream = snap.chunks;
    dst.install_snapshot(&meta, &mut stream).unwrap();
    assert_eq!(dst.applied(), src.applied());
    assert_eq!(dst.get(b"old").unwrap(), None);
    let (a, b) = (dump(src), dump(dst));
    assert_eq!(a.len(), KEYS as usize);
    assert!(a == b, "installed contents differ from the source");
}

#[test]
fn memory_backend_streams_a_large_snapshot() {
    let (src, dst) = (MemStateMachine::new(), MemStateMachine::new());
    round_trip_and_refusals(&src, &dst);
}

#[test]
fn file_backend_streams_a_large_snapshot() {
    let (a, b) = (
        TestDir::new("stream-file-src"),
        TestDir::new("stream-file-dst"),
    );
    let src = FileStateMachine::open(a.path(), 1).unwrap();
    let dst = FileStateMachine::open(b.path(), 2).unwrap();
    round_trip_and_refusals(&src, &dst);
    // The installed image is what a restart loads.
    let want = dump(&dst);
    drop(dst);
    let dst = FileStateMachine::open(b.path(), 2).unwrap();
    assert!(dump(&dst) == want);
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use d_engine::storage::RocksDBStateMachine;

    use super::*;

    #[test]
    fn rocksdb_backend_streams_a_large_snapshot() {
        let (a, b) = (
            TestDir::new("stream-rocks-src"),
            TestDir::new("stream-rocks-dst"),
        );
        let src = RocksDBStateMachine::new(a.path()).unwrap();
        let dst = RocksDBStateMachine::new(b.path()).unwrap();
        round_trip_and_refusals(&src, &dst);
        // The switch survives a restart, and a second install switches back.
        let want = dump(&dst);
        drop(dst);
        let dst = RocksDBStateMachine::new(b.path()).unwrap();
        assert!(dump(&dst) == want);
        let next = fill(&src, src.last_applied() + 1, 10, 9);
        let snap = src.build_snapshot().unwrap();
        let mut chunks = snap.chunks;
        dst.install_snapshot(&snap.meta, &mut chunks).unwrap();
        assert_eq!(dst.last_applied(), next - 1);
        assert!(dump(&dst) == dump(&src));
        drop(dst);
        let dst = RocksDBStateMachine::new(b.path()).unwrap();
        assert!(dump(&dst) == dump(&src));
        assert!(dst.current_snapshot().unwrap().is_some());
        // As after a crash between an install's rename of its image and its switch:
        // an image newer than the durable meta is not served.
        fill(&src, src.last_applied() + 1, 10, 11);
        src.build_snapshot().unwrap();
        let img = "snapshot.img";
        std::fs::copy(a.path().join(img), b.path().join(img)).unwrap();
        assert!(dst.current_snapshot().unwrap().is_none());
    }

    /// A build streams from a RocksDB snapshot after the apply lock is released:
    /// batches applied meanwhile are not held up for the whole build.
    #[test]
    fn rocksdb_applies_go_on_while_a_build_streams() {
        let d = TestDir::new("stream-rocks-busy");
        let sm = RocksDBStateMachine::new(d.path()).unwrap();
        let next = fill(&sm, 1, KEYS, 5);
        let (started, done) = (AtomicBool::new(false), AtomicBool::new(false));
        let during = AtomicU64::new(0);
        let worst = std::sync::Mutex::new(Duration::ZERO);
        let build_time = std::thread::scope(|s| {
            s.spawn(|| {
                let mut index = next;
                while !done.load(Ordering::Acquire) {
                    let batch: Vec<Entry> = (0..10)
                        .map(|k| {
                            index += 1;
                            put(index - 1, KEYS + k, 1)
                        })
                        .collect();
                    // Only batches begun while the build runs count; a blocked one
                    // counts its whole wait.
                    let in_build = started.load(Ordering::Acquire);
                    let t = Instant::now();
                    sm.apply(&batch).unwrap();
                    let took = t.elapsed();
                    if in_build {
                        let mut w = worst.lock().unwrap();
                        *w = (*w).max(took);
                        if !done.load(Ordering::Acquire) {
                            during.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
            // Let the applier start first.
            std::thread::sleep(Duration::from_millis(20));
            started.store(true, Ordering::Release);
            let t = Instant::now();
            let snap = sm.build_snapshot().unwrap();
            let took = t.elapsed();
            done.store(true, Ordering::Release);
            assert!(snap.meta.last_index >= next - 1);
            took
        });
        let batches = during.load(Ordering::Relaxed);
        let worst = *worst.lock().unwrap();
        eprintln!("build {build_time:?}; {batches} batches applied meanwhile, slowest {worst:?}");
        assert!(
            batches >= 20,
            "only {batches} batches applied during a {build_time:?} build"
        );
        assert!(
            worst * 2 < build_time,
            "an apply took {worst:?} during a {build_time:?} build"
        );
    }
}
