//! Opening the log directory: scan every segment, repair a torn tail, refuse corruption.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tracing::{info, warn};

use super::format::{self, HeaderError, SEG_HEADER_BYTES};
use super::io;
use super::writer::Writer;
use super::{FileStorageOptions, Loc, Segment, Shared, View};
use crate::core::types::{LogIndex, SnapshotMeta, Term};
use crate::storage::dir_lock::DirLock;
use crate::storage::error::{Result, StorageError};

/// One segment as found on disk.
struct Scanned {
    seq: u64,
    path: PathBuf,
    base: LogIndex,
    /// `(term, index, offset, size)` of each valid record.
    records: Vec<(Term, LogIndex, u64, u32)>,
    /// Offset just after the last valid record.
    data_end: u64,
    /// Non-zero bytes after the last record, judged a torn write: `(from, to)`.
    torn: Option<(u64, u64)>,
    /// The header never reached disk (only possible for the last segment).
    missing_header: bool,
}

impl Scanned {
    fn next_index(&self) -> LogIndex {
        self.records.last().map_or(self.base, |r| r.1 + 1)
    }
}

fn scan_segment(
    path: &Path,
    seq: u64,
    is_last: bool,
    zeroing: Option<io::Zeroing>,
) -> Result<Scanned> {
    let buf = fs::read(path).map_err(|e| StorageError::io("reading", path, e))?;
    let mut s = Scanned {
        seq,
        path: path.to_path_buf(),
        base: 0,
        records: Vec::new(),
        data_end: SEG_HEADER_BYTES as u64,
        torn: None,
        missing_header: false,
    };
    match format::parse_segment_header(&buf) {
        Ok((hseq, base)) if hseq == seq => s.base = base,
        Ok((hseq, _)) => {
            return Err(StorageError::corrupt(
                path,
                16,
                format!("header names segment {hseq}"),
            ));
        }
        // The rename into place happened but the header write did not reach disk.
        Err(HeaderError::Missing) if is_last && all_zero(&buf) => {
            s.missing_header = true;
            return Ok(s);
        }
        Err(HeaderError::Missing) => {
            return Err(StorageError::corrupt(path, 0, "missing segment header"));
        }
        Err(HeaderError::Bad(why)) => return Err(StorageError::corrupt(path, 0, why)),
    }
    let mut off = SEG_HEADER_BYTES;
    let mut prev_term = 0;
    let why = loop {
        let rec = match format::parse_record(&buf, off) {
            Ok(r) => r,
            Err(why) => break why,
        };
        let expected = s.base + s.records.len() as u64;
        if rec.index != expected || rec.term < prev_term {
            return Err(StorageError::corrupt(
                path,
                off as u64,
                format!(
                    "record index {} term {} where index {expected} with term >= {prev_term} was expected",
                    rec.index, rec.term
                ),
            ));
        }
        s.records
            .push((rec.term, rec.index, off as u64, rec.size as u32));
        prev_term = rec.term;
        off += rec.size;
    };
    s.data_end = off as u64;
    if all_zero(&buf[off.min(buf.len())..]) {
        return Ok(s);
    }
    // An unfinished truncation: whatever lies in the range being zeroed is leftover
    // (zeros may have reached disk out of order, old records behind them).
    if let Some(z) = zeroing
        && (z.from as usize) <= off
        && off < z.to as usize
    {
        let to = (z.to as usize).min(buf.len());
        if all_zero(&buf[to..]) {
            s.torn = Some((off as u64, to as u64));
            return Ok(s);
        }
        if is_last && !format::valid_record_after(&buf, to - 1) {
            s.torn = Some((off as u64, buf.len() as u64));
            return Ok(s);
        }
    }
    // Bytes that are neither a record nor preallocated zeros.
    if is_last && !format::valid_record_after(&buf, off) {
        s.torn = Some((off as u64, buf.len() as u64));
        return Ok(s);
    }
    let reason = if is_last {
        format!("{why}, but valid records follow (damage in the middle of the log)")
    } else {
        format!("{why} in a sealed segment (only the last segment can have a torn tail)")
    };
    Err(StorageError::corrupt(path, off as u64, reason))
}

