//! The key-value state machine's command codec, its session table and its in-memory
//! state, shared by [`MemStateMachine`](super::MemStateMachine) and
//! [`FileStateMachine`](super::FileStateMachine); plus the snapshot image format every
//! KV backend streams.
//!
//! Writes go through the log as [`KvCommand`]s (the `data` of an
//! `EntryPayload::Command`); applying one yields an encoded [`KvResult`]. Reads (get,
//! range, prefix scan) are served by the node straight from the state machine.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::codec::{self, CODEC_VERSION, DecodeError, Reader, Writer};
use super::session_table::{SessionCheck, SessionRecord, SessionTable};
use crate::core::types::{Entry, EntryPayload, SessionKey, SnapshotMeta};

const CMD_PUT: u8 = 1;
const CMD_DELETE: u8 = 2;
const CMD_CAS: u8 = 3;

/// A write to the key-value store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvCommand {
    Put {
        key: Bytes,
        value: Bytes,
    },
    Delete {
        key: Bytes,
    },
    /// Sets `key` to `new` if its current value equals `expected`
    /// (`None` = the key must be absent).
    CompareAndSwap {
        key: Bytes,
        expected: Option<Bytes>,
        new: Bytes,
    },
}

/// The outcome of applying one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvResult {
    /// A put was applied.
    Written,
    /// A delete was applied; `existed` says whether the key was there.
    Deleted { existed: bool },
    /// A compare-and-swap: `swapped` if it took effect; `current` is the value before.
    Cas {
        swapped: bool,
        current: Option<Bytes>,
    },
    /// The command bytes could not be decoded; the state is unchanged (deterministically,
    /// on every replica).
    Rejected { reason: String },
    /// A retried write older than the session's last applied one: its result is no
    /// longer known, and it was not applied again.
    StaleSequence { last_seq: u64 },
    /// A write with `seq > 1` of a session the table does not hold (expired or
    /// evicted): not applied.
    SessionUnknown { seq: u64 },
}

fn put_opt(w: &mut Writer<'_>, v: &Option<Bytes>) {
    match v {
        None => w.u8(0),
        Some(b) => {
            w.u8(1);
            w.bytes(b);
        }
    }
}

fn get_opt(r: &mut Reader<'_>) -> Result<Option<Bytes>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(Bytes::copy_from_slice(r.bytes()?))),
        f => Err(DecodeError(format!("bad option flag {f}"))),
    }
}

impl KvCommand {
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.u8(CODEC_VERSION);
        match self {
            KvCommand::Put { key, value } => {
                w.u8(CMD_PUT);
                w.bytes(key);
                w.bytes(value);
            }
            KvCommand::Delete { key } => {
                w.u8(CMD_DELETE);
                w.bytes(key);
            }
            KvCommand::CompareAndSwap { key, expected, new } => {
                w.u8(CMD_CAS);
                w.bytes(key);
                put_opt(&mut w, expected);
                w.bytes(new);
            }
        }
        out.into()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        r.version("kv command")?;
        let b = |r: &mut Reader<'_>| r.bytes().map(Bytes::copy_from_slice);
        let cmd = match r.u8()? {
            CMD_PUT => KvCommand::Put {
                key: b(&mut r)?,
                value: b(&mut r)?,
            },
            CMD_DELETE => KvCommand::Delete { key: b(&mut r)? },
            CMD_CAS => KvCommand::CompareAndSwap {
                key: b(&mut r)?,
                expected: get_opt(&mut r)?,
                new: b(&mut r)?,
            },
            t => return Err(DecodeError(format!("unknown kv command {t}"))),
        };
        r.finish("kv command")?;
        Ok(cmd)
    }
}

