//! Helpers shared by the storage integration tests: temporary directories, entry
//! builders, a reference model of the log, and the backends under test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use d_engine::core::types::{Entry, EntryPayload, HardState, LogIndex, SnapshotMeta, Term};
use d_engine::storage::{
    FileStateMachine, FileStorageEngine, FileStorageOptions, MemStateMachine, MemStorageEngine,
    StateMachine, StorageEngine,
};

/// A directory removed when dropped (kept if the test panics, for a post-mortem).
pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::var_os("DENGINE_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let p = base.join(format!(
            "dengine-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TestDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn data(index: LogIndex, term: Term) -> Bytes {
    Bytes::from(format!("entry {index} of term {term}"))
}

pub fn ent(index: LogIndex, term: Term) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command {
            session: None,
            data: data(index, term),
        },
    }
}

/// Entries `lo..=hi`, all of `term`.
pub fn ents(lo: LogIndex, hi: LogIndex, term: Term) -> Vec<Entry> {
    (lo..=hi).map(|i| ent(i, term)).collect()
}

pub fn meta(last_index: LogIndex, last_term: Term) -> SnapshotMeta {
    SnapshotMeta {
        last_index,
        last_term,
        membership: Default::default(),
    }
}

/// A tiny deterministic PRNG (splitmix64), so failures replay from the printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The reference model of a log: what every backend must agree with.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub snapshot: SnapshotMeta,
    pub entries: Vec<Entry>,
    pub hard_state: HardState,
}

impl Model {
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(self.snapshot.last_index, |e| e.index)
    }
    pub fn last_term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.snapshot.last_term, |e| e.term)
    }
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.last_index {
            return Some(self.snapshot.last_term);
        }
        self.entries
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.term)
    }
    pub fn append(&mut self, es: &[Entry]) {
        if let Some(f) = es.first() {
            self.entries.retain(|e| e.index < f.index);
        }
        self.entries.extend_from_slice(es);
    }
    pub fn truncate(&mut self, from: LogIndex) {
        self.entries.retain(|e| e.index < from);
    }
    pub fn purge(&mut self, m: SnapshotMeta) {
        if m.last_index <= self.snapshot.last_index {
            return;
        }
        if self.term(m.last_index) == Some(m.last_term) {
            self.entries.retain(|e| e.index > m.last_index);
        } else {
            self.entries.clear();
        }
        self.snapshot = m;
    }

    /// Asserts that `engine` holds exactly this log.
    pub fn check(&self, engine: &dyn StorageEngine, ctx: &str) {
        assert_eq!(engine.snapshot_meta(), self.snapshot, "{ctx}: snapshot");
        assert_eq!(
            engine.first_index(),
            self.snapshot.last_index + 1,
            "{ctx}: first"
        );
        assert_eq!(engine.last_index(), self.last_index(), "{ctx}: last");
        assert_eq!(engine.hard_state(), self.hard_state, "{ctx}: hard state");
        let got = engine
            .entries(engine.first_index(), engine.last_index() + 1)
            .unwrap_or_else(|e| panic!("{ctx}: reading all entries: {e}"));
        assert_eq!(got, self.entries, "{ctx}: entries");
        for e in &self.entries {
            assert_eq!(
                engine.term(e.index).unwrap(),
                e.term,
                "{ctx}: term({})",
                e.index
            );
        }
    }
}

/// A storage engine under test that can be "restarted" over the same data.
pub trait EngineBackend {
    type E: StorageEngine;
    fn open(&mut self) -> Self::E;
    /// Whether entries can be so large that they need their own segment, etc.
    fn segment_bytes(&self) -> Option<u64> {
        None
    }
}

pub struct MemBackend(pub MemStorageEngine);

impl MemBackend {
    pub fn new() -> Self {
        MemBackend(MemStorageEngine::new())
    }
}

impl EngineBackend for MemBackend {
    type E = MemStorageEngine;
    fn open(&mut self) -> MemStorageEngine {
        self.0.reopen()
    }
}

/// Small segments so that rollover, multi-segment reads and segment deletion are
/// exercised by every test.
pub const TEST_SEGMENT_BYTES: u64 = 16 * 1024;

pub fn file_options() -> FileStorageOptions {
    FileStorageOptions {
        segment_bytes: TEST_SEGMENT_BYTES,
        ..Default::default()
    }
}

pub struct FileBackend(pub TestDir);

impl FileBackend {
    pub fn new() -> Self {
        FileBackend(TestDir::new("file-log"))
    }
}

impl EngineBackend for FileBackend {
    type E = FileStorageEngine;
    fn open(&mut self) -> FileStorageEngine {
        FileStorageEngine::open(self.0.path(), file_options()).expect("open file log")
    }
    fn segment_bytes(&self) -> Option<u64> {
        Some(TEST_SEGMENT_BYTES)
    }
}

/// A state machine under test that can be restarted over the same durable data.
pub trait SmBackend {
    type S: StateMachine;
    fn open(&mut self) -> Self::S;
    /// Restart: drop `old` and open again.
    fn restart(&mut self, old: Self::S) -> Self::S;
}

pub struct MemSm;

impl SmBackend for MemSm {
    type S = MemStateMachine;
    fn open(&mut self) -> MemStateMachine {
        MemStateMachine::new()
    }
    fn restart(&mut self, old: MemStateMachine) -> MemStateMachine {
        old.restart().unwrap()
    }
}

pub struct FileSm(pub TestDir);

impl FileSm {
    pub fn new() -> Self {
        FileSm(TestDir::new("file-sm"))
    }
}

impl SmBackend for FileSm {
    type S = FileStateMachine;
    fn open(&mut self) -> FileStateMachine {
        FileStateMachine::open(self.0.path(), 1).unwrap()
    }
    fn restart(&mut self, old: FileStateMachine) -> FileStateMachine {
        drop(old);
        self.open()
    }
}

#[cfg(feature = "rocksdb")]
pub mod rocks {
    use super::*;
    use d_engine::storage::{RocksDBStateMachine, RocksDBStorageEngine};

    pub struct RocksBackend(pub TestDir);

    impl RocksBackend {
        pub fn new() -> Self {
            RocksBackend(TestDir::new("rocks-log"))
        }
    }

    impl EngineBackend for RocksBackend {
        type E = RocksDBStorageEngine;
        fn open(&mut self) -> RocksDBStorageEngine {
            RocksDBStorageEngine::new(self.0.path()).expect("open rocksdb log")
        }
    }

    pub struct RocksSm(pub TestDir);

    impl RocksSm {
        pub fn new() -> Self {
            RocksSm(TestDir::new("rocks-sm"))
        }
    }

    impl SmBackend for RocksSm {
        type S = RocksDBStateMachine;
        fn open(&mut self) -> RocksDBStateMachine {
            RocksDBStateMachine::new(self.0.path()).unwrap()
        }
        fn restart(&mut self, old: RocksDBStateMachine) -> RocksDBStateMachine {
            drop(old);
            self.open()
        }
    }
}
