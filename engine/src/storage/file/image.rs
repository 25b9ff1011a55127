//! Snapshot images on disk, a few chunks in memory at a time: [`ImageWriter`] encodes
//! an image straight into a temporary file, and [`decode_stream`] verifies and decodes
//! one as its chunks arrive, copying its bytes to a file as it goes. The format is the
//! one [`ImageEncoder`] and [`decode_image`](crate::storage::kv::decode_image) define,
//! so images written either way read either way.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::io::sync_dir;
use crate::core::types::{SessionKey, SnapshotMeta};
use crate::storage::codec::{self, DecodeError, Reader};
use crate::storage::error::{Result, StorageError};
use crate::storage::kv::{
    IMAGE_MAGIC, ImageEncoder, get_image_session, image_checksum, image_codec_version,
};
use crate::storage::session_table::{SessionRecord, SessionTable};

/// Encoded bytes gathered before they go to the file.
const SPILL_BYTES: usize = 64 * 1024;
/// Buffer of the file writes.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// Largest header or session item: a parse that still fails with this much buffered
/// is corrupt, not short of bytes.
const ITEM_PARSE_MAX: usize = 16 << 20;
/// Largest key plus value accepted in an image: far above what a client may write
/// (a value of 1 MiB), so only a damaged length is refused before it is buffered.
const PAIR_BYTES_MAX: usize = 64 << 20;

fn decode_err(reason: String) -> StorageError {
    StorageError::Decode {
        what: "snapshot image",
        reason,
    }
}

