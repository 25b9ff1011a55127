//! The log writer thread: executes queued requests in order, merging consecutive
//! appends into one write and one `fdatasync` (group commit).

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::{debug, error, info, warn};

use super::format::{self, SEG_HEADER_BYTES};
use super::io;
use super::{FileStorageOptions, Loc, NO_SPACE_RETRY, Segment, Shared};
use crate::core::types::{Entry, HardState, LogIndex, SnapshotMeta, Term};
use crate::storage::codec;
use crate::storage::completion::Callback;
use crate::storage::engine::{PurgePlan, check_append, check_truncate, plan_purge};
use crate::storage::error::{Result, StorageError};
use crate::storage::log_queue::LogOp;

type Spare = JoinHandle<Result<(PathBuf, std::fs::File)>>;

/// Appends staged since the last fsync.
#[derive(Default)]
struct Group {
    locs: Vec<Loc>,
    hard_state: Option<HardState>,
    done: Vec<(Callback<LogIndex>, LogIndex)>,
}

pub(crate) struct Writer {
    pub shared: Arc<Shared>,
    pub options: FileStorageOptions,
    /// The segment being appended to.
    pub active: Arc<Segment>,
    /// File offset at which `buf` will be written.
    pub buf_base: u64,
    /// End of the written records of every live segment (truncation zeroes up to it).
    pub seg_ends: BTreeMap<u64, u64>,
    pub next_seq: u64,
    /// Last staged entry (may be ahead of what readers see until the group is synced).
    pub last_index: LogIndex,
    pub last_term: Term,
    /// Durable copies of the meta file's contents.
    pub hard_state: HardState,
    pub snapshot: SnapshotMeta,
    pub spare: Option<Spare>,
    pub spare_counter: u64,
    pub buf: Vec<u8>,
    /// Bytes written to the active segment since its last fsync.
    pub dirty: bool,
    pub failed: Option<StorageError>,
    group: Group,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<Shared>,
        options: FileStorageOptions,
        active: Arc<Segment>,
        buf_base: u64,
        seg_ends: BTreeMap<u64, u64>,
        last: (LogIndex, Term),
        hard_state: HardState,
        snapshot: SnapshotMeta,
        adopted_spare: Option<PathBuf>,
    ) -> Self {
        let next_seq = seg_ends.keys().next_back().map_or(1, |s| s + 1);
        let mut w = Writer {
            shared,
            options,
            active,
            buf_base,
            seg_ends,
            next_seq,
            last_index: last.0,
            last_term: last.1,
            hard_state,
            snapshot,
            spare: None,
            spare_counter: 0,
            buf: Vec::with_capacity(1 << 20),
            dirty: false,
            failed: None,
            group: Group::default(),
        };
        match adopted_spare {
            // A finished spare left by the previous run: no need to zero-fill a segment again.
            Some(path) => {
                w.spare = std::thread::Builder::new()
                    .name("dengine-log-prealloc".into())
                    .spawn(move || {
                        std::fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(&path)
                            .map(|f| (path.clone(), f))
                            .map_err(|e| StorageError::io("opening spare segment", &path, e))
                    })
                    .ok();
            }
            None => w.start_spare(),
        }
        w
    }

    /// The thread body: runs until the engine is dropped (the queue closes).
    pub fn run(mut self, rx: Receiver<LogOp>) {
        while let Ok(op) = rx.recv() {
            self.handle(op);
            // Everything that queued up during the last fsync joins this group.
            while self.buf.len() < self.options.group_bytes_max {
                match rx.try_recv() {
                    Ok(op) => self.handle(op),
                    Err(_) => break,
                }
            }
            self.flush_group();
        }
        self.flush_group();
        // A finished spare stays for the next open to adopt.
        if let Some(h) = self.spare.take() {
            let _ = h.join();
        }
    }

    fn handle(&mut self, op: LogOp) {
        if let Some(e) = &self.failed {
            return op.fail(StorageError::Failed(Box::new(e.clone())));
        }
        match op {
            LogOp::Append {
                entries,
                hard_state,
                done,
            } => self.stage_append(entries, hard_state, done),
            LogOp::Truncate { from, done } => {
                self.flush_group();
                let r = self.checked(|w| w.truncate(from));
                done(r)
            }
            LogOp::Purge { snapshot, done } => {
                self.flush_group();
                let r = self.checked(|w| w.purge(snapshot));
                done(r)
            }
        }
    }

    /// Runs a disk operation; an I/O failure stops the writer for good.
    fn checked<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if let Some(e) = &self.failed {
            return Err(StorageError::Failed(Box::new(e.clone())));
        }
        let r = f(self);
        if let Err(e) = &r
            && !matches!(e, StorageError::InvalidRequest(_))
        {
            error!(error = %e, dir = %self.shared.dir.display(), "log write failed; the engine must be reopened");
            self.failed = Some(e.clone());
        }
        r
    }

    fn stage_append(
        &mut self,
        entries: Vec<Entry>,
        hs: Option<HardState>,
        done: Callback<LogIndex>,
    ) {
        if let Err(e) = self.prepare_append(&entries) {
            // Report in order: whatever was staged before this request goes first.
            self.flush_group();
            return done(Err(e));
        }
        let staged = self.checked(|w| {
            for e in &entries {
                w.stage_record(e)?;
            }
            Ok(())
        });
        if let Err(e) = staged {
            // Fail this request and everything staged with it: none of it is durable.
            self.fail_group(e.clone());
            return done(Err(e));
        }
        if hs.is_some() {
            self.group.hard_state = hs;
        }
        self.group.done.push((done, self.last_index));
    }

    /// Validates an append and, for an overwrite, truncates the conflicting suffix.
    /// Nothing is changed unless the request is valid.
    fn prepare_append(&mut self, entries: &[Entry]) -> Result<()> {
        let max = self.options.segment_bytes as usize - SEG_HEADER_BYTES;
        if let Some(e) = entries
            .iter()
            .find(|e| format::record_bytes_max(codec::payload_encoded_len(&e.payload)) > max)
        {
            return Err(StorageError::InvalidRequest(format!(
                "entry {} does not fit in a segment of {} bytes",
                e.index, self.options.segment_bytes
            )));
        }
        check_append(entries, self.snapshot.last_index, self.last_index, |_| None)?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let overwrite = first.index <= self.last_index;
        if overwrite {
            // The view then holds every staged entry, for the term lookup below.
            self.flush_group();
        }
        let prev_term = if first.index - 1 == self.last_index {
            self.last_term
        } else {
            self.shared.read().term(first.index - 1)?
        };
        if first.term < prev_term {
            return Err(StorageError::InvalidRequest(format!(
                "entry {} has term {} below the previous entry's term {prev_term}",
                first.index, first.term
            )));
        }
        if overwrite {
            self.checked(|w| w.truncate(first.index))?;
        }
        Ok(())
    }

    fn stage_record(&mut self, e: &Entry) -> Result<()> {
        let start = self.buf.len();
        format::encode_record(&mut self.buf, e);
        let size = self.buf.len() - start;
        let end = self.buf_base + self.buf.len() as u64;
        let mut rec_off = start;
        if end > self.options.segment_bytes {
            let rec = self.buf.split_off(start);
            self.rollover(e.index)?;
            self.buf = rec;
            rec_off = 0;
        }
        self.group.locs.push(Loc {
            term: e.term,
            seq: self.active.seq,
            offset: self.buf_base + rec_off as u64,
            size: size as u32,
        });
        self.last_index = e.index;
        self.last_term = e.term;
        Ok(())
    }

    fn write_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // Into preallocated blocks, so a full disk is rare here (copy-on-write file
        // systems); rewriting the same bytes at the same offset is harmless.
        self.until_space("writing", |w| {
            w.active
                .file
                .write_all_at(&w.buf, w.buf_base)
                .map_err(|e| StorageError::io("writing", &w.active.path, e))
        })?;
        self.buf_base += self.buf.len() as u64;
        self.seg_ends.insert(self.active.seq, self.buf_base);
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    fn sync_active(&mut self) -> Result<()> {
        self.write_buf()?;
        if self.dirty {
            let started = std::time::Instant::now();
            self.active
                .file
                .sync_data()
                .map_err(|e| StorageError::io("syncing", &self.active.path, e))?;
            // Same name as `crate::metrics::FSYNC_SECONDS` (a no-op without a recorder).
            metrics::histogram!("dengine_fsync_seconds").record(started.elapsed().as_secs_f64());
            self.dirty = false;
        }
        Ok(())
    }

    /// Makes the staged group durable, publishes it to readers, then reports it.
    fn flush_group(&mut self) {
        if self.group.done.is_empty()
            && self.group.locs.is_empty()
            && self.group.hard_state.is_none()
        {
            return;
        }
        let hs = self.group.hard_state.take();
        let r = self.checked(|w| {
            w.sync_active()?;
            if let Some(hs) = hs {
                w.write_meta(hs, w.snapshot.clone(), None)?;
                w.hard_state = hs;
            }
            Ok(())
        });
        if let Err(e) = r {
            return self.fail_group(e);
        }
        let group = std::mem::take(&mut self.group);
        {
            let mut view = self.shared.write();
            view.locs.extend(group.locs);
            view.hard_state = self.hard_state;
        }
        for (done, index) in group.done {
            done(Ok(index));
        }
    }

    /// Replaces the meta file. A full disk fails it before the rename (the old file
    /// stays whole), so the write is retried until space is freed.
    fn write_meta(
        &mut self,
        hard_state: HardState,
        snapshot: SnapshotMeta,
        zeroing: Option<io::Zeroing>,
    ) -> Result<()> {
        let meta = io::Meta {
            hard_state,
            snapshot,
            zeroing,
        };
        self.until_space("writing the meta file", |w| {
            io::write_meta(&w.shared.dir, &meta)
        })
    }

    /// Runs `step`, which must change nothing durable when it fails for want of
    /// space; while it does, holds everything back (the queue waits behind it) and
    /// retries every `NO_SPACE_RETRY` until space is freed. The engine says it is
    /// waiting (`waiting_for_space`) meanwhile. Gives up with the error only when the
    /// engine is being dropped.
    fn until_space<T>(
        &mut self,
        what: &'static str,
        mut step: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<T> {
        let mut since: Option<Instant> = None;
        loop {
            match step(self) {
                Err(e) if e.is_disk_full() && !self.shared.closing.load(Ordering::Acquire) => {
                    if since.is_none() {
                        warn!(
                            error = %e,
                            dir = %self.shared.dir.display(),
                            retry_ms = NO_SPACE_RETRY.as_millis() as u64,
                            "disk full while {what}: log writes are held back (nothing is \
                             acknowledged or lost) and retried until space is freed"
                        );
                        self.shared.no_space.store(true, Ordering::Release);
                        since = Some(Instant::now());
                    }
                    std::thread::sleep(NO_SPACE_RETRY);
                }
                r => {
                    if let Some(t) = since {
                        self.shared.no_space.store(false, Ordering::Release);
                        info!(
                            dir = %self.shared.dir.display(),
                            waited_ms = t.elapsed().as_millis() as u64,
                            "space available again: log writes resume"
                        );
                    }
                    return r;
                }
            }
        }
    }

    fn fail_group(&mut self, e: StorageError) {
        for (done, _) in std::mem::take(&mut self.group).done {
            done(Err(e.clone()));
        }
    }

    /// Durably removes entries `>= from`. The group is already flushed.
    fn truncate(&mut self, from: LogIndex) -> Result<()> {
        if !check_truncate(from, self.snapshot.last_index, self.last_index)? {
            return Ok(());
        }
        let (loc, prev_term, seg) = {
            let mut view = self.shared.write();
            let loc = *view.loc(from).expect("from is in the durable log");
            let prev_term = view.term(from - 1)?;
            let keep = (from - view.first_index()) as usize;
            view.locs.truncate(keep);
            let seg = view.segments[&loc.seq].clone();
            (loc, prev_term, seg)
        };
        // Later segments go first: a crash in between leaves a prefix of the old log.
        let later: Vec<u64> = self
            .seg_ends
            .range(loc.seq + 1..)
            .map(|(s, _)| *s)
            .collect();
        self.delete_segments(&later)?;
        let end = self.seg_ends.get(&loc.seq).copied().unwrap_or(loc.offset);
        let zeroing = io::Zeroing {
            seq: seg.seq,
            from: loc.offset,
            to: end,
        };
        self.write_meta(self.hard_state, self.snapshot.clone(), Some(zeroing))?;
        io::zero_range(&seg.file, &seg.path, loc.offset, end)?;
        seg.file
            .sync_data()
            .map_err(|e| StorageError::io("syncing", &seg.path, e))?;
        // The zeros are durable: no record can be written into the range before the
        // marker is gone, so recovery never treats new data there as a leftover.
        self.write_meta(self.hard_state, self.snapshot.clone(), None)?;
        self.seg_ends.insert(seg.seq, loc.offset);
        self.active = seg;
        self.buf_base = loc.offset;
        self.dirty = false;
        self.last_index = from - 1;
        self.last_term = prev_term;
        debug!(from, "log truncated");
        Ok(())
    }

    /// Records a new compaction point and drops the entries it covers.
    fn purge(&mut self, snap: SnapshotMeta) -> Result<()> {
        let plan = plan_purge(&snap, self.snapshot.last_index, |i| {
            self.shared.read().term(i).ok()
        });
        if plan == PurgePlan::Nothing {
            return Ok(());
        }
        let keeps_suffix = plan == PurgePlan::KeepSuffix;
        self.write_meta(self.hard_state, snap.clone(), None)?;
        self.snapshot = snap.clone();
        if keeps_suffix {
            {
                let mut view = self.shared.write();
                let n = (snap.last_index - view.snapshot.last_index) as usize;
                view.locs.drain(..n);
                view.snapshot = snap.clone();
            }
            // A segment is entirely purged when the next one starts at or before the
            // first kept index.
            let bases: Vec<(u64, LogIndex)> = {
                let view = self.shared.read();
                view.segments
                    .values()
                    .map(|s| (s.seq, s.base_index))
                    .collect()
            };
            let dead: Vec<u64> = bases
                .windows(2)
                .filter(|w| w[1].1 <= snap.last_index + 1)
                .map(|w| w[0].0)
                .collect();
            self.delete_segments(&dead)?;
        } else {
            // The snapshot does not continue this log: start a fresh segment after it.
            self.rollover(snap.last_index + 1)?;
            self.active
                .file
                .sync_data()
                .map_err(|e| StorageError::io("syncing", &self.active.path, e))?;
            {
                let mut view = self.shared.write();
                view.locs.clear();
                view.snapshot = snap.clone();
            }
            let old: Vec<u64> = self
                .seg_ends
                .range(..self.active.seq)
                .map(|(s, _)| *s)
                .collect();
            self.delete_segments(&old)?;
            self.last_index = snap.last_index;
            self.last_term = snap.last_term;
        }
        debug!(upto = snap.last_index, keeps_suffix, "log prefix purged");
        Ok(())
    }

    fn delete_segments(&mut self, seqs: &[u64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        for s in seqs {
            self.seg_ends.remove(s);
            let seg = self.shared.write().segments.remove(s);
            if let Some(seg) = seg {
                io::remove_file(&seg.path)?;
            }
        }
        io::sync_dir(&self.shared.dir)
    }

    /// Syncs the active segment and switches to a new one whose first entry will be
    /// `base_index`.
    fn rollover(&mut self, base_index: LogIndex) -> Result<()> {
        self.sync_active()?;
        // A spare that could not be zero-filled for want of space is made again
        // (synchronously) until it can; a failed attempt gives its space back.
        let (spare_path, file) =
            self.until_space("preallocating a segment", |w| match w.spare.take() {
                Some(h) => h.join().unwrap_or_else(|_| {
                    Err(StorageError::Backend {
                        backend: "file log",
                        message: "segment preallocation thread panicked".into(),
                    })
                }),
                None => w.make_spare_now(),
            })?;
        let seq = self.next_seq;
        let path = self.shared.dir.join(format::segment_name(seq));
        file.write_all_at(&format::encode_segment_header(seq, base_index), 0)
            .map_err(|e| StorageError::io("writing segment header", &spare_path, e))?;
        std::fs::rename(&spare_path, &path)
            .map_err(|e| StorageError::io("activating segment", &path, e))?;
        io::sync_dir(&self.shared.dir)?;
        self.next_seq += 1;
        let seg = Arc::new(Segment {
            seq,
            base_index,
            path,
            file,
        });
        self.shared.write().segments.insert(seq, seg.clone());
        self.seg_ends.insert(seq, SEG_HEADER_BYTES as u64);
        self.active = seg;
        self.buf_base = SEG_HEADER_BYTES as u64;
        self.dirty = true;
        self.start_spare();
        Ok(())
    }

    fn spare_path(&mut self) -> PathBuf {
        // At most one spare exists at a time, so the name only has to differ from
        // segment names.
        self.spare_counter += 1;
        self.shared.dir.join(format!(
            "prealloc-{}-{}.spare",
            std::process::id(),
            self.spare_counter
        ))
    }

    fn make_spare_now(&mut self) -> Result<(PathBuf, std::fs::File)> {
        let path = self.spare_path();
        let file = io::create_spare(&path, self.options.segment_bytes)?;
        Ok((path, file))
    }

    /// Preallocates the next segment in the background.
    fn start_spare(&mut self) {
        let path = self.spare_path();
        let len = self.options.segment_bytes;
        let spawned = std::thread::Builder::new()
            .name("dengine-log-prealloc".into())
            .spawn(move || io::create_spare(&path, len).map(|f| (path, f)));
        // If no thread can be spawned, rollover preallocates synchronously.
        self.spare = spawned.ok();
    }
}
