//! Storage: the durable Raft log ([`StorageEngine`]) and the replicated state machine
//! ([`StateMachine`]), with file, RocksDB (feature `rocksdb`) and in-memory backends.
//!
//! # How the runtime uses it
//!
//! ```text
//!  event loop (tokio, current thread)          storage thread (FileStorageEngine)
//!  ──────────────────────────────────          ──────────────────────────────────
//!  core says "persist entries/hard state" ──► append_with(entries, hs, callback)
//!                                              queue ─► group commit: one write,
//!                                              one fdatasync for every waiting append
//!  event "persisted up to N"  ◄──────────────  callback(Ok(N))  (in submission order)
//! ```
//!
//! Truncations and purges are queued on the same thread, so they are ordered with
//! appends. At start-up [`recover`] reads back the hard state, the compaction point and
//! every entry after it.
//!
//! The state machine is applied from a blocking task; its durable snapshot says from
//! which index the log must be replayed after a restart
//! ([`StateMachine::durable_meta`]). The log may be purged only up to a durable
//! snapshot.

pub mod codec;
pub mod completion;
pub mod dir_lock;
mod engine;
mod error;
pub mod file;
pub mod kv;
mod log_queue;
mod memory;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;
pub mod session_table;
pub mod snapshot_staging;
mod state_machine;

pub use completion::{Callback, Pending, pending};
pub use dir_lock::DirLock;
pub use engine::{RecoveredLog, StorageEngine, recover};
pub use error::{Result, StorageError};
pub use file::{FileStateMachine, FileStorageEngine, FileStorageOptions};
pub use kv::{KvCommand, KvResult};
pub use memory::{MemStateMachine, MemStorageEngine};
#[cfg(feature = "rocksdb")]
pub use rocksdb::{RocksDBStateMachine, RocksDBStorageEngine};
pub use session_table::{SESSION_IDLE_ENTRIES_MAX, SESSIONS_MAX};
pub use state_machine::{SNAPSHOT_CHUNK_BYTES, Snapshot, SnapshotChunks, StateMachine};
