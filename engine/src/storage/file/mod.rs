//! File backends: [`FileStorageEngine`] (segmented log with group commit) and
//! [`FileStateMachine`] (in-memory KV persisted through snapshot files).
//!
//! # Crash safety of the log
//!
//! An append is acknowledged only after `fdatasync` of every segment it touched (and,
//! with a hard state, after the meta file was replaced atomically). On open, the last
//! segment is scanned: after the last valid record only zeros may follow (segments are
//! preallocated with zeros, and truncations write zeros). Garbage after it with no
//! valid record behind it is a torn write of unacknowledged data: it is zeroed and the
//! recovery logged. Anything else — a bad record followed by a valid one, damage in an
//! earlier segment, a gap in the indexes — is corruption: the engine refuses to start
//! with an error naming the file and offset. (A damaged *last* record looks exactly like
//! a torn write and is dropped; every write-ahead log shares this limit.)
//!
//! The writer never lets a write span segments unsynced: a full segment is synced
//! before the next one receives a byte, so only the last segment can have a torn tail.
//! Truncations zero the removed records and sync before anything new is written over
//! them, so an old record can never reappear behind a newer one; while they zero, a
//! marker in the meta file names the range, so a crash in the middle (zeros persisted
//! out of order) is finished on open rather than refused as corruption.
//!
//! # Known limits
//!
//! - If a power loss persists pages of the last, unacknowledged write out of order
//!   (a later record on disk, an earlier one not), the tail looks like "a bad record
//!   followed by a valid one" and the engine refuses to start instead of guessing; no
//!   acknowledged entry is at risk, but an operator must look (the error names the file
//!   and offset). A process kill (`kill -9`) cannot cause this: the page cache survives.
//! - One process per directory: opening takes an exclusive `flock` on `LOCK` first
//!   ([`DirLock`](crate::storage::DirLock)); a second open fails with
//!   `StorageError::Locked` naming the holder's pid, before it reads or repairs anything.
//! - After an I/O error the writer stops: every later request fails with
//!   `StorageError::Failed` until the engine is reopened, because after a failed
//!   `fsync` the page cache no longer says what is on disk.
//!
//! # A full disk
//!
//! A full disk is not an I/O error of that kind: the writer only ever fails for want
//! of space in steps that change nothing durable when they fail (writing records into
//! a preallocated segment, zero-filling the next spare segment, writing the meta
//! file's temporary copy). It then holds every queued request back, in order, and
//! retries the step every [`NO_SPACE_RETRY`] until space is freed (or the engine is
//! dropped). Nothing is acknowledged meanwhile and nothing is lost;
//! [`StorageEngine::waiting_for_space`] says so, and the node answers writes with
//! NO_SPACE. Requests keep queueing up to `queue_capacity` (then `Busy`).

mod format;
pub(crate) mod image;
pub(crate) mod io;
mod recovery;
mod state_machine;
mod writer;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;

pub use state_machine::FileStateMachine;

use self::format::{REC_HEADER_BYTES, parse_record, record_payload};
use super::codec;
use super::completion::Callback;
use super::dir_lock::DirLock;
use super::engine::StorageEngine;
use super::error::{Result, StorageError};
use super::log_queue::{LogOp, LogQueue};
use super::memory::check_range;
use crate::core::types::{Entry, HardState, LogIndex, SnapshotMeta, Term};

/// Tuning of [`FileStorageEngine`]. Every limit has a default.
#[derive(Clone, Debug)]
pub struct FileStorageOptions {
    /// Size of one preallocated segment file; also bounds one entry's size.
    ///
    /// 8 MiB by default: each segment is filled with zeros and synced by a background
    /// thread before it is needed, and that sync competes with the group commits of
    /// every process on the disk. 64 MiB segments put a 40-90 ms stall into the p99.9
    /// of a 64-client write benchmark at every rollover; 16 MiB 24-33 ms, 8 MiB 16-18
    /// ms, with the same throughput (bench/RESULTS.md).
    pub segment_bytes: u64,
    /// Requests that may wait in the writer's queue; more fail with `Busy`.
    pub queue_capacity: usize,
    /// A group commit writes at most about this many bytes before its fsync.
    pub group_bytes_max: usize,
}

impl Default for FileStorageOptions {
    fn default() -> Self {
        FileStorageOptions {
            segment_bytes: 8 << 20,
            queue_capacity: 16 * 1024,
            group_bytes_max: 8 << 20,
        }
    }
}

/// How often a writer waiting for space retries the step that found the disk full.
pub const NO_SPACE_RETRY: Duration = Duration::from_millis(500);

/// A segment file, shared by the writer and readers.
pub(crate) struct Segment {
    pub seq: u64,
    pub base_index: LogIndex,
    pub path: PathBuf,
    pub file: File,
}

/// Where a durable entry lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc {
    pub term: Term,
    pub seq: u64,
    pub offset: u64,
    /// Bytes the record takes on disk, padding included.
    pub size: u32,
}

/// What readers see: only durable state, published by the writer after each fsync.
pub(crate) struct View {
    pub hard_state: HardState,
    pub snapshot: SnapshotMeta,
    /// Entries `snapshot.last_index + 1 ..`, in order.
    pub locs: VecDeque<Loc>,
    pub segments: BTreeMap<u64, Arc<Segment>>,
}

