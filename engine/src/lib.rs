//! d-engine: a strongly consistent Raft consensus engine.
//!
//! The crate is split the way data flows through it:
//!
//! - [`core`]: the pure Raft state machine. Events in (messages, ticks, proposals,
//!   "storage persisted up to N"), actions out (persist, send, apply, respond). No I/O,
//!   no clock, no global randomness: it is driven by the runtime in production and by
//!   the deterministic simulator in tests.
//! - [`storage`]: the durable log and the replicated state machine (file, RocksDB,
//!   memory).
//! - [`node`]: [`NodeBuilder`] and the event loop that performs the core's actions.
//! - [`network`]: the gRPC services and peer links.
//! - [`client`]: the Rust client (leader discovery, retries, sessions).
//! - [`config`]: typed configuration from defaults, TOML and the environment.
//!
//! The Quick Start is in [`node`]; the guides are in [`docs`].

pub mod client;
pub mod config;
pub mod core;
pub mod docs;
mod error;
pub mod metrics;
pub mod network;
pub mod node;
pub mod storage;

/// The wire protocol, re-exported for users of the services.
pub use d_engine_proto as proto;

pub use error::{ConsensusError, Error, NetworkError, SnapshotError};
pub use node::{Node, NodeBuilder};
pub use storage::{FileStateMachine, FileStorageEngine, StateMachine, StorageEngine, StorageError};

/// Errors by area, under [`Error`].
pub mod errors {
    pub use crate::core::{MembershipError, ProposeError, ReadError, TransferError};
    pub use crate::error::*;
}
