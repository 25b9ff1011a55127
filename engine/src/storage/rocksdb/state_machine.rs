//! [`RocksDBStateMachine`]: the KV state in RocksDB. Data, session records and the last
//! applied index of a batch go into one write batch, so they are always consistent.
//!
//! Snapshots never hold the whole state in memory. A build takes a RocksDB snapshot
//! (a point-in-time view) with the applied meta and a copy of the session table under
//! the apply lock, releases it, and streams the view into the image file, so applies
//! go on meanwhile. An install streams the image into the column family not in use
//! (`data` and `data_b` take turns; the meta key `active` names the live one), in
//! write batches of a few MiB, verifies the checksum, and then switches with one
//! synced write batch (sessions, applied and durable meta, and `active`). A
//! column-family switch rather than a staging database renamed into place: the
//! switch is a single atomic RocksDB write, the database is never closed under
//! readers, and a crash needs no rename protocol to recover from; a failed install
//! leaves only the spare family to be cleared by the next one.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use rocksdb::{
    ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};
use tracing::warn;

use super::db_err;
use crate::core::types::{Entry, SessionKey, SnapshotMeta};
use crate::storage::codec::{self, Reader, Writer};
use crate::storage::dir_lock::DirLock;
use crate::storage::error::{Result, StorageError};
use crate::storage::file::image::{
    FileSink, ImageWriter, StreamedImage, TempFile, check_covers, decode_stream, file_header_meta,
    file_size_and_checksum,
};
use crate::storage::file::io::{ensure_dir, remove_file};
use crate::storage::kv::{Applier, KvStore};
use crate::storage::session_table::{SessionRecord, SessionTable};
use crate::storage::state_machine::{SNAPSHOT_CHUNK_BYTES, Snapshot, StateMachine, file_chunks};

const CF_DATA: &str = "data";
/// The data column family's partner: an install streams into whichever is not live.
const CF_DATA_B: &str = "data_b";
/// Meta key naming the live data column family (absent: `data`).
const KEY_ACTIVE: &[u8] = b"active";
/// Size at which an install writes its batch of pairs and starts the next.
const INSTALL_BATCH_BYTES: usize = 4 << 20;
const CF_SESSIONS: &str = "sessions";
const CF_META: &str = "meta";
const KEY_APPLIED: &[u8] = b"applied";
const KEY_DURABLE: &[u8] = b"snapshot";
const SNAPSHOT_FILE: &str = "snapshot.img";

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
    /// The live data column family. Readers hold it for their whole read, so the
    /// family an install switched away from is cleared only once no one reads it;
    /// written (after `state`) only by the switch.
    active: RwLock<&'static str>,
    /// Held by a build or an install for its whole file and staging work.
    snapshot_io: Mutex<()>,
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

