//! [`RocksDBStateMachine`]: the KV state in RocksDB. Data, session records and the last
//! applied index of a batch go into one write batch, so they are always consistent.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use rocksdb::{
    ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};

use super::db_err;
use crate::core::types::{Entry, SessionKey, SnapshotMeta};
use crate::storage::codec::{self, Reader, Writer};
use crate::storage::dir_lock::DirLock;
use crate::storage::error::{Result, StorageError};
use crate::storage::file::io::{ensure_dir, remove_file, write_atomic};
use crate::storage::kv::{Applier, ImageEncoder, KvStore, decode_image, image_checksum};
use crate::storage::session_table::{SessionRecord, SessionTable};
use crate::storage::state_machine::{
    SNAPSHOT_CHUNK_BYTES, Snapshot, StateMachine, chunks_of, collect_chunks,
};

const CF_DATA: &str = "data";
const CF_SESSIONS: &str = "sessions";
const CF_META: &str = "meta";
const KEY_APPLIED: &[u8] = b"applied";
const KEY_DURABLE: &[u8] = b"snapshot";
const SNAPSHOT_FILE: &str = "snapshot.img";
const SNAPSHOT_BYTES_MAX: u64 = 8 << 30;

/// The applier's in-memory copy of the replicated bookkeeping.
struct ApplyState {
    sessions: SessionTable,
    applied: SnapshotMeta,
    durable: SnapshotMeta,
}

/// The KV state machine stored in RocksDB (`db/`), with the newest snapshot image kept
/// as a file next to it for streaming to followers.
pub struct RocksDBStateMachine {
    db: DB,
    dir: PathBuf,
    db_path: PathBuf,
    /// Held while applying: one applier at a time, and snapshots see whole batches.
    state: Mutex<ApplyState>,
    /// One process per directory (last, so it is released after the database closes).
    _lock: DirLock,
}

/// Pending writes of a batch over the database, so later commands of the same batch
/// read what earlier ones wrote.
struct Overlay<'a> {
    db: &'a DB,
    cf: &'a rocksdb::ColumnFamily,
    pending: BTreeMap<Bytes, Option<Bytes>>,
    error: Option<rocksdb::Error>,
}

impl KvStore for Overlay<'_> {
    fn get(&mut self, key: &[u8]) -> Option<Bytes> {
        if let Some(v) = self.pending.get(key) {
            return v.clone();
        }
        match self.db.get_cf(self.cf, key) {
            Ok(v) => v.map(Bytes::from),
            Err(e) => {
                // `apply` fails the whole batch (nothing written) when this is set.
                self.error = Some(e);
                None
            }
        }
    }
    fn put(&mut self, key: Bytes, value: Bytes) {
        self.pending.insert(key, Some(value));
    }
    fn delete(&mut self, key: &Bytes) -> bool {
        let existed = match self.pending.get(key) {
            Some(v) => v.is_some(),
            None => match self.db.get_cf(self.cf, key) {
                Ok(v) => v.is_some(),
                Err(e) => {
                    self.error = Some(e);
                    false
                }
            },
        };
        self.pending.insert(key.clone(), None);
        existed
    }
}

/// A session's key in its column family: the client id (big-endian), then the lane
/// unless it is 0 (so lane-0 keys are the 8-byte keys of releases before lanes).
fn session_key((client_id, lane): SessionKey) -> Vec<u8> {
    let mut k = client_id.to_be_bytes().to_vec();
    if lane != 0 {
        k.extend_from_slice(&lane.to_be_bytes());
    }
    k
}

fn decode_session_key(k: &[u8]) -> std::result::Result<SessionKey, codec::DecodeError> {
    let id = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 bytes"));
    match k.len() {
        8 => Ok((id(k), 0)),
        12 => Ok((
            id(&k[..8]),
            u32::from_be_bytes(k[8..].try_into().expect("4 bytes")),
        )),
        n => Err(codec::DecodeError(format!("a session key of {n} bytes"))),
    }
}

fn encode_session(r: &SessionRecord) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer(&mut out);
    w.u8(codec::CODEC_VERSION);
    w.u64(r.last_seq);
    w.bytes(&r.last_result);
    w.u64(r.last_index);
    out
}

fn decode_session(b: &[u8]) -> std::result::Result<SessionRecord, codec::DecodeError> {
    let mut r = Reader::new(b);
    r.version("session record")?;
    let last_seq = r.u64()?;
    let last_result = Bytes::copy_from_slice(r.bytes()?);
    // Codec version 1 records have no index: 0 makes them the first to go.
    let last_index = if r.remaining() >= 8 { r.u64()? } else { 0 };
    r.finish("session record")?;
    Ok(SessionRecord {
        last_seq,
        last_result,
        last_index,
    })
}