impl View {
    fn first_index(&self) -> LogIndex {
        self.snapshot.last_index + 1
    }
    fn last_index(&self) -> LogIndex {
        self.snapshot.last_index + self.locs.len() as u64
    }
    fn loc(&self, index: LogIndex) -> Option<&Loc> {
        let i = index.checked_sub(self.first_index())?;
        self.locs.get(i as usize)
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
        self.loc(index)
            .map(|l| l.term)
            .ok_or(StorageError::Unavailable {
                index,
                last: self.last_index(),
            })
    }
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub view: RwLock<View>,
    /// The writer is holding requests back until space is freed.
    pub no_space: AtomicBool,
    /// The engine is being dropped: a writer waiting for space gives up.
    pub closing: AtomicBool,
    /// Held by everything that may still write (the writer thread keeps a clone), so
    /// the directory is released only after the last write.
    pub _lock: DirLock,
}

impl Shared {
    pub fn read(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The durable Raft log in a directory of preallocated segment files, written by one
/// dedicated thread with group commit. See the [module docs](self) for crash safety
/// and [`StorageEngine`] for the contract.
pub struct FileStorageEngine {
    shared: Arc<Shared>,
    queue: LogQueue,
}

impl FileStorageEngine {
    /// Opens (or creates) the log in directory `path` with default options, recovering
    /// from a torn tail; corruption elsewhere is an error naming file and offset.
    pub fn new(path: impl AsRef<Path>) -> Result<Self> {
        Self::open(path, FileStorageOptions::default())
    }

    /// [`FileStorageEngine::new`] with explicit options.
    pub fn open(path: impl AsRef<Path>, options: FileStorageOptions) -> Result<Self> {
        let queue_capacity = options.queue_capacity.max(1);
        let (shared, writer) = recovery::open(path.as_ref(), options)?;
        let queue = LogQueue::spawn("dengine-log-writer", queue_capacity, path.as_ref(), |rx| {
            writer.run(rx)
        })?;
        Ok(FileStorageEngine { shared, queue })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.shared.dir
    }
}

impl Drop for FileStorageEngine {
    fn drop(&mut self) {
        // The writer finishes what was queued, then exits (a writer waiting for
        // space fails what is left instead).
        self.shared.closing.store(true, Ordering::Release);
        self.queue.close();
    }
}

impl StorageEngine for FileStorageEngine {
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

    fn waiting_for_space(&self) -> bool {
        self.shared.no_space.load(Ordering::Acquire)
    }

    fn entries(&self, lo: LogIndex, hi: LogIndex) -> Result<Vec<Entry>> {
        // The read lock is held during the I/O: the writer only zeroes or deletes
        // records after removing them from the view under the write lock.
        let view = self.shared.read();
        check_range(lo, hi, view.first_index(), view.last_index())?;
        let mut out = Vec::with_capacity((hi - lo) as usize);
        let mut index = lo;
        while index < hi {
            // One read for each run of records that are adjacent in one segment.
            let first = *view.loc(index).expect("range checked");
            let mut end = index + 1;
            let mut run_end = first.offset + first.size as u64;
            while end < hi {
                let l = view.loc(end).expect("range checked");
                if l.seq != first.seq || l.offset != run_end || run_end - first.offset > 4 << 20 {
                    break;
                }
                run_end += l.size as u64;
                end += 1;
            }
            let seg = view
                .segments
                .get(&first.seq)
                .ok_or_else(|| StorageError::Backend {
                    backend: "file log",
                    message: format!("segment {} of entry {index} is not open", first.seq),
                })?;
            let mut run = vec![0u8; (run_end - first.offset) as usize];
            seg.file
                .read_exact_at(&mut run, first.offset)
                .map_err(|e| StorageError::io("reading", &seg.path, e))?;
            // Entries share the run's buffer: no copy or allocation per entry.
            let buf = Bytes::from(run);
            let mut off = 0usize;
            for i in index..end {
                out.push(decode_at(seg, &buf, off, first.offset, i)?);
                off += view.loc(i).expect("range checked").size as usize;
            }
            index = end;
        }
        Ok(out)
    }
}

/// Decodes the record of entry `index` at `buf[off..]` (file offset `base + off`),
/// re-verifying its checksum.
fn decode_at(seg: &Segment, buf: &Bytes, off: usize, base: u64, index: LogIndex) -> Result<Entry> {
    let at = base + off as u64;
    let rec = parse_record(buf, off).map_err(|why| StorageError::corrupt(&seg.path, at, why))?;
    if rec.index != index {
        return Err(StorageError::corrupt(
            &seg.path,
            at,
            format!("expected entry {index}, found {}", rec.index),
        ));
    }
    let payload = codec::decode_payload_in(buf, record_payload(buf, off, &rec))
        .map_err(|e| StorageError::corrupt(&seg.path, at + REC_HEADER_BYTES as u64, e.0))?;
    Ok(Entry {
        term: rec.term,
        index,
        payload,
    })
}
