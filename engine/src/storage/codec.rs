//! Compact binary encoding of the core types for every storage backend.
//!
//! Integers are little-endian and fixed width (simple, fast, and the log record already
//! carries a CRC). Every top-level value starts with a one-byte format version so that a
//! later release can read what this one wrote; a decoder refuses versions it does not
//! know instead of guessing. Decoding never panics: every read is bounds-checked and
//! reports [`DecodeError`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::core::types::{
    ClientSession, Entry, EntryPayload, HardState, LogIndex, Membership, SnapshotMeta, Term,
};

/// Format version of encoded payloads, hard states and snapshot metas.
/// 2: a membership carries its members' addresses. Version 1 is still read (its
/// memberships have no addresses; bootstrap fills them from the configuration).
pub const CODEC_VERSION: u8 = 2;
/// The oldest version this release reads.
pub const CODEC_VERSION_MIN: u8 = 1;

const TAG_NOOP: u8 = 0;
const TAG_COMMAND: u8 = 1;
const TAG_CONFIG: u8 = 2;

/// Why bytes could not be decoded. Callers turn it into a `StorageError` that names
/// the file and offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Appends fixed-width little-endian values to a buffer.
pub struct Writer<'a>(pub &'a mut Vec<u8>);

impl Writer<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Length-prefixed (u32) bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        debug_assert!(v.len() <= u32::MAX as usize);
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    pub fn set(&mut self, set: &BTreeSet<u64>) {
        self.u32(set.len() as u32);
        for id in set {
            self.u64(*id);
        }
    }
}

/// Reads values written by [`Writer`], bounds-checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The codec version the bytes were written with: set by [`Reader::version`], or
    /// by a container that carries its own version ([`Reader::with_version`]).
    codec_version: u8,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            codec_version: CODEC_VERSION,
        }
    }
    /// Bytes written by an older codec version (named by their container).
    pub fn with_version(mut self, version: u8) -> Self {
        self.codec_version = version;
        self
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError(format!(
                "truncated: need {n} bytes at {}, have {}",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn set(&mut self) -> Result<BTreeSet<u64>, DecodeError> {
        let n = self.u32()? as usize;
        // Each id takes 8 bytes: refuse counts the buffer cannot hold before allocating.
        if n > self.remaining() / 8 {
            return Err(DecodeError(format!("set of {n} ids exceeds the buffer")));
        }
        (0..n).map(|_| self.u64()).collect()
    }
    pub fn version(&mut self, what: &str) -> Result<(), DecodeError> {
        let v = self.u8()?;
        if !(CODEC_VERSION_MIN..=CODEC_VERSION).contains(&v) {
            return Err(DecodeError(format!("{what}: unknown format version {v}")));
        }
        self.codec_version = v;
        Ok(())
    }
    pub fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError(format!(
                "{what}: {} trailing bytes",
                self.remaining()
            )));
        }
        Ok(())
    }
}

pub fn put_membership(w: &mut Writer<'_>, m: &Membership) {
    w.set(&m.voters);
    w.set(&m.voters_outgoing);
    w.set(&m.learners);
    w.u32(m.addresses.len() as u32);
    for (id, addr) in &m.addresses {
        w.u64(*id);
        w.bytes(addr.as_bytes());
    }
}

pub fn get_membership(r: &mut Reader<'_>) -> Result<Membership, DecodeError> {
    Ok(Membership {
        voters: r.set()?,
        voters_outgoing: r.set()?,
        learners: r.set()?,
        addresses: if r.codec_version >= 2 {
            get_addresses(r)?
        } else {
            BTreeMap::new()
        },
    })
}

fn get_addresses(r: &mut Reader<'_>) -> Result<BTreeMap<u64, String>, DecodeError> {
    let n = r.u32()? as usize;
    // Each address takes at least 12 bytes (id and length): refuse counts the buffer
    // cannot hold before allocating.
    if n > r.remaining() / 12 {
        return Err(DecodeError(format!("{n} addresses exceed the buffer")));
    }
    (0..n)
        .map(|_| {
            let id = r.u64()?;
            let addr = std::str::from_utf8(r.bytes()?)
                .map_err(|_| DecodeError(format!("address of node {id} is not UTF-8")))?;
            Ok((id, addr.to_string()))
        })
        .collect()
}