/// A temporary file removed when dropped unless [`TempFile::persist`] renamed it.
pub(crate) struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    pub fn new(path: PathBuf) -> Self {
        TempFile { path, armed: true }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the (already synced) file to `dest` and syncs the directory.
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest)
            .map_err(|e| StorageError::io("renaming into place", dest, e))?;
        self.armed = false;
        sync_dir(dest.parent().unwrap_or(Path::new(".")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A buffered, checked writer of a temporary file.
pub(crate) struct FileSink {
    out: BufWriter<File>,
    tmp: TempFile,
    written: u64,
}

impl FileSink {
    pub fn create(path: PathBuf) -> Result<Self> {
        let file = File::create(&path).map_err(|e| StorageError::io("creating", &path, e))?;
        Ok(FileSink {
            out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            tmp: TempFile::new(path),
            written: 0,
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| StorageError::io("writing", self.tmp.path(), e))
    }

    /// Flushes and fsyncs; the file is then ready to be renamed into place.
    pub fn sync(self) -> Result<(TempFile, u64)> {
        let FileSink { out, tmp, written } = self;
        let file = out
            .into_inner()
            .map_err(|e| StorageError::io("writing", tmp.path(), e.into_error()))?;
        file.sync_all()
            .map_err(|e| StorageError::io("syncing", tmp.path(), e))?;
        Ok((tmp, written))
    }
}

/// Encodes an image into a temporary file as it is built: memory is one item plus a
/// write buffer, whatever the image's size.
pub(crate) struct ImageWriter {
    enc: ImageEncoder,
    sink: FileSink,
}

/// A finished image file, synced, waiting to be renamed into place.
pub(crate) struct WrittenImage {
    pub tmp: TempFile,
    pub size: u64,
    pub checksum: u32,
}

impl ImageWriter {
    pub fn create(path: PathBuf, meta: &SnapshotMeta) -> Result<Self> {
        Ok(ImageWriter {
            enc: ImageEncoder::new(meta),
            sink: FileSink::create(path)?,
        })
    }

    fn spill(&mut self) -> Result<()> {
        let sink = &mut self.sink;
        self.enc.drain(&mut |b| sink.write(b))
    }

    pub fn session(&mut self, id: SessionKey, rec: &SessionRecord) -> Result<()> {
        self.enc.session(id, rec);
        if self.enc.buffered() >= SPILL_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    pub fn end_sessions(&mut self) {
        self.enc.end_sessions();
    }

    pub fn pair(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.enc.pair(key, value);
        if self.enc.buffered() >= SPILL_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<WrittenImage> {
        self.spill()?;
        let tail = self.enc.finish();
        self.sink.write(&tail)?;
        let checksum = image_checksum(&tail).unwrap_or(0);
        let (tmp, size) = self.sink.sync()?;
        Ok(WrittenImage {
            tmp,
            size,
            checksum,
        })
    }
}

/// Receives each key-value pair of an image being decoded.
pub(crate) type PairSink<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// Parses one item from the start of a buffer: the value and the bytes it used.
type ItemParser<'a, T> = dyn FnMut(&[u8]) -> std::result::Result<(T, usize), DecodeError> + 'a;

/// What a verified image stream held besides its key-value pairs.
pub(crate) struct StreamedImage {
    pub meta: SnapshotMeta,
    pub sessions: SessionTable,
    /// The checksum in the trailer (verified).
    pub checksum: u32,
}

/// The bytes of a chunk stream not consumed yet, with the running checksum of those
/// consumed.
struct ChunkBuf<'a> {
    chunks: &'a mut dyn Iterator<Item = Result<Bytes>>,
    /// Receives every chunk as it arrives (e.g. a file being written).
    tee: &'a mut dyn FnMut(&[u8]) -> Result<()>,
    buf: Vec<u8>,
    pos: usize,
    crc: u32,
    ended: bool,
}

impl ChunkBuf<'_> {
    fn rest(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Folds the consumed bytes into the checksum and drops them.
    fn settle(&mut self) {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf[..self.pos]);
        self.buf.drain(..self.pos);
        self.pos = 0;
    }

    /// Reads one more chunk; false at the end of the stream.
    fn pull(&mut self) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        match self.chunks.next() {
            None => {
                self.ended = true;
                Ok(false)
            }
            Some(chunk) => {
                let chunk = chunk?;
                (self.tee)(&chunk)?;
                self.settle();
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
        }
    }

    /// Makes sure `n` unconsumed bytes are buffered.
    fn need(&mut self, n: usize) -> Result<()> {
        while self.rest().len() < n {
            if !self.pull()? {
                return Err(decode_err(format!(
                    "truncated: the stream ends {} bytes short of an item",
                    n - self.rest().len()
                )));
            }
        }
        Ok(())
    }

    /// Parses one item with `parse` (which returns the value and the bytes it used),
    /// reading more chunks while it fails for want of bytes.
    fn parse<T>(&mut self, parse: &mut ItemParser<'_, T>) -> Result<T> {
        loop {
            match parse(self.rest()) {
                Ok((v, used)) => {
                    self.pos += used;
                    return Ok(v);
                }
                // Any error may be a cut item until the stream ends or the item
                // could not be this long.
                Err(e) => {
                    if self.rest().len() >= ITEM_PARSE_MAX || !self.pull()? {
                        return Err(decode_err(e.0));
                    }
                }
            }
        }
    }

    fn u32_at(&self, at: usize) -> usize {
        let b = &self.buf[self.pos + at..self.pos + at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }
}

/// Verifies and decodes an image as its chunks arrive: `tee` receives every chunk,
/// `visit` every key-value pair in order. Pairs are visited before the checksum at the
/// end is checked, so the caller must keep what it builds from them apart from its
/// live state until this returns `Ok`.
pub(crate) fn decode_stream(
    chunks: &mut dyn Iterator<Item = Result<Bytes>>,
    tee: &mut dyn FnMut(&[u8]) -> Result<()>,
    visit: &mut PairSink<'_>,
) -> Result<StreamedImage> {
    let mut b = ChunkBuf {
        chunks,
        tee,
        buf: Vec::new(),
        pos: 0,
        crc: 0,
        ended: false,
    };
    let (version, meta) = decode_header(&mut b)?;
    let codec_version = image_codec_version(version).map_err(|e| decode_err(e.0))?;
    let mut sessions = SessionTable::default();
    while let Some((id, rec)) = b.parse(&mut |s| {
        let mut r = Reader::new(s).with_version(codec_version);
        let item = get_image_session(&mut r, version, meta.last_index)?;
        Ok((item, r.position()))
    })? {
        sessions.insert(id, rec);
    }
    decode_pairs(&mut b, visit)?;
    let checksum = finish_stream(&mut b)?;
    Ok(StreamedImage {
        meta,
        sessions,
        checksum,
    })
}

/// The magic, the format version and the meta.
fn decode_header(b: &mut ChunkBuf<'_>) -> Result<(u32, SnapshotMeta)> {
    b.need(IMAGE_MAGIC.len())?;
    if &b.rest()[..IMAGE_MAGIC.len()] != IMAGE_MAGIC {
        return Err(decode_err("not a snapshot image (bad magic)".into()));
    }
    b.pos += IMAGE_MAGIC.len();
    b.parse(&mut |s| {
        let mut r = Reader::new(s);
        let version = r.u32()?;
        let mut r = Reader::new(&s[4..]).with_version(image_codec_version(version)?);
        let meta = codec::get_snapshot_meta(&mut r)?;
        Ok(((version, meta), 4 + r.position()))
    })
}

/// The meta in an image file's header (the rest is neither read nor verified).
/// Only the RocksDB backend asks (to serve no image its meta does not name).
#[cfg(feature = "rocksdb")]
pub(crate) fn file_header_meta(path: &Path) -> Result<SnapshotMeta> {
    let file = File::open(path).map_err(|e| StorageError::io("opening", path, e))?;
    let mut chunks = crate::storage::state_machine::file_chunks(file, path.to_path_buf(), 4096);
    let mut b = ChunkBuf {
        chunks: &mut chunks,
        tee: &mut |_| Ok(()),
        buf: Vec::new(),
        pos: 0,
        crc: 0,
        ended: false,
    };
    Ok(decode_header(&mut b)?.1)
}

/// The key-value section, up to and including its end marker.
fn decode_pairs(b: &mut ChunkBuf<'_>, visit: &mut PairSink<'_>) -> Result<()> {
    loop {
        b.need(1)?;
        let flag = b.rest()[0];
        match flag {
            0 => {
                b.pos += 1;
                return Ok(());
            }
            1 => {}
            f => return Err(decode_err(format!("bad item flag {f}"))),
        }
        b.need(5)?;
        let klen = b.u32_at(1);
        if klen > PAIR_BYTES_MAX {
            return Err(decode_err(format!("a key of {klen} bytes")));
        }
        b.need(9 + klen)?;
        let vlen = b.u32_at(5 + klen);
        if klen + vlen > PAIR_BYTES_MAX {
            return Err(decode_err(format!("a pair of {} bytes", klen + vlen)));
        }
        let len = 9 + klen + vlen;
        b.need(len)?;
        let item = b.rest();
        visit(&item[5..5 + klen], &item[9 + klen..len])?;
        b.pos += len;
    }
}

/// The trailer: the checksum of everything before it, then the end of the stream.
fn finish_stream(b: &mut ChunkBuf<'_>) -> Result<u32> {
    b.settle();
    let actual = b.crc;
    b.need(4)?;
    let stored = b.u32_at(0) as u32;
    b.pos += 4;
    if stored != actual {
        return Err(decode_err(format!(
            "snapshot checksum mismatch: stored {stored:08x}, computed {actual:08x}"
        )));
    }
    while b.rest().is_empty() && b.pull()? {}
    if !b.rest().is_empty() {
        return Err(decode_err(format!(
            "{} bytes after the trailer",
            b.rest().len()
        )));
    }
    Ok(stored)
}

/// Refuses an image that is not the snapshot `want` announced.
pub(crate) fn check_covers(got: &SnapshotMeta, want: &SnapshotMeta) -> Result<()> {
    if got.last_index != want.last_index || got.last_term != want.last_term {
        return Err(decode_err(format!(
            "image covers index {} term {}, expected index {} term {}",
            got.last_index, got.last_term, want.last_index, want.last_term
        )));
    }
    Ok(())
}

/// The size and trailer checksum of an image file, read without loading it.
pub(crate) fn file_size_and_checksum(file: &File, path: &Path) -> Result<(u64, u32)> {
    let size = file
        .metadata()
        .map_err(|e| StorageError::io("inspecting", path, e))?
        .len();
    if size < 4 {
        return Err(StorageError::corrupt(path, 0, "snapshot image too short"));
    }
    let mut t = [0u8; 4];
    file.read_exact_at(&mut t, size - 4)
        .map_err(|e| StorageError::io("reading", path, e))?;
    Ok((size, u32::from_le_bytes(t)))
}

/// Reads and verifies an image file in chunks, visiting its pairs.
pub(crate) fn decode_file(path: &Path, visit: &mut PairSink<'_>) -> Result<StreamedImage> {
    let file = File::open(path).map_err(|e| StorageError::io("opening", path, e))?;
    let mut chunks = crate::storage::state_machine::file_chunks(
        file,
        path.to_path_buf(),
        crate::storage::SNAPSHOT_CHUNK_BYTES,
    );
    decode_stream(&mut chunks, &mut |_| Ok(()), visit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::{Entry, EntryPayload};
    use crate::storage::kv::{KvCommand, KvState};
    use crate::storage::state_machine::chunks_of;

    fn state(n: u64) -> KvState {
        let mut st = KvState::default();
        for i in 1..=n {
            let cmd = KvCommand::Put {
                key: Bytes::from(format!("key{i:05}")),
                value: Bytes::from(vec![i as u8; (i as usize * 37) % 3000]),
            };
            let session = (i % 4 == 0).then_some(crate::core::types::ClientSession {
                client_id: i,
                seq: 1,
                lane: (i % 8) as u32,
            });
            st.apply_entry(&Entry {
                term: 2,
                index: i,
                payload: EntryPayload::Command {
                    session,
                    data: cmd.encode(),
                },
            });
        }
        st
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dengine-image-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn decode_all(image: &[u8], chunk: usize) -> Result<(KvState, Vec<u8>)> {
        let mut copy = Vec::new();
        let mut st = KvState::default();
        let mut chunks = chunks_of(Bytes::copy_from_slice(image), chunk);
        let img = decode_stream(
            &mut chunks,
            &mut |c| {
                copy.extend_from_slice(c);
                Ok(())
            },
            &mut |k, v| {
                st.data
                    .insert(Bytes::copy_from_slice(k), Bytes::copy_from_slice(v));
                Ok(())
            },
        )?;
        assert_eq!(img.checksum, image_checksum(image).unwrap());
        st.sessions = img.sessions;
        st.applied = img.meta;
        Ok((st, copy))
    }

    #[test]
    fn the_file_writer_writes_the_in_memory_format_byte_for_byte() {
        let st = state(300);
        let d = dir("writer");
        let mut w = ImageWriter::create(d.join("x.tmp"), &st.applied).unwrap();
        for (id, rec) in &st.sessions {
            w.session(*id, rec).unwrap();
        }
        w.end_sessions();
        for (k, v) in &st.data {
            w.pair(k, v).unwrap();
        }
        let img = w.finish().unwrap();
        let on_disk = fs::read(img.tmp.path()).unwrap();
        let want = st.encode_image();
        assert_eq!(on_disk, want);
        assert_eq!(img.size, want.len() as u64);
        assert_eq!(img.checksum, image_checksum(&want).unwrap());
        drop(img);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_stream_decoder_reads_any_chunking_and_refuses_damage() {
        let st = state(120);
        let image = st.encode_image();
        for chunk in [1, 3, 7, 4096, image.len()] {
            let (got, copy) = decode_all(&image, chunk).unwrap();
            assert_eq!(got, st, "chunks of {chunk}");
            assert_eq!(copy, image);
        }
        for pos in [0, 9, 20, image.len() / 2, image.len() - 5, image.len() - 1] {
            let mut bad = image.clone();
            bad[pos] ^= 0x40;
            assert!(decode_all(&bad, 1000).is_err(), "flip at {pos}");
        }
        for cut in [0, 5, image.len() / 3, image.len() - 1] {
            assert!(decode_all(&image[..cut], 1000).is_err(), "cut at {cut}");
        }
        let mut longer = image.clone();
        longer.push(0);
        assert!(decode_all(&longer, 1000).is_err());
    }

    #[test]
    fn a_damaged_length_is_refused_before_it_is_buffered() {
        let mut st = KvState::default();
        st.data.insert(Bytes::from("k"), Bytes::from("v"));
        let mut image = st.encode_image();
        // The high byte of the value's length (before the value, the end marker and
        // the trailer).
        let at = image.len() - 4 - 1 - 1 - 1;
        image[at] = 0x7f;
        // A stream that would go on for a long time if the decoder waited for the
        // 2 GiB the length claims.
        let mut chunks = std::iter::once(Ok(Bytes::from(image)))
            .chain(std::iter::repeat_with(|| Ok(Bytes::from(vec![0u8; 1 << 20]))).take(1 << 12));
        let err = decode_stream(&mut chunks, &mut |_| Ok(()), &mut |_, _| Ok(())).err();
        assert!(format!("{err:?}").contains("a pair of"), "{err:?}");
    }
}
