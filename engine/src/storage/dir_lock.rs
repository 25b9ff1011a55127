//! One process per data directory: an exclusive `flock(2)` on a lock file in the
//! directory, held for as long as the storage that took it is open.
//!
//! `flock` rather than a pid file alone: the kernel drops the lock when its holder
//! exits or dies (`kill -9` included), so there is never a stale lock to clean up by
//! hand. The holder writes its pid into the file only so that a refused process can
//! name it; the pid is never what decides whether the directory is in use.
//!
//! Every store takes its lock *before* it looks at its files: a second process must
//! not delete the first one's temp files, truncate a "torn" tail that is really a write
//! in progress, or recover anything at all.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::{Result, StorageError};

/// The lock file's name in a directory the engine owns.
pub const LOCK_FILE: &str = "LOCK";

/// How long a lock that this process itself seems to hold is retried (see
/// [`DirLock::acquire_named`]).
const SELF_HELD_WAIT: Duration = Duration::from_secs(1);

/// An exclusive lock on a directory. Released when dropped, or by the kernel when the
/// process ends however it ends.
#[derive(Debug)]
pub struct DirLock {
    /// The open file the lock belongs to: closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (which must exist) through `dir/LOCK`, or fails with
    /// [`StorageError::Locked`] naming the process that holds it. A second store on the
    /// same directory in this process is refused too, after a wait of about a second.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        Self::acquire_named(dir, LOCK_FILE)
    }

    /// [`DirLock::acquire`] with another file name, for directories where `LOCK` is
    /// taken (RocksDB keeps its own `LOCK` in its database directory).
    pub fn acquire_named(dir: &Path, name: &str) -> Result<DirLock> {
        let path = dir.join(name);
        // Not truncated on open: until the lock is ours, the file names its holder.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError::io("opening lock file", &path, e))?;
        let deadline = Instant::now() + SELF_HELD_WAIT;
        loop {
            match try_lock(&file, libc::LOCK_EX) {
                Ok(true) => break,
                Ok(false) => {
                    let pid = read_pid(&file);
                    // Held by this very process: a store still open here, or one just
                    // closed whose lock lives on in a child forked at that moment (the
                    // fork copies the descriptor; the copy closes at exec). Wait out
                    // the second case briefly; the first fails after the wait.
                    if pid == Some(std::process::id()) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    return Err(StorageError::Locked {
                        dir: dir.to_path_buf(),
                        pid,
                    });
                }
                Err(e) => return Err(StorageError::io("locking", &path, e)),
            }
        }
        write_pid(&file).map_err(|e| StorageError::io("writing pid into", &path, e))?;
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid of the process holding `dir/LOCK` now, or `None` if no process holds it (or
/// there is no lock file). For tools that stop whatever runs on a directory.
///
/// The probe takes a shared lock for an instant, so a store opened at that very
/// moment may be refused as if the directory were in use; retrying the open works.
pub fn holder(dir: &Path) -> io::Result<Option<u32>> {
    let file = match File::open(dir.join(LOCK_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Dropping `file` releases the probe's lock if it got one.
    Ok(match try_lock(&file, libc::LOCK_SH)? {
        true => None,
        false => read_pid(&file),
    })
}

/// `flock(fd, how | LOCK_NB)`: true if taken, false if another open file holds a
/// conflicting lock.
fn try_lock(file: &File, how: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock(2) on a descriptor this `File` owns for the whole call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

fn write_pid(file: &File) -> io::Result<()> {
    file.set_len(0)?;
    file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)
}

/// The pid in a held lock file. The holder writes it just after taking the lock, so a
/// file still empty is read again a few times before giving up.
fn read_pid(file: &File) -> Option<u32> {
    for _ in 0..10 {
        let mut buf = [0u8; 32];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        if let Ok(pid) = text.trim().parse() {
            return Some(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "dengine-dirlock-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_granted_after_drop() {
        let dir = scratch("second");
        let first = DirLock::acquire(&dir).unwrap();
        // flock locks belong to open files, so a second open in the same process
        // conflicts just as another process would.
        match DirLock::acquire(&dir) {
            Err(StorageError::Locked { dir: d, pid }) => {
                assert_eq!(d, dir);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        assert_eq!(holder(&dir).unwrap(), Some(std::process::id()));
        drop(first);
        assert_eq!(holder(&dir).unwrap(), None);
        let again = DirLock::acquire(&dir).expect("free after drop");
        assert_eq!(again.path(), dir.join(LOCK_FILE));
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stale_pid_in_an_unlocked_file_does_not_block() {
        // What a killed holder leaves behind: its pid, but no lock.
        let dir = scratch("stale");
        std::fs::write(dir.join(LOCK_FILE), "999999999\n").unwrap();
        assert_eq!(holder(&dir).unwrap(), None);
        let lock = DirLock::acquire(&dir).unwrap();
        let text = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        drop(lock);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