/// Encodes an entry payload (the log record header carries term and index).
pub fn encode_payload(p: &EntryPayload, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    w.u8(CODEC_VERSION);
    match p {
        EntryPayload::Noop => w.u8(TAG_NOOP),
        EntryPayload::Command { session, data } => {
            w.u8(TAG_COMMAND);
            match session {
                // Flag 1: a session of lane 0, as every release before lanes wrote
                // it; flag 2: with its lane.
                None => w.u8(0),
                Some(s) if s.lane == 0 => {
                    w.u8(1);
                    w.u64(s.client_id);
                    w.u64(s.seq);
                }
                Some(s) => {
                    w.u8(2);
                    w.u64(s.client_id);
                    w.u64(s.seq);
                    w.u32(s.lane);
                }
            }
            w.bytes(data);
        }
        EntryPayload::Config(m) => {
            w.u8(TAG_CONFIG);
            put_membership(&mut w, m);
        }
    }
}

/// Upper bound of [`encode_payload`]'s output, for buffer sizing.
pub fn payload_encoded_len(p: &EntryPayload) -> usize {
    match p {
        EntryPayload::Noop => 2,
        EntryPayload::Command { data, .. } => 2 + 21 + 4 + data.len(),
        EntryPayload::Config(m) => {
            2 + 16
                + 8 * (m.voters.len() + m.voters_outgoing.len() + m.learners.len())
                + m.addresses.values().map(|a| 12 + a.len()).sum::<usize>()
        }
    }
}

/// Decodes a payload. `data` of a command is copied out of `buf` once.
pub fn decode_payload(buf: &[u8]) -> Result<EntryPayload, DecodeError> {
    decode_payload_with(buf, &Bytes::copy_from_slice)
}

/// Decodes a payload that lies inside `parent`: command data is a zero-copy slice of
/// `parent` (used when reading many entries from one buffer).
pub fn decode_payload_in(parent: &Bytes, buf: &[u8]) -> Result<EntryPayload, DecodeError> {
    decode_payload_with(buf, &|s| parent.slice_ref(s))
}

fn decode_payload_with(
    buf: &[u8],
    to_bytes: &dyn Fn(&[u8]) -> Bytes,
) -> Result<EntryPayload, DecodeError> {
    let mut r = Reader::new(buf);
    r.version("entry payload")?;
    let p = match r.u8()? {
        TAG_NOOP => EntryPayload::Noop,
        TAG_COMMAND => {
            let session = match r.u8()? {
                0 => None,
                1 => Some(ClientSession {
                    client_id: r.u64()?,
                    seq: r.u64()?,
                    lane: 0,
                }),
                2 => Some(ClientSession {
                    client_id: r.u64()?,
                    seq: r.u64()?,
                    lane: r.u32()?,
                }),
                f => return Err(DecodeError(format!("bad session flag {f}"))),
            };
            let data = to_bytes(r.bytes()?);
            EntryPayload::Command { session, data }
        }
        TAG_CONFIG => EntryPayload::Config(get_membership(&mut r)?),
        t => return Err(DecodeError(format!("unknown payload tag {t}"))),
    };
    r.finish("entry payload")?;
    Ok(p)
}

/// Encodes a whole entry (term, index, payload), for backends without a record header.
pub fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + payload_encoded_len(&e.payload));
    let mut w = Writer(&mut out);
    w.u64(e.term);
    w.u64(e.index);
    encode_payload(&e.payload, &mut out);
    out
}

pub fn decode_entry(buf: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader::new(buf);
    let term: Term = r.u64()?;
    let index: LogIndex = r.u64()?;
    let payload = decode_payload(&buf[r.position()..])?;
    Ok(Entry {
        term,
        index,
        payload,
    })
}

pub fn put_hard_state(w: &mut Writer<'_>, hs: &HardState) {
    w.u64(hs.term);
    // 0 is never a valid node id, so it stands for "no vote".
    w.u64(hs.voted_for.unwrap_or(0));
}

pub fn get_hard_state(r: &mut Reader<'_>) -> Result<HardState, DecodeError> {
    let term = r.u64()?;
    let vote = r.u64()?;
    Ok(HardState {
        term,
        voted_for: (vote != 0).then_some(vote),
    })
}

pub fn put_snapshot_meta(w: &mut Writer<'_>, m: &SnapshotMeta) {
    w.u64(m.last_index);
    w.u64(m.last_term);
    put_membership(w, &m.membership);
}

pub fn get_snapshot_meta(r: &mut Reader<'_>) -> Result<SnapshotMeta, DecodeError> {
    Ok(SnapshotMeta {
        last_index: r.u64()?,
        last_term: r.u64()?,
        membership: get_membership(r)?,
    })
}