fn all_zero(b: &[u8]) -> bool {
    // Word at a time: the preallocated tail can be tens of megabytes.
    let mut words = b.chunks_exact(8);
    words
        .by_ref()
        .all(|w| u64::from_ne_bytes(<[u8; 8]>::try_from(w).unwrap_or([1; 8])) == 0)
        && words.remainder().iter().all(|x| *x == 0)
}

/// Opens the directory, returning the readers' view and the writer to run.
pub(crate) fn open(dir: &Path, options: FileStorageOptions) -> Result<(Arc<Shared>, Writer)> {
    if options.segment_bytes < 4096
        || !options.segment_bytes.is_multiple_of(8)
        || options.segment_bytes > u32::MAX as u64
    {
        return Err(StorageError::InvalidRequest(format!(
            "segment_bytes must be a multiple of 8 in 4096..=4GiB, not {}",
            options.segment_bytes
        )));
    }
    let started = Instant::now();
    io::ensure_dir(dir)?;
    // Before anything is read or repaired: what looks like a torn tail or a leftover
    // temp file may be another live process's write in progress.
    let lock = DirLock::acquire(dir)?;
    let meta = io::read_meta(dir)?.unwrap_or_default();
    let (hard_state, snapshot) = (meta.hard_state, meta.snapshot.clone());
    let mut seqs = Vec::new();
    let mut adopted_spare = None;
    let listing = fs::read_dir(dir).map_err(|e| StorageError::io("listing", dir, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| StorageError::io("listing", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.ends_with(".spare") {
            // Spares are renamed to `.spare` only once fully zeroed and synced; one of
            // the right size is reused (its bytes are zeros, or a header that the next
            // activation overwrites).
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if adopted_spare.is_none() && len == options.segment_bytes {
                adopted_spare = Some(path);
            } else {
                io::remove_file(&path)?;
            }
        } else if name.ends_with(".tmp") {
            // Unfinished preallocation or atomic write from before a crash.
            io::remove_file(&path)?;
        } else if let Some(seq) = format::parse_segment_name(&name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    let mut scanned = Vec::with_capacity(seqs.len());
    for (i, seq) in seqs.iter().enumerate() {
        let path = dir.join(format::segment_name(*seq));
        let zeroing = meta.zeroing.filter(|z| z.seq == *seq);
        scanned.push(scan_segment(&path, *seq, i + 1 == seqs.len(), zeroing)?);
    }
    let max_seq = seqs.last().copied().unwrap_or(0);
    let kept = drop_dead_segments(dir, scanned, &snapshot)?;
    check_continuity(&kept, &snapshot)?;
    let (shared, writer) = build(
        dir,
        options,
        kept,
        (hard_state, snapshot),
        max_seq,
        adopted_spare,
        lock,
    )?;
    if meta.zeroing.is_some() {
        // The unfinished truncation's range was zeroed and synced by `build`.
        io::write_meta(
            dir,
            &io::Meta {
                zeroing: None,
                ..meta
            },
        )?;
        warn!(dir = %dir.display(), "finished a truncation interrupted by a crash");
    }
    let view = shared.read();
    info!(
        dir = %dir.display(),
        first = view.first_index(),
        last = view.last_index(),
        segments = view.segments.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "log recovered"
    );
    drop(view);
    Ok((shared, writer))
}

/// Deletes a headerless last segment and segments entirely covered by the snapshot.
fn drop_dead_segments(
    dir: &Path,
    scanned: Vec<Scanned>,
    snap: &SnapshotMeta,
) -> Result<Vec<Scanned>> {
    let mut removed = false;
    let mut live = Vec::with_capacity(scanned.len());
    for s in scanned {
        if s.missing_header {
            io::remove_file(&s.path)?;
            removed = true;
        } else {
            live.push(s);
        }
    }
    // Only segments with a header have a base index to compare with.
    let bases: Vec<LogIndex> = live.iter().map(|s| s.base).collect();
    let mut kept = Vec::with_capacity(live.len());
    for (i, s) in live.into_iter().enumerate() {
        let purged = bases
            .get(i + 1)
            .is_some_and(|next| *next <= snap.last_index + 1);
        if purged {
            io::remove_file(&s.path)?;
            removed = true;
        } else {
            kept.push(s);
        }
    }
    if removed {
        io::sync_dir(dir)?;
    }
    Ok(kept)
}

fn check_continuity(kept: &[Scanned], snap: &SnapshotMeta) -> Result<()> {
    for w in kept.windows(2) {
        if w[1].base != w[0].next_index() {
            return Err(StorageError::corrupt(
                &w[1].path,
                24,
                format!(
                    "segment starts at index {} but the previous one ends before {}",
                    w[1].base,
                    w[0].next_index()
                ),
            ));
        }
    }
    // The first entry after the snapshot must be there if anything after it is.
    if let Some(first) = kept.first()
        && first.base > snap.last_index + 1
    {
        return Err(StorageError::corrupt(
            &first.path,
            24,
            format!(
                "log resumes at index {} but the snapshot covers only up to {}",
                first.base, snap.last_index
            ),
        ));
    }
    Ok(())
}

fn build(
    dir: &Path,
    options: FileStorageOptions,
    kept: Vec<Scanned>,
    (hard_state, snapshot): (crate::core::types::HardState, SnapshotMeta),
    max_seq: u64,
    adopted_spare: Option<PathBuf>,
    lock: DirLock,
) -> Result<(Arc<Shared>, Writer)> {
    let mut locs = VecDeque::new();
    let mut segments = BTreeMap::new();
    let mut seg_ends = BTreeMap::new();
    // The log must continue right after the snapshot; if it ends before it (a crash
    // during a purge of the whole log), start over in a fresh segment.
    let usable = kept
        .last()
        .is_some_and(|s| s.next_index() > snapshot.last_index);
    let mut active_end = SEG_HEADER_BYTES as u64;
    if usable {
        for s in &kept {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&s.path)
                .map_err(|e| StorageError::io("opening", &s.path, e))?;
            if let Some((from, to)) = s.torn {
                warn!(
                    file = %s.path.display(),
                    offset = from,
                    bytes = to - from,
                    "torn write at the tail of the log (never acknowledged); truncating it"
                );
                io::zero_range(&file, &s.path, from, to)?;
                file.sync_data()
                    .map_err(|e| StorageError::io("syncing", &s.path, e))?;
            }
            for &(term, index, offset, size) in &s.records {
                if index > snapshot.last_index {
                    locs.push_back(Loc {
                        term,
                        seq: s.seq,
                        offset,
                        size,
                    });
                }
            }
            seg_ends.insert(s.seq, s.data_end);
            active_end = s.data_end;
            segments.insert(
                s.seq,
                Arc::new(Segment {
                    seq: s.seq,
                    base_index: s.base,
                    path: s.path.clone(),
                    file,
                }),
            );
        }
    } else {
        for s in &kept {
            io::remove_file(&s.path)?;
        }
        let seq = max_seq + 1;
        let seg = create_segment(dir, seq, snapshot.last_index + 1, options.segment_bytes)?;
        seg_ends.insert(seq, SEG_HEADER_BYTES as u64);
        segments.insert(seq, Arc::new(seg));
    }
    let active = segments
        .values()
        .next_back()
        .cloned()
        .expect("one segment at least");
    let last = locs
        .back()
        .map_or((snapshot.last_index, snapshot.last_term), |l| {
            (snapshot.last_index + locs.len() as u64, l.term)
        });
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        no_space: Default::default(),
        closing: Default::default(),
        _lock: lock,
        view: RwLock::new(View {
            hard_state,
            snapshot: snapshot.clone(),
            locs,
            segments,
        }),
    });
    let writer = Writer::new(
        shared.clone(),
        options,
        active,
        active_end,
        seg_ends,
        last,
        hard_state,
        snapshot,
        adopted_spare,
    );
    Ok((shared, writer))
}

/// Creates, preallocates and activates segment `seq` synchronously.
fn create_segment(dir: &Path, seq: u64, base: LogIndex, len: u64) -> Result<Segment> {
    let spare = dir.join(format!("{seq:016x}.seg.tmp"));
    let file = io::create_zeroed(&spare, len)?;
    let path = dir.join(format::segment_name(seq));
    file.write_all_at(&format::encode_segment_header(seq, base), 0)
        .and_then(|_| file.sync_data())
        .map_err(|e| StorageError::io("writing segment header", &spare, e))?;
    fs::rename(&spare, &path).map_err(|e| StorageError::io("activating segment", &path, e))?;
    io::sync_dir(dir)?;
    Ok(Segment {
        seq,
        base_index: base,
        path,
        file,
    })
}
