//! [`RocksDBStorageEngine`]: the Raft log in RocksDB (column families `log` and `meta`),
//! written by one thread with group commit into synced write batches.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};
use tracing::{error, info};

use super::{db_err, index_key};
use crate::core::types::{Entry, HardState, LogIndex, SnapshotMeta, Term};
use crate::storage::codec;
use crate::storage::completion::Callback;
use crate::storage::dir_lock::DirLock;
use crate::storage::engine::{PurgePlan, StorageEngine, check_append, check_truncate, plan_purge};
use crate::storage::error::{Result, StorageError};
use crate::storage::file::io::ensure_dir;
use crate::storage::log_queue::{LogOp, LogQueue};
use crate::storage::memory::check_range;

/// Our lock file in the database directory (RocksDB's is `LOCK`).
const LOCK_FILE: &str = "dengine.lock";
const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_SNAPSHOT: &[u8] = b"snapshot";
const QUEUE_CAPACITY: usize = 16 * 1024;
/// Appends merged into one write batch at most.
const GROUP_ENTRIES_MAX: usize = 64 * 1024;

/// What readers see: durable state only.
struct View {
    hard_state: HardState,
    snapshot: SnapshotMeta,
    /// Terms of entries `snapshot.last_index + 1 ..`.
    terms: VecDeque<Term>,
}

impl View {
    fn first_index(&self) -> LogIndex {
        self.snapshot.last_index + 1
    }
    fn last_index(&self) -> LogIndex {
        self.snapshot.last_index + self.terms.len() as u64
    }
    fn term(&self, index: LogIndex) -> Result<Term> {
        if index == self.snapshot.last_index {
            return Ok(self.snapshot.last_term);
        }
        if index < self.first_index() {
            return Err(StorageError::Compacted {
                index,
                first: self.first_index(),
            });
        }
        self.terms
            .get((index - self.first_index()) as usize)
            .copied()
            .ok_or(StorageError::Unavailable {
                index,
                last: self.last_index(),
            })
    }
}

struct Shared {
    db: DB,
    path: PathBuf,
    view: RwLock<View>,
    /// One process per directory; after `db`, so it is released once the database
    /// is closed.
    _lock: DirLock,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }
    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Backend {
                backend: "rocksdb",
                message: format!("column family {name} missing"),
            })
    }
}

/// The Raft log in RocksDB. Same contract as every [`StorageEngine`]; appends waiting
/// in the queue are merged into one synced write batch.
pub struct RocksDBStorageEngine {
    shared: Arc<Shared>,
    queue: LogQueue,
}

impl RocksDBStorageEngine {
    /// Opens (or creates) the database in directory `path`.
    pub fn new(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        ensure_dir(&path)?;
        // RocksDB's own `LOCK` refuses a second process with a message that names
        // neither the holder nor the cause; ours says both. Another name, since the
        // directory is RocksDB's (it ignores files it does not know).
        let lock = DirLock::acquire_named(&path, LOCK_FILE)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_LOG, CF_META].map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, &path, cfs)
            .map_err(|e| db_err("opening rocksdb", &path, e))?;
        let view = load_view(&db, &path)?;
        info!(path = %path.display(), first = view.first_index(), last = view.last_index(), "rocksdb log opened");
        let shared = Arc::new(Shared {
            db,
            path: path.clone(),
            view: RwLock::new(view),
            _lock: lock,
        });
        let w = shared.clone();
        let queue = LogQueue::spawn("dengine-rocks-writer", QUEUE_CAPACITY, &path, move |rx| {
            run_writer(w, rx)
        })?;
        Ok(RocksDBStorageEngine { shared, queue })
    }
}

fn decode_err(path: &Path, what: &'static str, e: codec::DecodeError) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: format!("{what}: {}", e.0),
    }
}

fn load_view(db: &DB, path: &Path) -> Result<View> {
    let meta = db
        .cf_handle(CF_META)
        .expect("opened with this column family");
    let log = db
        .cf_handle(CF_LOG)
        .expect("opened with this column family");
    let get = |k: &[u8]| db.get_cf(meta, k).map_err(|e| db_err("reading", path, e));
    let hard_state = match get(KEY_HARD_STATE)? {
        Some(v) => codec::decode_hard_state(&v).map_err(|e| decode_err(path, "hard state", e))?,
        None => HardState::default(),
    };
    let snapshot = match get(KEY_SNAPSHOT)? {
        Some(v) => {
            codec::decode_snapshot_meta(&v).map_err(|e| decode_err(path, "snapshot meta", e))?
        }
        None => SnapshotMeta::default(),
    };
    let mut terms = VecDeque::new();
    let first = snapshot.last_index + 1;
    let start = index_key(first);
    let iter = db.iterator_cf(log, IteratorMode::From(&start, rocksdb::Direction::Forward));
    for (expected, item) in (first..).zip(iter) {
        let (k, v) = item.map_err(|e| db_err("scanning", path, e))?;
        let index = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0xff; 8]));
        if index != expected || v.len() < 16 {
            return Err(StorageError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: format!("log entry {index} where {expected} was expected"),
            });
        }
        terms.push_back(u64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8])));
    }
    Ok(View {
        hard_state,
        snapshot,
        terms,
    })
}