/// Versioned standalone encodings (used as RocksDB values).
pub fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    let mut w = Writer(&mut out);
    w.u8(CODEC_VERSION);
    put_hard_state(&mut w, hs);
    out
}

pub fn decode_hard_state(buf: &[u8]) -> Result<HardState, DecodeError> {
    let mut r = Reader::new(buf);
    r.version("hard state")?;
    let hs = get_hard_state(&mut r)?;
    r.finish("hard state")?;
    Ok(hs)
}

pub fn encode_snapshot_meta(m: &SnapshotMeta) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer(&mut out);
    w.u8(CODEC_VERSION);
    put_snapshot_meta(&mut w, m);
    out
}

pub fn decode_snapshot_meta(buf: &[u8]) -> Result<SnapshotMeta, DecodeError> {
    let mut r = Reader::new(buf);
    r.version("snapshot meta")?;
    let m = get_snapshot_meta(&mut r)?;
    r.finish("snapshot meta")?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                term: 1,
                index: 1,
                payload: EntryPayload::Noop,
            },
            Entry {
                term: 2,
                index: 2,
                payload: EntryPayload::Command {
                    session: Some(ClientSession {
                        client_id: 7,
                        seq: 9,
                        lane: 0,
                    }),
                    data: Bytes::from_static(b"hello"),
                },
            },
            Entry {
                term: 2,
                index: 3,
                payload: EntryPayload::Command {
                    session: Some(ClientSession {
                        client_id: 7,
                        seq: 2,
                        lane: 70_000,
                    }),
                    data: Bytes::from_static(b"lane"),
                },
            },
            Entry {
                term: 3,
                index: 3,
                payload: EntryPayload::Command {
                    session: None,
                    data: Bytes::new(),
                },
            },
            Entry {
                term: 3,
                index: 4,
                payload: EntryPayload::Config(Membership {
                    voters: [1, 2, 3].into(),
                    voters_outgoing: [1, 2].into(),
                    learners: [4].into(),
                    addresses: [(4, "127.0.0.1:9004".to_string())].into(),
                }),
            },
        ]
    }

    #[test]
    fn entries_round_trip_and_fit_the_length_bound() {
        for e in entries() {
            let buf = encode_entry(&e);
            assert!(buf.len() - 16 <= payload_encoded_len(&e.payload));
            assert_eq!(decode_entry(&buf).unwrap(), e);
        }
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        for e in entries() {
            let buf = encode_entry(&e);
            for cut in 0..buf.len() {
                assert!(decode_entry(&buf[..cut]).is_err(), "cut at {cut}");
            }
        }
        assert!(decode_payload(&[9, 0]).is_err());
        assert!(decode_payload(&[CODEC_VERSION, 7]).is_err());
        // A set length that would need gigabytes is refused before allocating.
        assert!(decode_payload(&[CODEC_VERSION, TAG_CONFIG, 255, 255, 255, 255]).is_err());
    }

    #[test]
    fn version_1_memberships_still_decode_without_addresses() {
        // What release 1 wrote for a config entry: version 1, the tag, three sets.
        let mut v1 = vec![1, TAG_CONFIG];
        let mut w = Writer(&mut v1);
        w.set(&[1, 2].into());
        w.set(&BTreeSet::new());
        w.set(&[3].into());
        let m = match decode_payload(&v1).unwrap() {
            EntryPayload::Config(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(m.voters, [1, 2].into());
        assert_eq!(m.learners, [3].into());
        assert!(m.addresses.is_empty());
        // The same bytes labelled version 2 lack the address list: an error.
        v1[0] = 2;
        assert!(decode_payload(&v1).is_err());
        // An address count the buffer cannot hold is refused before allocating.
        v1.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_payload(&v1).is_err());
    }

    #[test]
    fn hard_state_and_meta_round_trip() {
        let hs = HardState {
            term: 5,
            voted_for: Some(3),
        };
        assert_eq!(decode_hard_state(&encode_hard_state(&hs)).unwrap(), hs);
        let none = HardState::default();
        assert_eq!(decode_hard_state(&encode_hard_state(&none)).unwrap(), none);
        let m = SnapshotMeta {
            last_index: 10,
            last_term: 4,
            membership: Membership::with_voters([1, 2]),
        };
        assert_eq!(decode_snapshot_meta(&encode_snapshot_meta(&m)).unwrap(), m);
    }
}