impl KvResult {
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.u8(CODEC_VERSION);
        match self {
            KvResult::Written => w.u8(0),
            KvResult::Deleted { existed } => {
                w.u8(1);
                w.u8(*existed as u8);
            }
            KvResult::Cas { swapped, current } => {
                w.u8(2);
                w.u8(*swapped as u8);
                put_opt(&mut w, current);
            }
            KvResult::Rejected { reason } => {
                w.u8(3);
                w.bytes(reason.as_bytes());
            }
            KvResult::StaleSequence { last_seq } => {
                w.u8(4);
                w.u64(*last_seq);
            }
            KvResult::SessionUnknown { seq } => {
                w.u8(5);
                w.u64(*seq);
            }
        }
        out.into()
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        r.version("kv result")?;
        let res = match r.u8()? {
            0 => KvResult::Written,
            1 => KvResult::Deleted {
                existed: r.u8()? != 0,
            },
            2 => KvResult::Cas {
                swapped: r.u8()? != 0,
                current: get_opt(&mut r)?,
            },
            3 => KvResult::Rejected {
                reason: String::from_utf8_lossy(r.bytes()?).into_owned(),
            },
            4 => KvResult::StaleSequence { last_seq: r.u64()? },
            5 => KvResult::SessionUnknown { seq: r.u64()? },
            t => return Err(DecodeError(format!("unknown kv result {t}"))),
        };
        r.finish("kv result")?;
        Ok(res)
    }
}

/// The exclusive upper bound of all keys starting with `prefix` (`None`: unbounded).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The whole replicated KV state: data, sessions, and what has been applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvState {
    pub data: BTreeMap<Bytes, Bytes>,
    pub sessions: SessionTable,
    /// Last applied index and term, and the membership in force there.
    pub applied: SnapshotMeta,
}

/// Where commands read and write pairs: the in-memory map, or a backend's overlay of
/// pending writes over its database.
pub trait KvStore {
    /// `&mut` so a backend can record a read error and fail the batch afterwards
    /// (treating a failed read as "absent" would make replicas diverge).
    fn get(&mut self, key: &[u8]) -> Option<Bytes>;
    fn put(&mut self, key: Bytes, value: Bytes);
    /// Removes `key`; true if it was there.
    fn delete(&mut self, key: &Bytes) -> bool;
}

impl KvStore for BTreeMap<Bytes, Bytes> {
    fn get(&mut self, key: &[u8]) -> Option<Bytes> {
        BTreeMap::get(self, key).cloned()
    }
    fn put(&mut self, key: Bytes, value: Bytes) {
        self.insert(key, value);
    }
    fn delete(&mut self, key: &Bytes) -> bool {
        self.remove(key).is_some()
    }
}

/// The replicated bookkeeping next to the data: the session table and what has been
/// applied.
pub struct Applier<'a> {
    pub sessions: &'a mut SessionTable,
    pub applied: &'a mut SnapshotMeta,
}

impl Applier<'_> {
    /// Applies a batch under the [`StateMachine::apply`](super::StateMachine::apply)
    /// contract: already-applied entries are skipped, a gap is an error. Calls
    /// `touched` with the key of every session record it changes.
    pub fn apply_batch<S: KvStore>(
        &mut self,
        store: &mut S,
        entries: &[Entry],
        touched: &mut dyn FnMut(SessionKey),
    ) -> Result<Vec<Bytes>, super::StorageError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if e.index <= self.applied.last_index {
                out.push(Bytes::new());
                continue;
            }
            if e.index != self.applied.last_index + 1 {
                return Err(super::StorageError::InvalidRequest(format!(
                    "apply: entry {} after last applied {}",
                    e.index, self.applied.last_index
                )));
            }
            out.push(self.apply_entry(store, e, touched));
        }
        Ok(out)
    }

    /// Applies one entry with index `applied.last_index + 1` and returns its result
    /// (empty for no-ops and configuration entries).
    pub fn apply_entry<S: KvStore>(
        &mut self,
        store: &mut S,
        entry: &Entry,
        touched: &mut dyn FnMut(SessionKey),
    ) -> Bytes {
        debug_assert_eq!(entry.index, self.applied.last_index + 1);
        let out = match &entry.payload {
            EntryPayload::Noop => Bytes::new(),
            EntryPayload::Config(m) => {
                self.applied.membership = m.clone();
                Bytes::new()
            }
            EntryPayload::Command { session, data } => {
                self.sessions.expire(entry.index, touched);
                let check = session
                    .map(|s| self.sessions.check(s.key(), s.seq, data))
                    .unwrap_or(SessionCheck::Execute);
                match check {
                    SessionCheck::Answer(result) => result,
                    SessionCheck::Execute => {
                        let result = match KvCommand::decode(data) {
                            Ok(cmd) => execute(store, cmd),
                            Err(e) => KvResult::Rejected { reason: e.0 },
                        }
                        .encode();
                        if let Some(s) = session {
                            let id = s.key();
                            self.sessions
                                .record(id, s.seq, entry.index, &result, touched);
                            touched(id);
                        }
                        result
                    }
                }
            }
        };
        self.applied.last_index = entry.index;
        self.applied.last_term = entry.term;
        out
    }
}

