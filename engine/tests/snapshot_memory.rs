//! How much memory building and installing a large snapshot takes, measured by a
//! counting global allocator (this binary's allocations only: RocksDB's own C++
//! allocations, memtables and block cache, are not seen). Bounds:
//! - RocksDB: a build and an install of a ~128 MiB state each raise the peak by at
//!   most 32 MiB over the allocation before the step;
//! - file: a build by at most 32 MiB; an install by at most the installed state's own
//!   size (the new map is the state) plus 32 MiB.
//!
//! One test at a time (a lock), so the counts are not mixed with another test's.

mod storage;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use d_engine::core::types::{Entry, EntryPayload};
use d_engine::storage::{FileStateMachine, KvCommand, StateMachine};
use storage::TestDir;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; only counters
// are updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as if old and new blocks coexisted (they may, while copying).
            grew(new_size);
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const MIB: usize = 1 << 20;
const KEYS: u64 = 128 * 1024;
const VALUE_BYTES: usize = 1024;
const SLACK: usize = 32 * MIB;

/// Runs `f`; returns how far the peak rose above the allocation before it, and how
/// much more stays allocated after it.
fn measure<R>(f: impl FnOnce() -> R) -> (R, usize, isize) {
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let r = f();
    let peak = PEAK.load(Ordering::Relaxed);
    let after = CURRENT.load(Ordering::Relaxed);
    (r, peak - before, after as isize - before as isize)
}

fn fill(sm: &dyn StateMachine) {
    let mut index = 1;
    for lo in (0..KEYS).step_by(1000) {
        let batch: Vec<Entry> = (lo..(lo + 1000).min(KEYS))
            .map(|k| {
                let e = Entry {
                    term: 2,
                    index,
                    payload: EntryPayload::Command {
                        session: None,
                        data: KvCommand::Put {
                            key: Bytes::from(format!("key-{k:08}")),
                            value: Bytes::from(vec![(k % 251) as u8; VALUE_BYTES]),
                        }
                        .encode(),
                    },
                };
                index += 1;
                e
            })
            .collect();
        sm.apply(&batch).unwrap();
    }
}

fn mib(n: usize) -> f64 {
    n as f64 / MIB as f64
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_build_and_install_stay_within_32_mib() {
    use d_engine::storage::RocksDBStateMachine;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (TestDir::new("mem-rocks-src"), TestDir::new("mem-rocks-dst"));
    let src = RocksDBStateMachine::new(a.path()).unwrap();
    fill(&src);
    let (snap, build_peak, _) = measure(|| src.build_snapshot().unwrap());
    assert!(snap.size_bytes as usize > KEYS as usize * VALUE_BYTES);
    let dst = RocksDBStateMachine::new(b.path()).unwrap();
    let meta = snap.meta.clone();
    let mut chunks = snap.chunks;
    let (_, install_peak, _) = measure(|| dst.install_snapshot(&meta, &mut chunks).unwrap());
    eprintln!(
        "rocksdb, image of {:.1} MiB: build peak +{:.1} MiB, install peak +{:.1} MiB",
        mib(snap.size_bytes as usize),
        mib(build_peak),
        mib(install_peak)
    );
    assert_eq!(dst.applied(), src.applied());
    assert_eq!(
        dst.get(b"key-00000007").unwrap(),
        src.get(b"key-00000007").unwrap()
    );
    assert!(
        build_peak <= SLACK,
        "build raised the peak by {:.1} MiB",
        mib(build_peak)
    );
    assert!(
        install_peak <= SLACK,
        "install raised the peak by {:.1} MiB",
        mib(install_peak)
    );
}

#[test]
fn file_build_stays_within_32_mib_and_install_within_the_state_plus_32_mib() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (TestDir::new("mem-file-src"), TestDir::new("mem-file-dst"));
    let src = FileStateMachine::open(a.path(), 1).unwrap();
    fill(&src);
    let (snap, build_peak, _) = measure(|| src.build_snapshot().unwrap());
    assert!(snap.size_bytes as usize > KEYS as usize * VALUE_BYTES);
    let dst = FileStateMachine::open(b.path(), 2).unwrap();
    let meta = snap.meta.clone();
    let mut chunks = snap.chunks;
    let (_, install_peak, kept) = measure(|| dst.install_snapshot(&meta, &mut chunks).unwrap());
    let state = kept.max(0) as usize;
    eprintln!(
        "file, image of {:.1} MiB: build peak +{:.1} MiB; install peak +{:.1} MiB, of which the new state keeps {:.1} MiB",
        mib(snap.size_bytes as usize),
        mib(build_peak),
        mib(install_peak),
        mib(state)
    );
    assert_eq!(dst.applied(), src.applied());
    assert!(
        state >= KEYS as usize * VALUE_BYTES,
        "the state is {:.1} MiB",
        mib(state)
    );
    assert!(
        build_peak <= SLACK,
        "build raised the peak by {:.1} MiB",
        mib(build_peak)
    );
    assert!(
        install_peak <= state + SLACK,
        "install raised the peak by {:.1} MiB for a state of {:.1} MiB",
        mib(install_peak),
        mib(state)
    );
}
