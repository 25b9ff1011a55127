//! Snapshots received from a leader, staged on disk as they arrive.
//!
//! A transfer writes its chunks to `<dir>/<id>.part`; every [`STAGING_SYNC_BYTES`]
//! (and at the end) the file is synced and `<id>.state` records how many bytes of it
//! are durable, their CRC32C and the snapshot's meta. A transfer cut by a broken link
//! or a restart of either side resumes from that offset: the receiver says where
//! (`next_offset`), the sender sends from there, so at most the bytes received since
//! the last sync are sent again. Memory use is one chunk, whatever the image's size.
//!
//! Only one transfer is staged at a time: beginning another (another snapshot id)
//! deletes the previous one's files. A finished transfer is renamed `<id>.ready` and
//! handed to the state machine to install; the file is deleted once installed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::codec::{self, Reader, Writer};
use super::error::{Result, StorageError};
use super::file::io;
use super::state_machine::{SnapshotChunks, file_chunks};
use crate::core::types::SnapshotMeta;

/// Bytes received between two syncs of the staging file (and updates of its state).
pub const STAGING_SYNC_BYTES: u64 = 1 << 20;
const STATE_MAGIC: &[u8; 8] = b"DESTAGE1";

/// The staging directory of a node.
#[derive(Clone, Debug)]
pub struct SnapshotStaging {
    dir: PathBuf,
}

/// Why a transfer cannot go on from the offset the sender chose.
#[derive(Debug)]
pub enum BeginError {
    /// The staged bytes end at this offset: send from there.
    ResumeFrom(u64),
    Storage(StorageError),
}

impl From<StorageError> for BeginError {
    fn from(e: StorageError) -> Self {
        BeginError::Storage(e)
    }
}

/// One transfer being received.
#[derive(Debug)]
pub struct StagedTransfer {
    dir: PathBuf,
    id: u64,
    meta: SnapshotMeta,
    file: File,
    /// Bytes written so far, and their CRC32C.
    offset: u64,
    crc: u32,
    unsynced: u64,
}

impl SnapshotStaging {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SnapshotStaging { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Begins (at offset 0) or continues (at the durable offset of the staged bytes)
    /// the transfer of snapshot `id`; a sender at another offset, or at 0 while bytes
    /// of this snapshot are staged, is told where to go on (`ResumeFrom`). Any other
    /// staged transfer is discarded. (The same id and meta mean the same committed
    /// state; should two senders' images of it differ, the whole-image CRC at the end
    /// fails and the next transfer starts over.)
    pub fn begin(
        &self,
        id: u64,
        meta: &SnapshotMeta,
        offset: u64,
    ) -> std::result::Result<StagedTransfer, BeginError> {
        io::ensure_dir(&self.dir)?;
        self.discard_others(id)?;
        let durable = self.read_state(id, meta)?;
        let part = self.part_path(id);
        match (offset, durable) {
            // A sender that starts from the beginning (a new leader, or one restarted)
            // is told where the staged bytes of this same snapshot end.
            (0, Some((d, _))) if d > 0 => Err(BeginError::ResumeFrom(d)),
            (0, _) => {
                let file =
                    File::create(&part).map_err(|e| StorageError::io("creating", &part, e))?;
                let t = self.transfer(id, meta, file, 0, 0);
                t.save_state()?;
                Ok(t)
            }
            (o, Some((d, crc))) if o == d => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&part)
                    .map_err(|e| StorageError::io("opening", &part, e))?;
                // Bytes after the durable offset were never recorded: drop them.
                file.set_len(d)
                    .map_err(|e| StorageError::io("truncating", &part, e))?;
                let mut t = self.transfer(id, meta, file, d, crc);
                std::io::Seek::seek(&mut t.file, std::io::SeekFrom::End(0))
                    .map_err(|e| StorageError::io("seeking", &part, e))?;
                Ok(t)
            }
            (_, d) => Err(BeginError::ResumeFrom(d.map_or(0, |(d, _)| d))),
        }
    }

    fn transfer(
        &self,
        id: u64,
        meta: &SnapshotMeta,
        file: File,
        offset: u64,
        crc: u32,
    ) -> StagedTransfer {
        StagedTransfer {
            dir: self.dir.clone(),
            id,
            meta: meta.clone(),
            file,
            offset,
            crc,
            unsynced: 0,
        }
    }

    fn part_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}.part"))
    }

    /// The durable offset and CRC of transfer `id`'s staged bytes, if they are of the
    /// same snapshot (`meta`) and the part file holds them all.
    fn read_state(&self, id: u64, meta: &SnapshotMeta) -> Result<Option<(u64, u32)>> {
        let path = self.dir.join(format!("{id:016x}.state"));
        let Ok(bytes) = fs::read(&path) else {
            return Ok(None);
        };
        let decoded = (|| {
            if bytes.get(..8) != Some(STATE_MAGIC.as_slice()) {
                return Err(codec::DecodeError("bad magic".into()));
            }
            let mut r = Reader::new(&bytes[8..]);
            let (offset, crc) = (r.u64()?, r.u32()?);
            let staged_meta = codec::get_snapshot_meta(&mut r)?;
            r.finish("staging state")?;
            Ok((offset, crc, staged_meta))
        })();
        let Ok((offset, crc, staged_meta)) = decoded else {
            return Ok(None);
        };
        let part_len = fs::metadata(self.part_path(id)).map_or(0, |m| m.len());
        Ok((staged_meta == *meta && part_len >= offset).then_some((offset, crc)))
    }

    /// Deletes the files of every transfer but `keep`.
    fn discard_others(&self, keep: u64) -> Result<()> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| StorageError::io("listing", &self.dir, e))?;
        let keep = format!("{keep:016x}.");
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&keep) {
                io::remove_file(&e.path())?;
            }
        }
        Ok(())
    }
}

