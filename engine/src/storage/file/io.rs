//! Small file-system helpers with error context: atomic file replacement, directory
//! fsync, zero filling, and the meta file (hard state + compaction point).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::{META_MAGIC, META_VERSION, le32};
use crate::core::types::{HardState, SnapshotMeta};
use crate::storage::codec::{self, Reader, Writer};
use crate::storage::error::{Result, StorageError};

pub const META_FILE: &str = "meta";
const ZERO_CHUNK: usize = 1 << 20;

/// Makes sure `dir` exists and is a directory.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StorageError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| StorageError::io("creating directory", dir, e))
        }
        Err(e) => Err(StorageError::io("inspecting", dir, e)),
    }
}

/// fsync of a directory, so renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("syncing directory", dir, e))
}

/// Replaces `dir/name` with `bytes` atomically: temp file, fsync, rename, fsync dir.
/// After a crash the file holds either the old or the new contents, never a mix.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(|e| StorageError::io("creating", &tmp, e))?;
    if let Err(e) = f.write_all(bytes).and_then(|_| f.sync_all()) {
        // Give the space back (a full disk is the usual cause); the old file is intact.
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(StorageError::io("writing", &tmp, e));
    }
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| StorageError::io("renaming into place", &path, e))?;
    sync_dir(dir)
}

/// Writes zeros over `[from, to)` of `file`.
pub fn zero_range(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK.min((to.saturating_sub(from)) as usize)];
    let mut off = from;
    while off < to {
        let n = ((to - off) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], off)
            .map_err(|e| StorageError::io("zeroing", path, e))?;
        off += n as u64;
    }
    Ok(())
}

/// Creates `path` filled with `len` zero bytes and synced: a preallocated segment.
/// Real zero writes (not `set_len`, which leaves a sparse file) so later appends
/// overwrite allocated blocks and `fdatasync` has no block allocation to journal.
pub fn create_zeroed(path: &Path, len: u64) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| StorageError::io("creating segment", path, e))?;
    let res = zero_range(&file, path, 0, len).and_then(|_| {
        file.sync_all()
            .map_err(|e| StorageError::io("syncing segment", path, e))
    });
    if let Err(e) = res {
        // Give the space back: a half-written spare is useless.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// Creates a finished spare segment at `path`: zeroed under a `.tmp` name, synced, then
/// renamed, so a file named `*.spare` of full length is always complete.
pub fn create_spare(path: &Path, len: u64) -> Result<File> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = create_zeroed(&tmp, len)?;
    fs::rename(&tmp, path).map_err(|e| StorageError::io("renaming spare segment", path, e))?;
    Ok(file)
}

/// Removes a file, ignoring "already gone".
pub fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StorageError::io("removing", path, e))
        }
        _ => Ok(()),
    }
}

/// A truncation in progress: bytes `from..to` of segment `seq` are being zeroed.
/// Recorded in the meta file before zeroing and cleared after the zeros are synced, so
/// that a crash in between (zeros persisted out of order, old records still behind
/// them) is recognised as an unfinished truncation, not as corruption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Zeroing {
    pub seq: u64,
    pub from: u64,
    pub to: u64,
}

/// Contents of the meta file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub hard_state: HardState,
    pub snapshot: SnapshotMeta,
    pub zeroing: Option<Zeroing>,
}

pub fn encode_meta(meta: &Meta) -> Vec<u8> {
    let mut body = Vec::new();
    let mut w = Writer(&mut body);
    codec::put_hard_state(&mut w, &meta.hard_state);
    codec::put_snapshot_meta(&mut w, &meta.snapshot);
    match meta.zeroing {
        None => w.u8(0),
        Some(z) => {
            w.u8(1);
            w.u64(z.seq);
            w.u64(z.from);
            w.u64(z.to);
        }
    }
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(META_MAGIC);
    out.extend_from_slice(&META_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Replaces the meta file atomically.
pub fn write_meta(dir: &Path, meta: &Meta) -> Result<()> {
    write_atomic(dir, META_FILE, &encode_meta(meta))
}

fn get_zeroing(r: &mut Reader<'_>) -> Result<Option<Zeroing>, codec::DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(Zeroing {
            seq: r.u64()?,
            from: r.u64()?,
            to: r.u64()?,
        })),
        f => Err(codec::DecodeError(format!("bad zeroing flag {f}"))),
    }
}

/// Reads the meta file; `None` if there is none (a fresh directory). The meta file is
/// only ever replaced atomically, so any damage in it is corruption, not a torn write.
pub fn read_meta(dir: &Path) -> Result<Option<Meta>> {
    let path: PathBuf = dir.join(META_FILE);
    let buf = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("reading", &path, e)),
    };
    let corrupt = |off: usize, why: &str| StorageError::corrupt(&path, off as u64, why);
    if buf.len() < 20 || &buf[..8] != META_MAGIC {
        return Err(corrupt(0, "bad meta file header"));
    }
    let version = le32(&buf, 8);
    // Meta version 1 holds codec version 1 (memberships without addresses).
    let codec_version = match version {
        1 => 1,
        META_VERSION => codec::CODEC_VERSION,
        _ => return Err(StorageError::UnsupportedVersion { path, version }),
    };
    let body_len = le32(&buf, 12) as usize;
    if buf.len() != 16 + body_len + 4 {
        return Err(corrupt(12, "meta file length does not match its header"));
    }
    let crc_at = 16 + body_len;
    if le32(&buf, crc_at) != crc32c::crc32c(&buf[..crc_at]) {
        return Err(corrupt(crc_at, "meta file checksum mismatch"));
    }
    let mut r = Reader::new(&buf[16..crc_at]).with_version(codec_version);
    let parsed = (|| {
        let meta = Meta {
            hard_state: codec::get_hard_state(&mut r)?,
            snapshot: codec::get_snapshot_meta(&mut r)?,
            zeroing: get_zeroing(&mut r)?,
        };
        r.finish("meta")?;
        Ok::<_, codec::DecodeError>(meta)
    })();
    parsed.map(Some).map_err(|e| corrupt(16, &e.0))
}