/// The live data column family named in the meta family (`data` when unset, as in
/// databases written before installs took turns).
fn read_active(db: &DB, meta_cf: &rocksdb::ColumnFamily, path: &Path) -> Result<&'static str> {
    let v = db
        .get_cf(meta_cf, KEY_ACTIVE)
        .map_err(|e| db_err("reading", path, e))?;
    match v.as_deref() {
        None => Ok(CF_DATA),
        Some(v) if v == CF_DATA.as_bytes() => Ok(CF_DATA),
        Some(v) if v == CF_DATA_B.as_bytes() => Ok(CF_DATA_B),
        Some(v) => Err(StorageError::corrupt(
            path,
            0,
            format!(
                "active data family: unknown family {:?}",
                String::from_utf8_lossy(v)
            ),
        )),
    }
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
        let cfs = [CF_DATA, CF_DATA_B, CF_SESSIONS, CF_META]
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
        let active = read_active(&db, meta_cf, &db_path)?;
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
            active: RwLock::new(active),
            snapshot_io: Mutex::new(()),
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
        let file = fs::File::open(&path).map_err(|e| StorageError::io("opening", &path, e))?;
        let (size_bytes, checksum) = file_size_and_checksum(&file, &path)?;
        Ok(Snapshot {
            meta,
            size_bytes,
            checksum,
            chunks: file_chunks(file, path, SNAPSHOT_CHUNK_BYTES),
        })
    }

    fn active(&self) -> std::sync::RwLockReadGuard<'_, &'static str> {
        self.active.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Deletes every key of column family `name` (one range deletion and one point
    /// deletion for the last key).
    fn clear_cf(&self, name: &str) -> Result<()> {
        let cf = self.cf(name)?;
        let last_key = self
            .db
            .iterator_cf(cf, IteratorMode::End)
            .next()
            .transpose()
            .map_err(|e| db_err("reading", &self.db_path, e))?
            .map(|(k, _)| k);
        if let Some(last) = last_key {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf, &[][..], &last[..]);
            batch.delete_cf(cf, &last[..]);
            self.write(batch, false)?;
        }
        Ok(())
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
        // The caller holds `state`, so no switch happens during the batch.
        let data = self.cf(*self.active())?;
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
        let _io = self.snapshot_io.lock().unwrap_or_else(|e| e.into_inner());
        // Under the apply lock only to fix the point in time: a RocksDB snapshot taken
        // there sees whole batches, and the session records and applied meta written
        // with them. The image is streamed from it after the lock is released.
        let (meta, snap, family) = {
            let st = self.lock();
            let family = *self.active();
            (st.applied.clone(), self.db.snapshot(), family)
        };
        let mut w = ImageWriter::create(self.temp_image_path(), &meta)?;
        let read_err = |e| db_err("reading", &self.db_path, e);
        for item in snap.iterator_cf(self.cf(CF_SESSIONS)?, IteratorMode::Start) {
            let (k, v) = item.map_err(read_err)?;
            let corrupt = |e: codec::DecodeError| StorageError::corrupt(&self.db_path, 0, e.0);
            let id = decode_session_key(&k).map_err(corrupt)?;
            w.session(id, &decode_session(&v).map_err(corrupt)?)?;
        }
        w.end_sessions();
        for item in snap.iterator_cf(self.cf(family)?, IteratorMode::Start) {
            let (k, v) = item.map_err(read_err)?;
            w.pair(&k, &v)?;
        }
        drop(snap);
        let img = w.finish()?;
        img.tmp.persist(&self.image_path())?;
        // The data is flushed to disk too, so the durable point is real.
        self.db
            .flush_wal(true)
            .map_err(|e| db_err("syncing", &self.db_path, e))?;
        self.set_durable(&mut self.lock(), &meta)?;
        self.snapshot_from_file(meta)
    }

    fn current_snapshot(&self) -> Result<Option<Snapshot>> {
        let durable = self.lock().durable.clone();
        if durable.last_index == 0 || !self.image_path().exists() {
            return Ok(None);
        }
        // An install renames its image into place just before its switch: an error
        // or a crash between the two leaves an image newer than the durable meta.
        let img = file_header_meta(&self.image_path())?;
        if (img.last_index, img.last_term) != (durable.last_index, durable.last_term) {
            warn!(
                image = img.last_index,
                durable = durable.last_index,
                "snapshot image does not match the durable snapshot; not serving it"
            );
            return Ok(None);
        }
        self.snapshot_from_file(durable).map(Some)
    }

    fn install_snapshot(
        &self,
        meta: &SnapshotMeta,
        chunks: &mut dyn Iterator<Item = Result<Bytes>>,
    ) -> Result<()> {
        let _io = self.snapshot_io.lock().unwrap_or_else(|e| e.into_inner());
        let spare = if *self.active() == CF_DATA {
            CF_DATA_B
        } else {
            CF_DATA
        };
        // Leftovers of an install that failed or was cut short by a crash.
        self.clear_cf(spare)?;
        match self.stage(meta, spare, chunks) {
            Ok((img, tmp)) => self.switch(spare, img, tmp),
            Err(e) => {
                if let Err(c) = self.clear_cf(spare) {
                    warn!(error = %c, "clearing the spare data family after a failed install");
                }
                Err(e)
            }
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let family = self.active();
        let v = self
            .db
            .get_cf(self.cf(*family)?, key)
            .map_err(|e| db_err("reading", &self.db_path, e))?;
        Ok(v.map(Bytes::from))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<(Bytes, Bytes)>> {
        let mut out = Vec::new();
        let family = self.active();
        let iter = self.db.iterator_cf(
            self.cf(*family)?,
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

impl RocksDBStateMachine {
    fn temp_image_path(&self) -> PathBuf {
        self.dir.join(format!("{SNAPSHOT_FILE}.tmp"))
    }

    /// Streams an image into the spare data family `spare` (batches of a few MiB,
    /// not synced: the switch's synced write makes them durable) and into a temporary
    /// image file, and verifies it. Nothing live changes.
    fn stage(
        &self,
        meta: &SnapshotMeta,
        spare: &'static str,
        chunks: &mut dyn Iterator<Item = Result<Bytes>>,
    ) -> Result<(StreamedImage, TempFile)> {
        let cf = self.cf(spare)?;
        let mut sink = FileSink::create(self.temp_image_path())?;
        let mut batch = WriteBatch::default();
        let img = decode_stream(chunks, &mut |c| sink.write(c), &mut |k, v| {
            batch.put_cf(cf, k, v);
            if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
                self.write(std::mem::take(&mut batch), false)?;
            }
            Ok(())
        })?;
        check_covers(&img.meta, meta)?;
        self.write(batch, false)?;
        let (tmp, _) = sink.sync()?;
        Ok((img, tmp))
    }

    /// Makes the staged family live: the image file is renamed into place, then one
    /// synced batch replaces the session records, the applied and durable meta and
    /// the `active` key together; then the family switched away from is cleared.
    fn switch(&self, spare: &'static str, img: StreamedImage, tmp: TempFile) -> Result<()> {
        // Before the switch, so an error after it cannot leave a switched state
        // reported as failed. Until the switch, the file is newer than the durable
        // meta, and `current_snapshot` does not serve it.
        tmp.persist(&self.image_path())?;
        let mut st = self.lock();
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
        let old = *active;
        let sess_cf = self.cf(CF_SESSIONS)?;
        let mut batch = WriteBatch::default();
        // Session keys are 8 or 12 bytes: all below 13 bytes of 0xff.
        batch.delete_range_cf(sess_cf, &[][..], &[0xffu8; 13][..]);
        for (id, r) in &img.sessions {
            batch.put_cf(sess_cf, session_key(*id), encode_session(r));
        }
        let meta_cf = self.cf(CF_META)?;
        batch.put_cf(meta_cf, KEY_APPLIED, codec::encode_snapshot_meta(&img.meta));
        batch.put_cf(meta_cf, KEY_DURABLE, codec::encode_snapshot_meta(&img.meta));
        batch.put_cf(meta_cf, KEY_ACTIVE, spare.as_bytes());
        self.write(batch, true)?;
        *active = spare;
        st.sessions = img.sessions;
        st.applied = img.meta.clone();
        st.durable = img.meta;
        drop(active);
        drop(st);
        if let Err(e) = self.clear_cf(old) {
            warn!(error = %e, "clearing the data family switched away from");
        }
        Ok(())
    }
}

impl Drop for RocksDBStateMachine {
    fn drop(&mut self) {
        // Leftover temp files of an interrupted snapshot write.
        let _ = remove_file(&self.dir.join(format!("{SNAPSHOT_FILE}.tmp")));
    }
}