fn execute<S: KvStore>(store: &mut S, cmd: KvCommand) -> KvResult {
    match cmd {
        KvCommand::Put { key, value } => {
            store.put(key, value);
            KvResult::Written
        }
        KvCommand::Delete { key } => KvResult::Deleted {
            existed: store.delete(&key),
        },
        KvCommand::CompareAndSwap { key, expected, new } => {
            let current = store.get(&key);
            let swapped = current == expected;
            if swapped {
                store.put(key, new);
            }
            KvResult::Cas { swapped, current }
        }
    }
}

impl KvState {
    fn applier(&mut self) -> (Applier<'_>, &mut BTreeMap<Bytes, Bytes>) {
        (
            Applier {
                sessions: &mut self.sessions,
                applied: &mut self.applied,
            },
            &mut self.data,
        )
    }

    /// Applies one entry with index `applied.last_index + 1` (see [`Applier`]).
    pub fn apply_entry(&mut self, entry: &Entry) -> Bytes {
        let (mut a, data) = self.applier();
        a.apply_entry(data, entry, &mut |_| {})
    }

    /// Applies a batch (see [`Applier::apply_batch`]).
    pub fn apply_batch(&mut self, entries: &[Entry]) -> Result<Vec<Bytes>, super::StorageError> {
        let (mut a, data) = self.applier();
        a.apply_batch(data, entries, &mut |_| {})
    }

