//! The crate's errors, one enum per area, gathered under [`Error`].

pub use crate::config::ConfigError;
pub use crate::core::{ConfigError as CoreConfigError, MembershipError};
pub use crate::storage::StorageError;

/// Failures of the network layer: binding, connecting, malformed or refused messages.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad address {addr}: {reason}")]
    BadAddress { addr: String, reason: String },
    #[error("rpc server failed: {0}")]
    Server(String),
}

/// Failures to start or run consensus: a core configuration the engine refuses, or a
/// durable state that does not fit together.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("raft configuration: {0}")]
    Config(#[from] CoreConfigError),
    #[error("inconsistent durable state: {0}")]
    Inconsistent(String),
}

/// Failures while building, sending or installing snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot storage: {0}")]
    Storage(#[from] StorageError),
    #[error("snapshot transfer: {0}")]
    Transfer(String),
}

/// Any error of d-engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("membership change: {0}")]
    Membership(#[from] MembershipError),
    #[error("the node was built without {0}")]
    Missing(&'static str),
}
