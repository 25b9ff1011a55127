//! [`FileStateMachine`]: the KV state in memory, made durable by snapshot files.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use tracing::{info, warn};

use super::image::{
    FileSink, ImageWriter, TempFile, check_covers, decode_file, decode_stream,
    file_size_and_checksum,
};
use super::io;
use crate::core::types::{Entry, LogIndex, NodeId, SnapshotMeta, Term};
use crate::storage::dir_lock::DirLock;
use crate::storage::error::{Result, StorageError};
use crate::storage::kv::{KvState, LockedKv};
use crate::storage::state_machine::{SNAPSHOT_CHUNK_BYTES, Snapshot, StateMachine, file_chunks};

/// Snapshot files kept on disk (the newest and one fallback).
const SNAPSHOTS_KEPT: usize = 2;

#[derive(Clone, Debug)]
struct DurableSnapshot {
    meta: SnapshotMeta,
    path: PathBuf,
    size: u64,
    checksum: u32,
}

/// The key-value state machine kept in an ordered in-memory map and persisted as
/// checksummed snapshot files (`snap-<index>-<term>.snap`, written temp + fsync +
/// rename + dir fsync). Between snapshots the Raft log is the durable copy: after a
/// restart the state is the newest valid snapshot ([`StateMachine::durable_meta`])
/// and the node replays the log after it.
pub struct FileStateMachine {
    dir: PathBuf,
    /// One process per directory, for as long as this is open.
    _lock: DirLock,
    node_id: NodeId,
    state: LockedKv,
    durable: Mutex<Option<DurableSnapshot>>,
    /// Held by a build or an install for its whole file work: one snapshot file is
    /// written at a time.
    snapshot_io: Mutex<()>,
}

fn snapshot_name(index: LogIndex, term: Term) -> String {
    format!("snap-{index:020}-{term:020}.snap")
}

fn parse_snapshot_name(name: &str) -> Option<(LogIndex, Term)> {
    let rest = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (i, t) = rest.split_once('-')?;
    Some((i.parse().ok()?, t.parse().ok()?))
}

impl FileStateMachine {
    /// Opens (or creates) the state machine in directory `path`, loading the newest
    /// valid snapshot. `async` for the seed's signature; the work is done synchronously
    /// (a few file reads at start-up).
    pub async fn new(path: impl AsRef<Path>, node_id: NodeId) -> Result<Self> {
        Self::open(path, node_id)
    }

    /// The blocking form of [`FileStateMachine::new`].
    pub fn open(path: impl AsRef<Path>, node_id: NodeId) -> Result<Self> {
        let dir = path.as_ref().to_path_buf();
        io::ensure_dir(&dir)?;
        // Before the clean-up below: a `.tmp` may be another live process's snapshot
        // being written.
        let lock = DirLock::acquire(&dir)?;
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| StorageError::io("listing", &dir, e))? {
            let entry = entry.map_err(|e| StorageError::io("listing", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                io::remove_file(&entry.path())?;
            } else if let Some(key) = parse_snapshot_name(&name) {
                found.push((key, entry.path()));
            }
        }
        found.sort_by_key(|b| std::cmp::Reverse(b.0));
        let mut loaded = None;
        for (_, path) in &found {
            match load(path) {
                Ok(v) => {
                    loaded = Some(v);
                    break;
                }
                Err(e) => warn!(node_id, error = %e, "skipping unreadable snapshot"),
            }
        }
        if loaded.is_none() && !found.is_empty() {
            warn!(node_id, dir = %dir.display(), "no valid snapshot; starting from an empty state");
        }
        let (state, durable) = match loaded {
            Some((state, d)) => (state, Some(d)),
            None => (KvState::default(), None),
        };
        info!(node_id, dir = %dir.display(), last_applied = state.applied.last_index, "state machine opened");
        Ok(FileStateMachine {
            dir,
            _lock: lock,
            node_id,
            state: LockedKv::new(state),
            durable: Mutex::new(durable),
            snapshot_io: Mutex::new(()),
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    fn snapshot_from(d: &DurableSnapshot) -> Result<Snapshot> {
        let file = File::open(&d.path).map_err(|e| StorageError::io("opening", &d.path, e))?;
        Ok(Snapshot {
            meta: d.meta.clone(),
            size_bytes: d.size,
            checksum: d.checksum,
            chunks: file_chunks(file, d.path.clone(), SNAPSHOT_CHUNK_BYTES),
        })
    }

    /// Renames a synced image file into place as the newest snapshot and forgets
    /// older ones.
    fn persist(
        &self,
        meta: &SnapshotMeta,
        tmp: TempFile,
        size: u64,
        checksum: u32,
    ) -> Result<DurableSnapshot> {
        let path = self
            .dir
            .join(snapshot_name(meta.last_index, meta.last_term));
        tmp.persist(&path)?;
        let d = DurableSnapshot {
            meta: meta.clone(),
            path,
            size,
            checksum,
        };
        *self.durable.lock().unwrap_or_else(|e| e.into_inner()) = Some(d.clone());
        self.prune(&d.path);
        Ok(d)
    }

    fn temp_path(&self, meta: &SnapshotMeta, what: &str) -> PathBuf {
        let name = snapshot_name(meta.last_index, meta.last_term);
        self.dir.join(format!("{name}.{what}.tmp"))
    }

    fn prune(&self, newest: &Path) {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut all: Vec<_> = listing
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let key = parse_snapshot_name(&e.file_name().to_string_lossy())?;
                Some((key, e.path()))
            })
            .collect();
        all.sort_by_key(|b| std::cmp::Reverse(b.0));
        for (_, path) in all.into_iter().skip(SNAPSHOTS_KEPT) {
            if path != newest {
                let _ = io::remove_file(&path);
            }
        }
    }
}

fn load(path: &Path) -> Result<(KvState, DurableSnapshot)> {
    let mut data = std::collections::BTreeMap::new();
    let img = decode_file(path, &mut |k, v| {
        data.insert(Bytes::copy_from_slice(k), Bytes::copy_from_slice(v));
        Ok(())
    })
    .map_err(|e| match e {
        StorageError::Decode { reason, .. } => StorageError::corrupt(path, 0, reason),
        e => e,
    })?;
    let file = File::open(path).map_err(|e| StorageError::io("opening", path, e))?;
    let (size, checksum) = file_size_and_checksum(&file, path)?;
    let d = DurableSnapshot {
        meta: img.meta.clone(),
        path: path.to_path_buf(),
        size,
        checksum,
    };
    let state = KvState {
        data,
        sessions: img.sessions,
        applied: img.meta,
    };
    Ok((state, d))
}

impl StateMachine for FileStateMachine {
    fn apply(&self, entries: &[Entry]) -> Result<Vec<Bytes>> {
        self.state.apply(entries)
    }