impl RocksDBStateMachine {
    /// Opens (or creates) the state machine in directory `path`.
    pub fn new(path: impl AsRef<Path>) -> Result<Self> {
        let dir = path.as_ref().to_path_buf();
        ensure_dir(&dir)?;
        // RocksDB would refuse a second process too, but with a message that names
        // neither the holder nor the cause; and the snapshot temp file beside the
        // database is ours to protect.
        let lock = DirLock::acquire(&dir)?;
        let db_path = dir.join("db");
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_DATA, CF_SESSIONS, CF_META]
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, &db_path, cfs)
            .map_err(|e| db_err("opening rocksdb", &db_path, e))?;
        let corrupt = |what: &str, e: codec::DecodeError| StorageError::Corrupt {
            path: db_path.clone(),
            offset: 0,
            reason: format!("{what}: {}", e.0),
        };
        let meta_cf = db
            .cf_handle(CF_META)
            .expect("opened with this column family");
        let read_meta = |key: &[u8]| -> Result<SnapshotMeta> {
            match db
                .get_cf(meta_cf, key)
                .map_err(|e| db_err("reading", &db_path, e))?
            {
                Some(v) => codec::decode_snapshot_meta(&v).map_err(|e| corrupt("applied meta", e)),
                None => Ok(SnapshotMeta::default()),
            }
        };
        let applied = read_meta(KEY_APPLIED)?;
        let durable = read_meta(KEY_DURABLE)?;
        let mut sessions = SessionTable::default();
        let sess_cf = db
            .cf_handle(CF_SESSIONS)
            .expect("opened with this column family");
        for item in db.iterator_cf(sess_cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| db_err("reading", &db_path, e))?;
            let id = decode_session_key(&k).map_err(|e| corrupt("session key", e))?;
            sessions.insert(
                id,
                decode_session(&v).map_err(|e| corrupt("session record", e))?,
            );
        }
        Ok(RocksDBStateMachine {
            db,
            dir,
            db_path,
            state: Mutex::new(ApplyState {
                sessions,
                applied,
                durable,
            }),
            _lock: lock,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ApplyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StorageError::Backend {
                backend: "rocksdb",
                message: format!("column family {name} missing"),
            })
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db
            .write_opt(batch, &wo)
            .map_err(|e| db_err("writing", &self.db_path, e))
    }

    fn image_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    fn snapshot_from_file(&self, meta: SnapshotMeta) -> Result<Snapshot> {
        let path = self.image_path();
        let image = fs::read(&path).map_err(|e| StorageError::io("reading", &path, e))?;
        Ok(Snapshot {
            meta,
            size_bytes: image.len() as u64,
            checksum: image_checksum(&image).unwrap_or(0),
            chunks: chunks_of(Bytes::from(image), SNAPSHOT_CHUNK_BYTES),
        })
    }

    fn set_durable(&self, st: &mut ApplyState, meta: &SnapshotMeta) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_META)?,
            KEY_DURABLE,
            codec::encode_snapshot_meta(meta),
        );
        self.write(batch, true)?;
        st.durable = meta.clone();
        Ok(())
    }
}

impl RocksDBStateMachine {
    /// Applies a batch to `sessions` and `applied` and writes it as one RocksDB batch.
    fn apply_and_write(
        &self,
        sessions: &mut SessionTable,
        applied: &mut SnapshotMeta,
        entries: &[Entry],
    ) -> Result<Vec<Bytes>> {
        let data = self.cf(CF_DATA)?;
        let mut overlay = Overlay {
            db: &self.db,
            cf: data,
            pending: BTreeMap::new(),
            error: None,
        };
        let before = applied.last_index;
        let mut touched = Vec::new();
        let out = Applier { sessions, applied }
            .apply_batch(&mut overlay, entries, &mut |id| touched.push(id))?;
        if let Some(e) = overlay.error {
            return Err(db_err("reading", &self.db_path, e));
        }
        if applied.last_index == before {
            return Ok(out);
        }
        let mut batch = WriteBatch::default();
        for (k, v) in &overlay.pending {
            match v {
                Some(v) => batch.put_cf(data, k, v),
                None => batch.delete_cf(data, k),
            }
        }
        let sess_cf = self.cf(CF_SESSIONS)?;
        for id in touched {
            match sessions.get(id) {
                Some(r) => batch.put_cf(sess_cf, session_key(id), encode_session(r)),
                // Expired or evicted.
                None => batch.delete_cf(sess_cf, session_key(id)),
            }
        }
        batch.put_cf(
            self.cf(CF_META)?,
            KEY_APPLIED,
            codec::encode_snapshot_meta(applied),
        );
        // Not synced: the log holds these entries durably and is replayed after
        // `applied` if the tail of RocksDB's WAL is lost; the batch itself is atomic.
        self.write(batch, false)?;
        Ok(out)
    }
}

impl StateMachine for RocksDBStateMachine {
    fn apply(&self, entries: &[Entry]) -> Result<Vec<Bytes>> {
        let mut st = self.lock();
        // If the batch fails, memory must still match the database: the session table
        // journals what it changes (no copy of the whole table per batch) and the
        // applied meta is a copy until the write succeeded.
        let st = &mut *st;
        st.sessions.begin();
        let mut applied = st.applied.clone();
        match self.apply_and_write(&mut st.sessions, &mut applied, entries) {
            Ok(out) => {
                st.sessions.commit();
                st.applied = applied;
                Ok(out)
            }
            Err(e) => {
                st.sessions.rollback();
                Err(e)
            }
        }
    }

