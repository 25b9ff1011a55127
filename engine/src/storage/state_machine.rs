//! The `StateMachine` trait: applies committed entries, serves reads, and moves
//! snapshots in and out as chunk streams.

use bytes::Bytes;

use crate::core::types::{Entry, LogIndex, SnapshotMeta};

use super::error::Result;
use super::kv::prefix_end;

/// A stream of snapshot chunks. Reading it may block on disk: the runtime drives it
/// from a blocking task, not from the event loop.
pub type SnapshotChunks = Box<dyn Iterator<Item = Result<Bytes>> + Send>;

/// A snapshot ready to be sent: what it covers, its total size and checksum (the
/// CRC32C stored in the image's trailer, which the receiver re-verifies), and its bytes
/// as chunks.
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub size_bytes: u64,
    pub checksum: u32,
    pub chunks: SnapshotChunks,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("meta", &self.meta)
            .field("size_bytes", &self.size_bytes)
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

/// Default size of one snapshot chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 256 * 1024;

/// The replicated state machine.
///
/// Methods block (on a lock or on disk) for at most one batch: the runtime calls them
/// from a blocking task or a dedicated thread.
pub trait StateMachine: Send + Sync + 'static {
    /// Applies committed `entries` in order and returns one result per entry (empty
    /// bytes for no-ops and configuration entries; an encoded
    /// [`KvResult`](super::kv::KvResult) for KV commands).
    ///
    /// Contract: entries are consecutive. Entries at or below [`applied`](Self::applied)
    /// were applied before (e.g. replayed after a restart) and are skipped; their result
    /// is empty. A gap after the last applied index is `InvalidRequest`. A command that
    /// cannot be decoded is not an error: it yields a `Rejected` result on every replica.
    /// A client session's `(client_id, seq)` is applied at most once; a retry returns
    /// the stored result.
    fn apply(&self, entries: &[Entry]) -> Result<Vec<Bytes>>;

    /// Last applied index and term, and the membership in force there.
    fn applied(&self) -> SnapshotMeta;

    /// Last applied index.
    fn last_applied(&self) -> LogIndex {
        self.applied().last_index
    }

    /// What the newest durable snapshot covers (index 0 when there is none). The log
    /// may be purged only up to `durable_meta().last_index`. After a restart
    /// `last_applied() >= durable_meta().last_index` (equal for the file backend, which
    /// is durable only through snapshots; RocksDB keeps every applied batch), and the
    /// node replays the log from `last_applied() + 1`.
    fn durable_meta(&self) -> SnapshotMeta;

    /// Makes the current applied state durable as a snapshot (data, session table and
    /// last applied index together) and returns it as a stream, e.g. to compact the log
    /// up to `meta.last_index` and to send it to a follower.
    fn build_snapshot(&self) -> Result<Snapshot>;

    /// The newest durable snapshot as a stream, if any (to send to a lagging follower
    /// without building a new one).
    fn current_snapshot(&self) -> Result<Option<Snapshot>>;

    /// Replaces the whole state with a snapshot received as chunks. The image is
    /// verified (checksum, format, and that it covers `meta.last_index`) before anything
    /// changes: on error the old state stays in place.
    fn install_snapshot(
        &self,
        meta: &SnapshotMeta,
        chunks: &mut dyn Iterator<Item = Result<Bytes>>,
    ) -> Result<()>;

    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;

    /// Up to `limit` pairs with `start <= key < end` (`None` = unbounded), ordered by key.
    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<(Bytes, Bytes)>>;

    /// Up to `limit` pairs whose key starts with `prefix`, ordered by key.
    fn prefix_scan(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Bytes, Bytes)>> {
        let end = prefix_end(prefix);
        self.range(prefix, end.as_deref(), limit)
    }
}

/// Splits an in-memory image into chunks.
pub(crate) fn chunks_of(image: Bytes, chunk: usize) -> SnapshotChunks {
    let chunk = chunk.max(1);
    let n = image.len().div_ceil(chunk);
    Box::new((0..n).map(move |i| Ok(image.slice(i * chunk..((i + 1) * chunk).min(image.len())))))
}

/// Reads an open image file as chunks of `chunk` bytes, one chunk in memory at a time.
pub(crate) fn file_chunks(
    mut file: std::fs::File,
    path: std::path::PathBuf,
    chunk: usize,
) -> SnapshotChunks {
    use std::io::Read;
    let mut done = false;
    Box::new(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut buf = vec![0u8; chunk.max(1)];
        let mut n = 0;
        while n < buf.len() {
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    done = true;
                    return Some(Err(super::StorageError::io("reading", &path, e)));
                }
            }
        }
        if n < buf.len() {
            done = true;
        }
        if n == 0 {
            return None;
        }
        buf.truncate(n);
        Some(Ok(Bytes::from(buf)))
    }))
}

/// Concatenates a chunk stream, refusing images larger than `max_bytes`.
pub(crate) fn collect_chunks(
    chunks: &mut dyn Iterator<Item = Result<Bytes>>,
    max_bytes: u64,
) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    for c in chunks {
        let c = c?;
        if (buf.len() + c.len()) as u64 > max_bytes {
            return Err(super::StorageError::InvalidRequest(format!(
                "snapshot larger than {max_bytes} bytes"
            )));
        }
        buf.extend_from_slice(&c);
    }
    Ok(buf)
}
