//! The storage error type, shared by every backend.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::types::LogIndex;

/// Why a storage operation failed.
///
/// The type is `Clone` (I/O causes are kept behind an `Arc`) because one failed group
/// commit is reported to every append that was waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O call failed; `op` says what was being done and `path` on which file.
    #[error("I/O error while {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The file system is full (ENOSPC or quota). Nothing in the failed request is durable.
    #[error("disk full while {op} {path}")]
    DiskFull { op: &'static str, path: PathBuf },
    /// The process may not read or write `path`.
    #[error("permission denied while {op} {path}")]
    PermissionDenied { op: &'static str, path: PathBuf },
    /// The data directory exists but is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    /// Another process (or another open store in this one) uses the directory. Nothing
    /// in it was read or changed. The lock goes away with its holder, so this is never
    /// stale: stop the process named by `pid`, or use another directory.
    #[error(
        "{dir} is in use by another process ({}); only one process may open a data directory",
        describe_pid(.pid)
    )]
    Locked { dir: PathBuf, pid: Option<u32> },
    /// Bytes on disk are damaged somewhere a crash cannot explain (not a torn tail).
    /// The engine refuses to start rather than silently losing acknowledged data.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A file was written by a newer (or unknown) format version.
    #[error("unsupported format version {version} in {path}")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    /// The entry was folded into a snapshot and removed from the log.
    #[error("log index {index} is compacted (first index in the log is {first})")]
    Compacted { index: LogIndex, first: LogIndex },
    /// The entry is not (yet) in the log.
    #[error("log index {index} is past the last index {last}")]
    Unavailable { index: LogIndex, last: LogIndex },
    /// The request breaks the method's contract (a gap in the log, a truncation into the
    /// compacted prefix, an entry that does not fit a segment, ...). Nothing was written.
    #[error("invalid storage request: {0}")]
    InvalidRequest(String),
    /// A value could not be decoded (bad snapshot stream, bad command bytes, ...).
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// The submission queue is full; retry later (the queue is bounded on purpose).
    #[error("storage queue is full ({capacity} requests in flight)")]
    Busy { capacity: usize },
    /// An earlier write or fsync failed. After a failed fsync the kernel may have dropped
    /// dirty pages, so the engine stops accepting writes and must be reopened (which
    /// re-reads what is really on disk).
    #[error("storage engine stopped after an earlier failure: {0}")]
    Failed(Box<StorageError>),
    /// The engine was closed or its writer thread is gone.
    #[error("storage engine is closed")]
    Closed,
    /// A backend-specific failure (e.g. RocksDB).
    #[error("{backend}: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

impl StorageError {
    /// Wraps an I/O error with context, classifying full disks and permission errors
    /// into their own variants so callers can match on them.
    pub fn io(op: &'static str, path: impl AsRef<Path>, err: io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        match err.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                StorageError::DiskFull { op, path }
            }
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                StorageError::PermissionDenied { op, path }
            }
            io::ErrorKind::NotADirectory => StorageError::NotADirectory { path },
            _ => StorageError::Io {
                op,
                path,
                source: Arc::new(err),
            },
        }
    }

    pub(crate) fn corrupt(path: impl AsRef<Path>, offset: u64, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.as_ref().to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for [`StorageError::DiskFull`], also when wrapped in [`StorageError::Failed`].
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::DiskFull { .. } => true,
            StorageError::Failed(inner) => inner.is_disk_full(),
            _ => false,
        }
    }
}

fn describe_pid(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".into(),
    }
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