    fn applied(&self) -> SnapshotMeta {
        self.lock().applied.clone()
    }

    fn durable_meta(&self) -> SnapshotMeta {
        self.lock().durable.clone()
    }

    fn build_snapshot(&self) -> Result<Snapshot> {
        let mut st = self.lock();
        // A RocksDB snapshot taken under the apply lock sees whole batches only.
        let snap = self.db.snapshot();
        let meta = st.applied.clone();
        let mut enc = ImageEncoder::new(&meta);
        for (id, rec) in &st.sessions {
            enc.session(*id, rec);
        }
        enc.end_sessions();
        for item in snap.iterator_cf(self.cf(CF_DATA)?, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| db_err("reading", &self.db_path, e))?;
            enc.pair(&k, &v);
        }
        let image = enc.finish();
        write_atomic(&self.dir, SNAPSHOT_FILE, &image)?;
        // The data is flushed to disk too, so the durable point is real.
        self.db
            .flush_wal(true)
            .map_err(|e| db_err("syncing", &self.db_path, e))?;
        self.set_durable(&mut st, &meta)?;
        Ok(Snapshot {
            meta,
            size_bytes: image.len() as u64,
            checksum: image_checksum(&image).unwrap_or(0),
            chunks: chunks_of(Bytes::from(image), SNAPSHOT_CHUNK_BYTES),
        })
    }

    fn current_snapshot(&self) -> Result<Option<Snapshot>> {
        let durable = self.lock().durable.clone();
        if durable.last_index == 0 || !self.image_path().exists() {
            return Ok(None);
        }
        self.snapshot_from_file(durable).map(Some)
    }

    fn install_snapshot(
        &self,
        meta: &SnapshotMeta,
        chunks: &mut dyn Iterator<Item = Result<Bytes>>,
    ) -> Result<()> {
        let image = collect_chunks(chunks, SNAPSHOT_BYTES_MAX)?;
        // No apply may slip in between clearing the keys and writing the image.
        let mut st = self.lock();
        let data = self.cf(CF_DATA)?;
        let mut batch = WriteBatch::default();
        // Clear every current key: the range [empty key, last key) plus the last key.
        let last_key = self
            .db
            .iterator_cf(data, IteratorMode::End)
            .next()
            .transpose()
            .map_err(|e| db_err("reading", &self.db_path, e))?
            .map(|(k, _)| k);
        if let Some(last) = last_key {
            batch.delete_range_cf(data, &[][..], &last[..]);
            batch.delete_cf(data, &last[..]);
        }
        let (img_meta, sessions) = decode_image(&image, &mut |k, v| {
            batch.put_cf(data, k, v);
            Ok(())
        })
        .map_err(|e| StorageError::Decode {
            what: "snapshot image",
            reason: e.0,
        })?;
        if img_meta.last_index != meta.last_index || img_meta.last_term != meta.last_term {
            return Err(StorageError::Decode {
                what: "snapshot image",
                reason: format!(
                    "image covers index {} term {}, expected index {} term {}",
                    img_meta.last_index, img_meta.last_term, meta.last_index, meta.last_term
                ),
            });
        }
        let sess_cf = self.cf(CF_SESSIONS)?;
        batch.delete_range_cf(sess_cf, &[0u8; 8][..], &[0xffu8; 9][..]);
        for (id, r) in &sessions {
            batch.put_cf(sess_cf, session_key(*id), encode_session(r));
        }
        let meta_cf = self.cf(CF_META)?;
        batch.put_cf(meta_cf, KEY_APPLIED, codec::encode_snapshot_meta(&img_meta));
        batch.put_cf(meta_cf, KEY_DURABLE, codec::encode_snapshot_meta(&img_meta));
        write_atomic(&self.dir, SNAPSHOT_FILE, &image)?;
        self.write(batch, true)?;
        st.sessions = sessions;
        st.applied = img_meta.clone();
        st.durable = img_meta;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let v = self
            .db
            .get_cf(self.cf(CF_DATA)?, key)
            .map_err(|e| db_err("reading", &self.db_path, e))?;
        Ok(v.map(Bytes::from))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<(Bytes, Bytes)>> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_DATA)?,
            IteratorMode::From(start, Direction::Forward),
        );
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| db_err("reading", &self.db_path, e))?;
            if end.is_some_and(|e| k.as_ref() >= e) {
                break;
            }
            out.push((Bytes::from(k.into_vec()), Bytes::from(v.into_vec())));
        }
        Ok(out)
    }
}

impl Drop for RocksDBStateMachine {
    fn drop(&mut self) {
        // Leftover temp files of an interrupted snapshot write.
        let _ = remove_file(&self.dir.join(format!("{SNAPSHOT_FILE}.tmp")));
    }
}