    /// Up to `limit` pairs with `start <= key < end` (`end: None` = unbounded), in order.
    pub fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        self.data
            .range::<[u8], _>((Bound::Included(start), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Encodes the whole state as a snapshot image.
    pub fn encode_image(&self) -> Vec<u8> {
        let mut enc = ImageEncoder::new(&self.applied);
        for (id, rec) in &self.sessions {
            enc.session(*id, rec);
        }
        enc.end_sessions();
        for (k, v) in &self.data {
            enc.pair(k, v);
        }
        enc.finish()
    }

    /// Decodes an image made by [`KvState::encode_image`] or an [`ImageEncoder`].
    pub fn decode_image(buf: &[u8]) -> Result<KvState, DecodeError> {
        let mut data = BTreeMap::new();
        let (applied, sessions) = decode_image(buf, &mut |k, v| {
            data.insert(Bytes::copy_from_slice(k), Bytes::copy_from_slice(v));
            Ok(())
        })?;
        Ok(KvState {
            data,
            sessions,
            applied,
        })
    }
}

/// Magic bytes opening a snapshot image.
pub const IMAGE_MAGIC: &[u8; 8] = b"DENGSNAP";
/// Image format version. 2: memberships carry addresses (codec version 2); 1 is
/// still read.
pub const IMAGE_VERSION: u32 = 2;

/// Builds a snapshot image incrementally (so a backend can encode from an iterator):
/// magic, version, meta, sessions, key-value pairs, then a CRC32C of everything before
/// it. Items are flagged with a non-zero byte (`1`; a session of a lane other than 0:
/// `2`) and each section ends with a `0` byte, so no count is needed up front.
///
/// A streaming writer calls [`ImageEncoder::drain`] now and then to hand the bytes
/// encoded so far to a file; the checksum is then kept running, so memory stays at one
/// item plus what was not drained yet.
pub struct ImageEncoder {
    buf: Vec<u8>,
    /// CRC32C of every byte drained so far.
    crc: u32,
}

impl ImageEncoder {
    pub fn new(meta: &SnapshotMeta) -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.extend_from_slice(IMAGE_MAGIC);
        let mut w = Writer(&mut buf);
        w.u32(IMAGE_VERSION);
        codec::put_snapshot_meta(&mut w, meta);
        ImageEncoder { buf, crc: 0 }
    }
    /// Bytes encoded and not drained yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    /// Hands the bytes encoded so far to `out` and forgets them (the checksum keeps
    /// covering them).
    pub fn drain<E>(&mut self, out: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        out(&self.buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.buf.clear();
        Ok(())
    }
    /// A session record: flagged `1` for lane 0 (as images before lanes have it), `2`
    /// with the lane after the client id.
    pub fn session(&mut self, (client_id, lane): SessionKey, rec: &SessionRecord) {
        let mut w = Writer(&mut self.buf);
        w.u8(if lane == 0 { 1 } else { 2 });
        w.u64(client_id);
        if lane != 0 {
            w.u32(lane);
        }
        w.u64(rec.last_seq);
        w.bytes(&rec.last_result);
        w.u64(rec.last_index);
    }
    pub fn end_sessions(&mut self) {
        self.buf.push(0);
    }
    pub fn pair(&mut self, key: &[u8], value: &[u8]) {
        let mut w = Writer(&mut self.buf);
        w.u8(1);
        w.bytes(key);
        w.bytes(value);
    }
    /// Ends the image: the bytes not drained yet, the end marker and the trailer (whose
    /// last 4 bytes are the image's checksum).
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0);
        let crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// The checksum stored in an image's trailer, if the image is long enough to have one.
pub fn image_checksum(buf: &[u8]) -> Option<u32> {
    let t = buf.len().checked_sub(4)?;
    Some(u32::from_le_bytes([
        buf[t],
        buf[t + 1],
        buf[t + 2],
        buf[t + 3],
    ]))
}

/// The codec version of the items of an image of format `version`.
pub fn image_codec_version(version: u32) -> Result<u8, DecodeError> {
    match version {
        1 => Ok(1),
        IMAGE_VERSION => Ok(codec::CODEC_VERSION),
        _ => Err(DecodeError(format!(
            "unknown snapshot image version {version}"
        ))),
    }
}

/// The next session item of an image (format `version`, covering `snapshot_index`),
/// or `None` at the end of the section.
pub fn get_image_session(
    r: &mut Reader<'_>,
    version: u32,
    snapshot_index: u64,
) -> Result<Option<(SessionKey, SessionRecord)>, DecodeError> {
    let id = match r.u8()? {
        0 => return Ok(None),
        1 => (r.u64()?, 0),
        2 => (r.u64()?, r.u32()?),
        f => return Err(DecodeError(format!("bad session flag {f} in image"))),
    };
    let last_seq = r.u64()?;
    let last_result = Bytes::copy_from_slice(r.bytes()?);
    // Version 1 images have no index: such a session counts as used at the snapshot
    // point.
    let last_index = if version >= 2 {
        r.u64()?
    } else {
        snapshot_index
    };
    let rec = SessionRecord {
        last_seq,
        last_result,
        last_index,
    };
    Ok(Some((id, rec)))
}

/// Receives each key-value pair of an image being decoded.
pub type PairVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), DecodeError> + 'a;

/// Verifies and decodes an image; `visit` gets each key-value pair in order.
pub fn decode_image(
    buf: &[u8],
    visit: &mut PairVisitor<'_>,
) -> Result<(SnapshotMeta, SessionTable), DecodeError> {
    if buf.len() < IMAGE_MAGIC.len() + 4 + 4 || &buf[..8] != IMAGE_MAGIC {
        return Err(DecodeError("not a snapshot image (bad magic)".into()));
    }
    let body = &buf[..buf.len() - 4];
    let stored = image_checksum(buf).unwrap_or(0);
    let actual = crc32c::crc32c(body);
    if stored != actual {
        return Err(DecodeError(format!(
            "snapshot checksum mismatch: stored {stored:08x}, computed {actual:08x}"
        )));
    }
    let mut r = Reader::new(&body[8..]);
    let version = r.u32()?;
    let mut r = r.with_version(image_codec_version(version)?);
    let meta = codec::get_snapshot_meta(&mut r)?;
    let mut sessions = SessionTable::default();
    while let Some((id, rec)) = get_image_session(&mut r, version, meta.last_index)? {
        sessions.insert(id, rec);
    }
    loop {
        match r.u8()? {
            0 => break,
            1 => {
                let k = r.bytes()?;
                let v = r.bytes()?;
                visit(k, v)?;
            }
            f => return Err(DecodeError(format!("bad item flag {f}"))),
        }
    }
    r.finish("snapshot image")?;
    Ok((meta, sessions))
}

/// A [`KvState`] behind a lock: what the state machines that keep their state in
/// memory (the memory and file backends) share. Readers never see half a batch.
#[derive(Debug, Default)]
pub(crate) struct LockedKv(std::sync::RwLock<KvState>);

impl LockedKv {
    pub fn new(state: KvState) -> Self {
        LockedKv(std::sync::RwLock::new(state))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KvState> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn apply(&self, entries: &[Entry]) -> Result<Vec<Bytes>, super::StorageError> {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply_batch(entries)
    }

    pub fn applied(&self) -> SnapshotMeta {
        self.read().applied.clone()
    }

    /// The applied meta and the encoded state, under one read lock (a consistent image).
    pub fn image(&self) -> (SnapshotMeta, Vec<u8>) {
        let st = self.read();
        (st.applied.clone(), st.encode_image())
    }

    /// Runs `f` on the state under the read lock: applies wait until it returns.
    pub fn with_read<R>(&self, f: impl FnOnce(&KvState) -> R) -> R {
        f(&self.read())
    }

    /// Replaces the whole state (an installed snapshot).
    pub fn replace(&self, state: KvState) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = state;
    }

    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.read().data.get(key).cloned()
    }

