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
///
/// # Snapshots are streams
///
/// A snapshot may be far larger than memory, so it moves as a stream of chunks, and a
/// state machine of your own should keep it that way:
///
/// - [`build_snapshot`](Self::build_snapshot) fixes a consistent point (whole batches
///   only), makes the image durable and returns a [`Snapshot`] whose `chunks` read it
///   a chunk at a time (e.g. from the image file), so what the stream holds in memory
///   is a few chunks, not the image. Hold the apply lock only as long as fixing the
///   point takes if your store has point-in-time views (the RocksDB backend does);
///   the built-in file backend encodes under its lock, since its state is one map.
/// - [`install_snapshot`](Self::install_snapshot) consumes `chunks` as they come,
///   writing what they hold somewhere the live state does not see (a staging file,
///   table or map), and verifies the image (its own checksum and format, and that it
///   covers `meta`) once the stream ended. Only then does it switch to the new state,
///   atomically: a reader sees the old state or the new one, a crash leaves one of
///   them. On any error, a chunk that is `Err` included, the old state and its
///   snapshot stay as they were.
///
/// The transport checks each chunk and the whole transfer with its own CRC32C; the
/// image's format is the state machine's own business.
///
/// A minimal state machine (it counts applied entries; its image is the count, the
/// index and term it covers, and a checksum) that follows the contract:
///
/// ```
/// use std::sync::Mutex;
///
/// use bytes::Bytes;
/// use d_engine::core::types::{Entry, EntryPayload, SnapshotMeta};
/// use d_engine::storage::{Result, Snapshot, StateMachine, StorageError};
///
/// #[derive(Default)]
/// struct Counter {
///     /// (applied meta, entries counted)
///     live: Mutex<(SnapshotMeta, u64)>,
///     durable: Mutex<Option<(SnapshotMeta, Bytes)>>,
/// }
///
/// fn image(meta: &SnapshotMeta, count: u64) -> Bytes {
///     let mut b = Vec::new();
///     for v in [count, meta.last_index, meta.last_term] {
///         b.extend_from_slice(&v.to_le_bytes());
///     }
///     let sum = b.iter().fold(0u64, |s, x| s.wrapping_mul(31).wrapping_add(*x as u64));
///     b.extend_from_slice(&sum.to_le_bytes());
///     Bytes::from(b)
/// }
///
/// fn word(b: &[u8], i: usize) -> u64 {
///     u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap())
/// }
///
/// impl Counter {
///     fn stream(meta: SnapshotMeta, img: Bytes) -> Snapshot {
///         // Chunks of 8 bytes: a real image is read from its file chunk by chunk.
///         let chunks: Vec<Result<Bytes>> =
///             img.chunks(8).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
///         let size_bytes = img.len() as u64;
///         Snapshot { meta, size_bytes, checksum: 0, chunks: Box::new(chunks.into_iter()) }
///     }
/// }
///
/// impl StateMachine for Counter {
///     fn apply(&self, entries: &[Entry]) -> Result<Vec<Bytes>> {
///         let mut live = self.live.lock().unwrap();
///         for e in entries {
///             if e.index <= live.0.last_index {
///                 continue; // applied before (a replay)
///             }
///             if e.index != live.0.last_index + 1 {
///                 return Err(StorageError::InvalidRequest(format!("gap before {}", e.index)));
///             }
///             if let EntryPayload::Config(m) = &e.payload {
///                 live.0.membership = m.clone();
///             }
///             live.0.last_index = e.index;
///             live.0.last_term = e.term;
///             live.1 += 1;
///         }
///         Ok(vec![Bytes::new(); entries.len()])
///     }
///     fn applied(&self) -> SnapshotMeta {
///         self.live.lock().unwrap().0.clone()
///     }
///     fn durable_meta(&self) -> SnapshotMeta {
///         self.durable.lock().unwrap().as_ref().map(|d| d.0.clone()).unwrap_or_default()
///     }
///     fn build_snapshot(&self) -> Result<Snapshot> {
///         let (meta, count) = self.live.lock().unwrap().clone();
///         let img = image(&meta, count);
///         *self.durable.lock().unwrap() = Some((meta.clone(), img.clone()));
///         Ok(Self::stream(meta, img))
///     }
///     fn current_snapshot(&self) -> Result<Option<Snapshot>> {
///         Ok(self.durable.lock().unwrap().clone().map(|(m, i)| Self::stream(m, i)))
///     }
///     fn install_snapshot(
///         &self,
///         meta: &SnapshotMeta,
///         chunks: &mut dyn Iterator<Item = Result<Bytes>>,
///     ) -> Result<()> {
///         // Staged apart from the live state (here a 32-byte buffer; in general a
///         // file or a table written as the chunks arrive).
///         let mut staged = Vec::new();
///         for c in chunks {
///             staged.extend_from_slice(&c?);
///             if staged.len() > 32 {
///                 return Err(StorageError::InvalidRequest("image too long".into()));
///             }
///         }
///         let bad = |why: &str| StorageError::InvalidRequest(format!("bad image: {why}"));
///         if staged.len() != 32 {
///             return Err(bad("length"));
///         }
///         let covers = SnapshotMeta {
///             last_index: word(&staged, 1),
///             last_term: word(&staged, 2),
///             ..Default::default()
///         };
///         if image(&covers, word(&staged, 0)) != staged {
///             return Err(bad("checksum"));
///         }
///         if (word(&staged, 1), word(&staged, 2)) != (meta.last_index, meta.last_term) {
///             return Err(bad("covers another index"));
///         }
///         // Verified: switch under the lock, so readers see old or new, never a mix.
///         let count = word(&staged, 0);
///         let mut live = self.live.lock().unwrap();
///         *self.durable.lock().unwrap() = Some((meta.clone(), Bytes::from(staged)));
///         *live = (meta.clone(), count);
///         Ok(())
///     }
///     fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
///         let count = self.live.lock().unwrap().1;
///         Ok((key == b"count").then(|| Bytes::from(count.to_string())))
///     }
///     fn range(&self, _: &[u8], _: Option<&[u8]>, _: usize) -> Result<Vec<(Bytes, Bytes)>> {
///         Ok(Vec::new())
///     }
/// }
///
/// let noop = |index| Entry { term: 1, index, payload: EntryPayload::Noop };
/// let a = Counter::default();
/// a.apply(&[noop(1), noop(2), noop(3)])?;
/// let snap = a.build_snapshot()?;
/// let b = Counter::default();
/// // A stream that fails midway changes nothing.
/// let cut = std::iter::once(Err(StorageError::InvalidRequest("cut".into())));
/// let mut failing = snap.chunks.take(2).chain(cut);
/// assert!(b.install_snapshot(&snap.meta, &mut failing).is_err());
/// assert_eq!(b.last_applied(), 0);
/// let mut chunks = a.current_snapshot()?.unwrap().chunks;
/// b.install_snapshot(&snap.meta, &mut chunks)?;
/// assert_eq!(b.get(b"count")?, Some(Bytes::from("3")));
/// assert_eq!(b.applied(), a.applied());
/// # Ok::<(), StorageError>(())
/// ```
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