/// The writer's own idea of the log, ahead of the view by the staged group.
struct Writer {
    shared: Arc<Shared>,
    last_index: LogIndex,
    last_term: Term,
    snapshot: SnapshotMeta,
    failed: Option<StorageError>,
}

fn run_writer(shared: Arc<Shared>, rx: Receiver<LogOp>) {
    let (last_index, last_term, snapshot) = {
        let v = shared.read();
        let last = v.last_index();
        (last, v.term(last).unwrap_or(0), v.snapshot.clone())
    };
    let mut w = Writer {
        shared,
        last_index,
        last_term,
        snapshot,
        failed: None,
    };
    while let Ok(op) = rx.recv() {
        let mut ops = vec![op];
        while ops.len() < GROUP_ENTRIES_MAX {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        w.process(ops);
    }
}

/// Appends staged into one write batch.
#[derive(Default)]
struct Group {
    batch: WriteBatch,
    /// `(first index, terms)` of each append, in order.
    appends: Vec<(LogIndex, Vec<Term>)>,
    hard_state: Option<HardState>,
    done: Vec<(Callback<LogIndex>, LogIndex)>,
}

impl Writer {
    fn process(&mut self, ops: Vec<LogOp>) {
        let mut group = Group::default();
        for op in ops {
            if let Some(e) = &self.failed {
                op.fail(StorageError::Failed(Box::new(e.clone())));
                continue;
            }
            match op {
                LogOp::Append {
                    entries,
                    hard_state,
                    done,
                } => self.stage(&mut group, entries, hard_state, done),
                LogOp::Truncate { from, done } => {
                    self.flush(&mut group);
                    let r = self.truncate(from);
                    done(r)
                }
                LogOp::Purge {
                    snapshot: snap,
                    done,
                } => {
                    self.flush(&mut group);
                    let r = self.purge(snap);
                    done(r)
                }
            }
        }
        self.flush(&mut group);
    }

    /// Checks an append without changing anything: shape, and the term of the entry
    /// before it (from the durable view for an overwrite, after flushing `g`).
    fn check(&mut self, g: &mut Group, entries: &[Entry]) -> Result<()> {
        check_append(entries, self.snapshot.last_index, self.last_index, |_| None)?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let prev_term = if first.index - 1 == self.last_index {
            self.last_term
        } else {
            // An overwrite: the view must hold everything staged.
            self.flush(g);
            self.shared.read().term(first.index - 1)?
        };
        if first.term < prev_term {
            return Err(StorageError::InvalidRequest(format!(
                "entry {} has term {} below the previous entry's term {prev_term}",
                first.index, first.term
            )));
        }
        Ok(())
    }

    fn stage(
        &mut self,
        g: &mut Group,
        entries: Vec<Entry>,
        hs: Option<HardState>,
        done: Callback<LogIndex>,
    ) {
        if let Err(e) = self.check(g, &entries) {
            // Report in order: whatever was staged before this request goes first.
            self.flush(g);
            return done(Err(e));
        }
        // Range deletions are kept bounded and rare (only real overwrites): RocksDB
        // fragments overlapping range tombstones, and one per append made memory grow
        // quadratically.
        let old_last = self.last_index;
        if let Some(first) = entries.first() {
            let log = match self.shared.cf(CF_LOG) {
                Ok(cf) => cf,
                Err(e) => return done(Err(e)),
            };
            // Drop the old suffix, if any, then write the new entries.
            if first.index <= old_last {
                g.batch
                    .delete_range_cf(log, index_key(first.index), index_key(old_last + 1));
            }
            for e in &entries {
                g.batch
                    .put_cf(log, index_key(e.index), codec::encode_entry(e));
            }
            let last = entries.last().expect("non-empty");
            self.last_index = last.index;
            self.last_term = last.term;
            g.appends
                .push((first.index, entries.iter().map(|e| e.term).collect()));
        }
        if let Some(hs) = hs {
            if let Ok(meta) = self.shared.cf(CF_META) {
                g.batch
                    .put_cf(meta, KEY_HARD_STATE, codec::encode_hard_state(&hs));
            }
            g.hard_state = Some(hs);
        }
        g.done.push((done, self.last_index));
    }

    fn write(&mut self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let r = self
            .shared
            .db
            .write_opt(batch, &wo)
            .map_err(|e| db_err("writing", &self.shared.path, e));
        if let Err(e) = &r {
            error!(error = %e, "rocksdb log write failed; the engine must be reopened");
            self.failed = Some(e.clone());
        }
        r
    }

    fn flush(&mut self, g: &mut Group) {
        if g.done.is_empty() {
            return;
        }
        let group = std::mem::take(g);
        if let Err(e) = self.write(group.batch) {
            for (done, _) in group.done {
                done(Err(e.clone()));
            }
            return;
        }
        {
            let mut view = self.shared.view.write().unwrap_or_else(|e| e.into_inner());
            for (first, terms) in group.appends {
                let keep = (first - view.first_index()) as usize;
                view.terms.truncate(keep);
                view.terms.extend(terms);
            }
            if let Some(hs) = group.hard_state {
                view.hard_state = hs;
            }
        }
        for (done, index) in group.done {
            done(Ok(index));
        }
    }

    fn truncate(&mut self, from: LogIndex) -> Result<()> {
        if !check_truncate(from, self.snapshot.last_index, self.last_index)? {
            return Ok(());
        }
        let prev = self.shared.read().term(from - 1)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.shared.cf(CF_LOG)?,
            index_key(from),
            index_key(self.last_index + 1),
        );
        self.write(batch)?;
        let mut view = self.shared.view.write().unwrap_or_else(|e| e.into_inner());
        let keep = (from - view.first_index()) as usize;
        view.terms.truncate(keep);
        self.last_index = from - 1;
        self.last_term = prev;
        Ok(())
    }

    fn purge(&mut self, snap: SnapshotMeta) -> Result<()> {
        let plan = plan_purge(&snap, self.snapshot.last_index, |i| {
            self.shared.read().term(i).ok()
        });
        if plan == PurgePlan::Nothing {
            return Ok(());
        }
        let keeps_suffix = plan == PurgePlan::KeepSuffix;
        let mut batch = WriteBatch::default();
        let log = self.shared.cf(CF_LOG)?;
        // Ranges start at the old first index, so successive purges do not overlap.
        let from = self.snapshot.last_index + 1;
        let end = if keeps_suffix {
            snap.last_index + 1
        } else {
            self.last_index + 1
        };
        if from < end {
            batch.delete_range_cf(log, index_key(from), index_key(end));
        }
        batch.put_cf(
            self.shared.cf(CF_META)?,
            KEY_SNAPSHOT,
            codec::encode_snapshot_meta(&snap),
        );
        self.write(batch)?;
        {
            let mut view = self.shared.view.write().unwrap_or_else(|e| e.into_inner());
            if keeps_suffix {
                let n = (snap.last_index - view.snapshot.last_index) as usize;
                view.terms.drain(..n);
            } else {
                view.terms.clear();
            }
            view.snapshot = snap.clone();
        }
        if !keeps_suffix {
            self.last_index = snap.last_index;
            self.last_term = snap.last_term;
        }
        self.snapshot = snap;
        Ok(())
    }
}

