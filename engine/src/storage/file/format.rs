//! On-disk layout of log segments and the meta file.
//!
//! A segment file `{seq:016x}.seg` is preallocated (filled with zeros and synced) before
//! it is used, so appends overwrite allocated blocks and `fdatasync` has no metadata
//! to flush. Layout:
//!
//! ```text
//! segment header (32 bytes): magic "DENGLOG\0" | version u32 | crc u32 | seq u64 | base_index u64
//! record (8-byte aligned):   len u32 | crc u32 | term u64 | index u64 | payload[len] | zero pad
//! then zeros up to the preallocated size
//! ```
//!
//! The record CRC32C covers `len`, `term`, `index` and the payload. A record's length
//! is never 0 (a payload carries at least its version and tag bytes), so a zero `len`
//! marks the end of the written part. Records in a segment have consecutive indexes
//! starting at `base_index` and non-decreasing terms.

use crate::core::types::{Entry, LogIndex, Term};
use crate::storage::codec;

pub const SEG_MAGIC: &[u8; 8] = b"DENGLOG\0";
pub const SEG_VERSION: u32 = 1;
pub const SEG_HEADER_BYTES: usize = 32;
pub const REC_HEADER_BYTES: usize = 24;

/// File name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.seg")
}

/// Parses a segment file name back into its sequence number.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".seg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Bytes a record with an encoded payload of at most `payload_max` bytes can take.
pub fn record_bytes_max(payload_max: usize) -> usize {
    align8(REC_HEADER_BYTES + payload_max)
}

pub fn encode_segment_header(seq: u64, base_index: LogIndex) -> [u8; SEG_HEADER_BYTES] {
    let mut h = [0u8; SEG_HEADER_BYTES];
    h[..8].copy_from_slice(SEG_MAGIC);
    h[8..12].copy_from_slice(&SEG_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&base_index.to_le_bytes());
    let crc = header_crc(&h);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn header_crc(h: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&h[..12]), &h[16..SEG_HEADER_BYTES])
}

pub fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Why a segment header is not usable.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than a header, or all zeros: a segment whose header never reached disk.
    Missing,
    /// Present but damaged or of an unknown version.
    Bad(String),
}

/// Parses a segment header into `(seq, base_index)`.
pub fn parse_segment_header(buf: &[u8]) -> Result<(u64, LogIndex), HeaderError> {
    if buf.len() < SEG_HEADER_BYTES || buf[..SEG_HEADER_BYTES].iter().all(|b| *b == 0) {
        return Err(HeaderError::Missing);
    }
    let h = &buf[..SEG_HEADER_BYTES];
    if &h[..8] != SEG_MAGIC {
        return Err(HeaderError::Bad("bad segment magic".into()));
    }
    if le32(h, 12) != header_crc(h) {
        return Err(HeaderError::Bad("segment header checksum mismatch".into()));
    }
    let version = le32(h, 8);
    if version != SEG_VERSION {
        return Err(HeaderError::Bad(format!(
            "unsupported segment version {version}"
        )));
    }
    Ok((le64(h, 16), le64(h, 24)))
}

/// Appends one record to `out` (8-byte aligned) and returns its payload length.
pub fn encode_record(out: &mut Vec<u8>, e: &Entry) -> u32 {
    let start = out.len();
    out.resize(start + REC_HEADER_BYTES, 0);
    codec::encode_payload(&e.payload, out);
    let len = out.len() - start - REC_HEADER_BYTES;
    let h = &mut out[start..start + REC_HEADER_BYTES];
    h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[8..16].copy_from_slice(&e.term.to_le_bytes());
    h[16..24].copy_from_slice(&e.index.to_le_bytes());
    let crc = record_crc(&out[start..start + REC_HEADER_BYTES + len]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + align8(REC_HEADER_BYTES + len), 0);
    len as u32
}

fn record_crc(rec: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&rec[..4]), &rec[8..])
}

/// A record found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView {
    pub term: Term,
    pub index: LogIndex,
    /// Payload length.
    pub len: u32,
    /// Bytes the record takes, padding included.
    pub size: usize,
}

/// Parses the record at `off`, checking bounds and CRC. The error says why not.
pub fn parse_record(buf: &[u8], off: usize) -> Result<RecordView, &'static str> {
    if buf.len() < off + REC_HEADER_BYTES {
        return Err("truncated record header");
    }
    let len = le32(buf, off) as usize;
    if len == 0 {
        return Err("zero length");
    }
    if len > buf.len() - off - REC_HEADER_BYTES {
        return Err("record length runs past the end of the segment");
    }
    let rec = &buf[off..off + REC_HEADER_BYTES + len];
    if le32(rec, 4) != record_crc(rec) {
        return Err("record checksum mismatch");
    }
    Ok(RecordView {
        term: le64(rec, 8),
        index: le64(rec, 16),
        len: len as u32,
        size: align8(REC_HEADER_BYTES + len),
    })
}

/// The payload bytes of a record parsed at `off`.
pub fn record_payload<'a>(buf: &'a [u8], off: usize, rec: &RecordView) -> &'a [u8] {
    &buf[off + REC_HEADER_BYTES..off + REC_HEADER_BYTES + rec.len as usize]
}

/// True if some 8-aligned offset after `from` holds a record with a valid checksum.
/// Used to tell a torn tail (garbage, then nothing valid) from damage in the middle.
pub fn valid_record_after(buf: &[u8], from: usize) -> bool {
    let mut off = align8(from + 1);
    while off + REC_HEADER_BYTES <= buf.len() {
        if parse_record(buf, off).is_ok() {
            return true;
        }
        off += 8;
    }
    false
}

/// Meta file (hard state + compaction point):
/// magic "DENGMETA" | version u32 | body_len u32 | body | crc32c of all before it.
pub const META_MAGIC: &[u8; 8] = b"DENGMETA";
/// 2: memberships carry addresses (codec version 2); 1 is still read.
pub const META_VERSION: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::EntryPayload;
    use bytes::Bytes;

    fn entry(index: u64, data: &'static [u8]) -> Entry {
        Entry {
            term: 3,
            index,
            payload: EntryPayload::Command {
                session: None,
                data: Bytes::from_static(data),
            },
        }
    }

    #[test]
    fn record_round_trip_and_every_flip_is_caught() {
        let mut buf = Vec::new();
        let len = encode_record(&mut buf, &entry(7, b"abc"));
        assert_eq!(buf.len() % 8, 0);
        let r = parse_record(&buf, 0).unwrap();
        assert_eq!((r.term, r.index, r.len, r.size), (3, 7, len, buf.len()));
        for i in 0..REC_HEADER_BYTES + len as usize {
            let mut bad = buf.clone();
            bad[i] ^= 1;
            assert!(parse_record(&bad, 0).is_err(), "flip at {i} undetected");
        }
    }

    #[test]
    fn header_round_trip() {
        let h = encode_segment_header(5, 100);
        assert_eq!(parse_segment_header(&h), Ok((5, 100)));
        assert_eq!(parse_segment_header(&[0; 32]), Err(HeaderError::Missing));
        let mut bad = h;
        bad[20] ^= 1;
        assert!(matches!(
            parse_segment_header(&bad),
            Err(HeaderError::Bad(_))
        ));
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("x.seg"), None);
    }
}
