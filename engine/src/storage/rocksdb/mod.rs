//! RocksDB backends (feature `rocksdb`): [`RocksDBStorageEngine`] and
//! [`RocksDBStateMachine`].
//!
//! Built against the system `librocksdb` (see `.cargo/config.toml`), so enabling the
//! feature costs a bindings build, not a RocksDB build.

mod engine;
mod state_machine;

pub use engine::RocksDBStorageEngine;
pub use state_machine::RocksDBStateMachine;

use std::path::Path;

use super::error::StorageError;

/// Maps a RocksDB error, recognising a full disk and permission problems.
pub(crate) fn db_err(op: &'static str, path: &Path, e: rocksdb::Error) -> StorageError {
    let msg = e.into_string();
    let lower = msg.to_ascii_lowercase();
    if lower.contains("no space left") {
        StorageError::DiskFull {
            op,
            path: path.to_path_buf(),
        }
    } else if lower.contains("permission denied") || lower.contains("read-only file system") {
        StorageError::PermissionDenied {
            op,
            path: path.to_path_buf(),
        }
    } else if lower.contains("corruption") {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: msg,
        }
    } else {
        StorageError::Backend {
            backend: "rocksdb",
            message: format!("{op} {}: {msg}", path.display()),
        }
    }
}

/// Index keys are big-endian so RocksDB's byte order is log order.
pub(crate) fn index_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}