    pub fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        self.read().range(start, end, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::{ClientSession, Membership};

    fn cmd(index: u64, session: Option<(u64, u64)>, c: KvCommand) -> Entry {
        Entry {
            term: 1,
            index,
            payload: EntryPayload::Command {
                session: session.map(|(client_id, seq)| ClientSession {
                    client_id,
                    seq,
                    lane: 0,
                }),
                data: c.encode(),
            },
        }
    }

    fn put(k: &str, v: &str) -> KvCommand {
        KvCommand::Put {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
        }
    }

    /// Regression (issue 14): 100 failed compare-and-swaps on a 120 KB key added about
    /// 11 MB to every node and 12 MB to every snapshot, since each session kept its
    /// last result and a failed one carries the whole current value.
    #[test]
    fn failed_cas_on_a_large_value_keeps_no_copy_in_sessions_or_snapshots() {
        let mut st = KvState::default();
        let big = Bytes::from(vec![b'x'; 120 * 1024]);
        st.apply_entry(&cmd(
            1,
            None,
            KvCommand::Put {
                key: "k".into(),
                value: big.clone(),
            },
        ));
        for i in 0..100u64 {
            let cas = KvCommand::CompareAndSwap {
                key: "k".into(),
                expected: Some("not this".into()),
                new: "n".into(),
            };
            let out = st.apply_entry(&cmd(2 + i, Some((1000 + i, 1)), cas));
            let answer = KvResult::decode(&out).unwrap();
            assert_eq!(
                answer,
                KvResult::Cas {
                    swapped: false,
                    current: Some(big.clone())
                },
                "the caller still gets the current value"
            );
        }
        assert_eq!(st.sessions.len(), 100);
        let kept: usize = st.sessions.iter().map(|(_, r)| r.last_result.len()).sum();
        assert!(kept < 100 * 32, "sessions keep {kept} bytes of results");
        let image = st.encode_image();
        assert!(
            image.len() < big.len() + 64 * 1024,
            "image of {} bytes",
            image.len()
        );
        assert_eq!(KvState::decode_image(&image).unwrap(), st);
    }

    #[test]
    fn commands_and_results_round_trip() {
        let cmds = [
            put("a", "1"),
            KvCommand::Delete { key: "a".into() },
            KvCommand::CompareAndSwap {
                key: "k".into(),
                expected: None,
                new: "n".into(),
            },
            KvCommand::CompareAndSwap {
                key: "k".into(),
                expected: Some("".into()),
                new: "n".into(),
            },
        ];
        for c in cmds {
            assert_eq!(KvCommand::decode(&c.encode()).unwrap(), c);
        }
        let results = [
            KvResult::Written,
            KvResult::Deleted { existed: true },
            KvResult::Cas {
                swapped: false,
                current: Some("x".into()),
            },
            KvResult::Rejected { reason: "r".into() },
            KvResult::StaleSequence { last_seq: 3 },
        ];
        for r in results {
            assert_eq!(KvResult::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn retried_write_applies_once() {
        let mut s = KvState::default();
        s.apply_entry(&cmd(
            1,
            Some((9, 1)),
            KvCommand::CompareAndSwap {
                key: "k".into(),
                expected: None,
                new: "v1".into(),
            },
        ));
        // Someone else changes the key, then the first client's CAS is retried.
        s.apply_entry(&cmd(2, None, put("k", "other")));
        let retried = s.apply_entry(&cmd(
            3,
            Some((9, 1)),
            KvCommand::CompareAndSwap {
                key: "k".into(),
                expected: None,
                new: "v1".into(),
            },
        ));
        assert_eq!(
            KvResult::decode(&retried).unwrap(),
            KvResult::Cas {
                swapped: true,
                current: None
            }
        );
        assert_eq!(s.data.get(&b"k"[..]).unwrap(), "other");
        let older = s.apply_entry(&cmd(4, Some((9, 0)), put("k", "old")));
        assert_eq!(
            KvResult::decode(&older).unwrap(),
            KvResult::StaleSequence { last_seq: 1 }
        );
        assert_eq!(s.applied.last_index, 4);
    }

    #[test]
    fn garbage_command_is_rejected_deterministically() {
        let mut s = KvState::default();
        let e = Entry {
            term: 1,
            index: 1,
            payload: EntryPayload::Command {
                session: None,
                data: Bytes::from_static(b"\x01\x63garbage"),
            },
        };
        let r = KvResult::decode(&s.apply_entry(&e)).unwrap();
        assert!(matches!(r, KvResult::Rejected { .. }));
        assert!(s.data.is_empty());
    }

    #[test]
    fn image_round_trip_and_detects_damage() {
        let mut s = KvState::default();
        for i in 0..50u64 {
            s.apply_entry(&cmd(i + 1, Some((i % 3, i)), put(&format!("k{i:02}"), "v")));
        }
        s.apply_entry(&Entry {
            term: 2,
            index: 51,
            payload: EntryPayload::Config(Membership::with_voters([1, 2, 3])),
        });
        let img = s.encode_image();
        assert_eq!(KvState::decode_image(&img).unwrap(), s);
        for pos in [0, 9, img.len() / 2, img.len() - 1] {
            let mut bad = img.clone();
            bad[pos] ^= 0x40;
            assert!(KvState::decode_image(&bad).is_err(), "flip at {pos}");
        }
        assert!(KvState::decode_image(&img[..img.len() - 3]).is_err());
    }

    #[test]
    fn range_and_prefix_bounds() {
        let mut s = KvState::default();
        for (i, k) in ["a", "ab", "abc", "b", "b\u{7f}"].iter().enumerate() {
            s.apply_entry(&cmd(i as u64 + 1, None, put(k, "v")));
        }
        let keys = |v: Vec<(Bytes, Bytes)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(s.range(b"a", Some(b"b"), 10)), ["a", "ab", "abc"]);
        assert_eq!(keys(s.range(b"a", None, 2)), ["a", "ab"]);
        let end = prefix_end(b"ab").unwrap();
        assert_eq!(keys(s.range(b"ab", Some(&end), 10)), ["ab", "abc"]);
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
    }
}