impl StagedTransfer {
    /// The offset the next chunk must start at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Appends a chunk; syncs and records the offset every `STAGING_SYNC_BYTES`.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let path = self.dir.join(format!("{:016x}.part", self.id));
        self.file
            .write_all(data)
            .map_err(|e| StorageError::io("writing", &path, e))?;
        self.offset += data.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, data);
        self.unsynced += data.len() as u64;
        if self.unsynced >= STAGING_SYNC_BYTES {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes what was written durable and records it for a resume.
    pub fn sync(&mut self) -> Result<()> {
        let path = self.dir.join(format!("{:016x}.part", self.id));
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("syncing", &path, e))?;
        self.unsynced = 0;
        self.save_state()
    }

    fn save_state(&self) -> Result<()> {
        let mut buf = STATE_MAGIC.to_vec();
        let mut w = Writer(&mut buf);
        w.u64(self.offset);
        w.u32(self.crc);
        codec::put_snapshot_meta(&mut w, &self.meta);
        io::write_atomic(&self.dir, &format!("{:016x}.state", self.id), &buf)
    }

    /// Checks the whole image (`total_bytes`, `total_crc32c`), makes it durable and
    /// returns its path, ready to install. On a mismatch the staged files are deleted
    /// (the next attempt starts over).
    pub fn finish(mut self, total_bytes: u64, total_crc32c: u32) -> Result<PathBuf> {
        let part = self.dir.join(format!("{:016x}.part", self.id));
        if total_bytes != self.offset || total_crc32c != self.crc {
            let _ = io::remove_file(&part);
            let _ = io::remove_file(&self.dir.join(format!("{:016x}.state", self.id)));
            return Err(StorageError::Decode {
                what: "snapshot transfer",
                reason: format!(
                    "{} bytes with CRC {:08x} received, the sender says {total_bytes} bytes with CRC {total_crc32c:08x}",
                    self.offset, self.crc
                ),
            });
        }
        self.sync()?;
        let ready = self.dir.join(format!("{:016x}.ready", self.id));
        fs::rename(&part, &ready).map_err(|e| StorageError::io("renaming", &ready, e))?;
        io::sync_dir(&self.dir)?;
        Ok(ready)
    }
}

/// Reads a staged image back as chunks of `chunk` bytes (for the state machine's
/// install), one chunk in memory at a time.
pub fn read_chunks(path: &Path, chunk: usize) -> Result<SnapshotChunks> {
    let file = File::open(path).map_err(|e| StorageError::io("opening", path, e))?;
    Ok(file_chunks(file, path.to_path_buf(), chunk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Membership;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_index: 40,
            last_term: 3,
            membership: Membership::with_voters([1, 2, 3]),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dengine-staging-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_cut_transfer_resumes_from_the_last_synced_offset() {
        let dir = tmp("resume");
        let staging = SnapshotStaging::new(&dir);
        let image: Vec<u8> = (0..3 * STAGING_SYNC_BYTES + 100)
            .map(|i| (i % 251) as u8)
            .collect();
        let chunk = 256 * 1024;
        let mut t = staging.begin(7, &meta(), 0).unwrap();
        // Half the image, then the link drops (the transfer is abandoned).
        let half = image.len() / 2;
        for c in image[..half].chunks(chunk) {
            t.write(c).unwrap();
        }
        drop(t);
        let durable = STAGING_SYNC_BYTES; // the last sync before `half`
        // A sender starting over is sent to the staged offset too.
        assert!(matches!(
            staging.begin(7, &meta(), 0),
            Err(BeginError::ResumeFrom(d)) if d == durable
        ));
        match staging.begin(7, &meta(), half as u64) {
            Err(BeginError::ResumeFrom(o)) => assert_eq!(o, durable),
            other => panic!("expected a resume offset, got {other:?}"),
        }
        let mut t = staging.begin(7, &meta(), durable).unwrap();
        for c in image[durable as usize..].chunks(chunk) {
            t.write(c).unwrap();
        }
        let path = t
            .finish(image.len() as u64, crc32c::crc32c(&image))
            .unwrap();
        let back: Vec<u8> = read_chunks(&path, 1000)
            .unwrap()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(back, image);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn another_snapshot_or_a_bad_total_starts_over() {
        let dir = tmp("other");
        let staging = SnapshotStaging::new(&dir);
        let mut t = staging.begin(1, &meta(), 0).unwrap();
        t.write(&[1; 10]).unwrap();
        t.sync().unwrap();
        drop(t);
        // A different meta under the same id is not resumed.
        let other = SnapshotMeta {
            last_index: 41,
            ..meta()
        };
        assert!(matches!(
            staging.begin(1, &other, 10),
            Err(BeginError::ResumeFrom(0))
        ));
        // Another id discards the first transfer's files.
        let mut t = staging.begin(2, &meta(), 0).unwrap();
        assert!(!dir.join(format!("{:016x}.part", 1)).exists());
        t.write(b"abc").unwrap();
        assert!(t.finish(3, 0xdead).is_err(), "a wrong total CRC is refused");
        assert!(matches!(
            staging.begin(2, &meta(), 3),
            Err(BeginError::ResumeFrom(0))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