impl StorageEngine for RocksDBStorageEngine {
    fn append_with(
        &self,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        done: Callback<LogIndex>,
    ) {
        self.queue.submit(LogOp::Append {
            entries,
            hard_state,
            done,
        })
    }

    fn truncate_suffix_with(&self, from: LogIndex, done: Callback<()>) {
        self.queue.submit(LogOp::Truncate { from, done })
    }

    fn purge_prefix_with(&self, snapshot: SnapshotMeta, done: Callback<()>) {
        self.queue.submit(LogOp::Purge { snapshot, done })
    }

    fn hard_state(&self) -> HardState {
        self.shared.read().hard_state
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.shared.read().snapshot.clone()
    }

    fn first_index(&self) -> LogIndex {
        self.shared.read().first_index()
    }

    fn last_index(&self) -> LogIndex {
        self.shared.read().last_index()
    }

    fn term(&self, index: LogIndex) -> Result<Term> {
        self.shared.read().term(index)
    }

    fn entries(&self, lo: LogIndex, hi: LogIndex) -> Result<Vec<Entry>> {
        let view = self.shared.read();
        check_range(lo, hi, view.first_index(), view.last_index())?;
        if lo == hi {
            return Ok(Vec::new());
        }
        let log = self.shared.cf(CF_LOG)?;
        let start = index_key(lo);
        let mut out = Vec::with_capacity((hi - lo) as usize);
        let iter = self
            .shared
            .db
            .iterator_cf(log, IteratorMode::From(&start, rocksdb::Direction::Forward));
        for item in iter.take((hi - lo) as usize) {
            let (_, v) = item.map_err(|e| db_err("reading", &self.shared.path, e))?;
            let e = codec::decode_entry(&v)
                .map_err(|e| decode_err(&self.shared.path, "log entry", e))?;
            let want = lo + out.len() as u64;
            if e.index != want {
                return Err(StorageError::Corrupt {
                    path: self.shared.path.clone(),
                    offset: 0,
                    reason: format!("log entry {} where {want} was expected", e.index),
                });
            }
            out.push(e);
        }
        if out.len() as u64 != hi - lo {
            return Err(StorageError::Corrupt {
                path: self.shared.path.clone(),
                offset: 0,
                reason: format!("log entries {lo}..{hi} missing"),
            });
        }
        Ok(out)
    }
}