    fn applied(&self) -> SnapshotMeta {
        self.state.applied()
    }

    fn durable_meta(&self) -> SnapshotMeta {
        self.durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|d| d.meta.clone())
            .unwrap_or_default()
    }

    fn build_snapshot(&self) -> Result<Snapshot> {
        let _io = self.snapshot_io.lock().unwrap_or_else(|e| e.into_inner());
        // The image is encoded straight into the file, but under the state's read
        // lock: applies wait for the whole encode (the state is one in-memory map; a
        // copy-on-write view that would free them is not built). The fsync and rename
        // happen after the lock is released.
        let (meta, written) = self.state.with_read(|st| -> Result<_> {
            let mut w = ImageWriter::create(self.temp_path(&st.applied, "build"), &st.applied)?;
            for (id, rec) in &st.sessions {
                w.session(*id, rec)?;
            }
            w.end_sessions();
            for (k, v) in &st.data {
                w.pair(k, v)?;
            }
            Ok((st.applied.clone(), w))
        })?;
        let img = written.finish()?;
        let d = self.persist(&meta, img.tmp, img.size, img.checksum)?;
        Self::snapshot_from(&d)
    }

    fn current_snapshot(&self) -> Result<Option<Snapshot>> {
        let d = self
            .durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        d.as_ref().map(Self::snapshot_from).transpose()
    }

    fn install_snapshot(
        &self,
        meta: &SnapshotMeta,
        chunks: &mut dyn Iterator<Item = Result<Bytes>>,
    ) -> Result<()> {
        let _io = self.snapshot_io.lock().unwrap_or_else(|e| e.into_inner());
        // Decoded into a new map and copied into a temporary file as the chunks
        // arrive; the live state and files change only once the whole image checked.
        let mut sink = FileSink::create(self.temp_path(meta, "install"))?;
        let mut data = std::collections::BTreeMap::new();
        let img = decode_stream(chunks, &mut |c| sink.write(c), &mut |k, v| {
            data.insert(Bytes::copy_from_slice(k), Bytes::copy_from_slice(v));
            Ok(())
        })?;
        check_covers(&img.meta, meta)?;
        let (tmp, size) = sink.sync()?;
        self.persist(meta, tmp, size, img.checksum)?;
        self.state.replace(KvState {
            data,
            sessions: img.sessions,
            applied: img.meta,
        });
        info!(
            node_id = self.node_id,
            last_index = meta.last_index,
            "snapshot installed"
        );
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.state.get(key))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<(Bytes, Bytes)>> {
        Ok(self.state.range(start, end, limit))
    }
}
