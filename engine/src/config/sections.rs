//! The sections of [`Config`](super::Config), each with its defaults.
//!
//! Every limit carries its unit in its name (`_ms`, `_bytes`, `_entries`) and has a
//! default chosen for a local cluster on one machine.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// This node's identity and where it keeps its data.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id: non-zero, unique in the cluster, never reused.
    pub id: u64,
    /// Every message between nodes and from clients carries this id; a mismatch is
    /// refused, so two clusters on one host cannot mix.
    pub cluster_id: u64,
    /// Address the node listens on for peers, clients and admin calls.
    pub listen_addr: String,
    /// Directory holding the log, hard state and snapshots.
    pub data_dir: PathBuf,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: 1,
            cluster_id: 1,
            listen_addr: "127.0.0.1:9081".into(),
            data_dir: PathBuf::from("./data"),
        }
    }
}

/// A member of the initial cluster.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub id: u64,
    pub addr: String,
    /// Learners receive the log but neither vote nor count towards a quorum.
    #[serde(default)]
    pub learner: bool,
}

/// The cluster's initial membership. Used only when the node starts with an empty log;
/// afterwards membership lives in the log and changes through the admin service.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub initial_members: Vec<MemberConfig>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            initial_members: vec![MemberConfig {
                id: 1,
                addr: "127.0.0.1:9081".into(),
                learner: false,
            }],
        }
    }
}

/// Raft timing, batching and flow control.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Length of one logical tick of the core; every timeout below is rounded up to
    /// whole ticks.
    pub tick_ms: u64,
    /// A follower that hears nothing from a leader for a random time in
    /// [min, max) starts an election.
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    /// How often a leader sends heartbeats; must be well under the election timeout.
    pub heartbeat_interval_ms: u64,
    /// Ask for votes only after a pre-vote round succeeds, so a node that was cut off
    /// cannot force a term change when it returns.
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum for an election timeout.
    pub check_quorum: bool,
    /// Append messages in flight per follower, and their payload bytes.
    pub inflight_msgs_max: usize,
    pub inflight_bytes_max: u64,
    /// Largest batch of entries in one append message.
    pub entries_per_msg_max: usize,
    pub bytes_per_msg_max: u64,
    /// Proposals waiting for the leader's event loop; past this, clients get BUSY.
    pub proposal_queue_max: usize,
    /// Entries in the leader's log beyond the commit index, and their bytes; past
    /// either, new proposals get BUSY (a slow quorum cannot grow the log without bound).
    pub uncommitted_entries_max: u64,
    pub uncommitted_bytes_max: u64,
    /// Committed entries handed to the state machine and not yet applied (the apply
    /// queue), by count and bytes.
    pub apply_entries_max: u64,
    pub apply_bytes_max: u64,
    /// A leadership transfer that has not completed after this long is abandoned.
    pub transfer_timeout_ms: u64,
    /// Learners are promoted automatically once they stay within
    /// `learner_promote_lag_entries_max` entries of the leader for
    /// `learner_promote_sustain_ms` (when `learner_auto_promote` is on).
    pub learner_auto_promote: bool,
    pub learner_promote_lag_entries_max: u64,
    pub learner_promote_sustain_ms: u64,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 10,
            election_timeout_ms_min: 300,
            election_timeout_ms_max: 600,
            heartbeat_interval_ms: 50,
            pre_vote: true,
            check_quorum: true,
            inflight_msgs_max: 256,
            inflight_bytes_max: 64 * 1024 * 1024,
            entries_per_msg_max: 4096,
            bytes_per_msg_max: 4 * 1024 * 1024,
            proposal_queue_max: 16_384,
            uncommitted_entries_max: 65_536,
            uncommitted_bytes_max: 256 * 1024 * 1024,
            apply_entries_max: 8_192,
            apply_bytes_max: 64 * 1024 * 1024,
            transfer_timeout_ms: 1_200,
            learner_auto_promote: false,
            learner_promote_lag_entries_max: 1_000,
            learner_promote_sustain_ms: 1_000,
        }
    }
}

/// Reads. Each read request names its consistency; one that leaves the field out
/// gets the protocol's value 0, `READ_CONSISTENCY_LINEARIZABLE`, so the node has no
/// default of its own to configure.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadConfig {
    /// Serve lease reads from the leader's lease (needs `raft.check_quorum`, which keeps
    /// followers from electing another leader while the lease holds). Off, a lease
    /// read is not refused: it is served as a linearizable one, after a ReadIndex round.
    pub lease_enabled: bool,
    /// The lease is the election timeout minus this margin, to allow for clocks that
    /// run at different speeds on different nodes.
    pub clock_drift_margin_ms: u64,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            lease_enabled: false,
            clock_drift_margin_ms: 100,
        }
    }
}

/// When snapshots are taken and how much log is kept behind them.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Take a snapshot after this many applied entries since the last one; 0 = only on
    /// demand (the admin call).
    pub entries_since_last: u64,
    /// Entries kept in the log behind a snapshot, so slightly lagging followers catch
    /// up from the log instead of needing a snapshot.
    pub trailing_entries: u64,
    /// Size of one chunk when a snapshot is streamed to a follower.
    pub chunk_bytes: u64,
    /// Also take a snapshot once the entries applied since the last one hold this many
    /// bytes (0 = no byte trigger), so the in-memory log is bounded by bytes too.
    pub log_bytes_since_last: u64,
    /// Also take a snapshot once this many seconds passed since the last one, if
    /// anything was applied since (0 = no time trigger). Ignored when
    /// `entries_since_last` is 0 (snapshots only on demand).
    pub interval_secs: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            entries_since_last: 100_000,
            trailing_entries: 10_000,
            chunk_bytes: 1024 * 1024,
            log_bytes_since_last: 256 * 1024 * 1024,
            interval_secs: 0,
        }
    }
}

/// Which storage backend holds the log and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    File,
    Rocksdb,
    Memory,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    /// Size of one preallocated log segment file (see `FileStorageOptions::segment_bytes`):
    /// at least 2,113,536 (twice the largest entry), at most `u32::MAX`, a multiple of 8.
    pub segment_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::File,
            segment_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Connections and request handling.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub connect_timeout_ms: u64,
    /// A client request not answered within this long gets TIMEOUT (outcome unknown).
    pub request_timeout_ms: u64,
    /// HTTP/2 keepalive pings on peer connections, so a dead link is noticed fast.
    pub keepalive_interval_ms: u64,
    pub keepalive_timeout_ms: u64,
    /// Wait before reopening the replication stream to a peer that has not answered
    /// the last one: min, doubling per unanswered attempt up to max, back to min on the
    /// peer's first answer. Messages for the stream meanwhile are dropped (Raft resends).
    pub reconnect_backoff_ms_min: u64,
    pub reconnect_backoff_ms_max: u64,
    /// Messages queued to one peer; when it is full, the message being queued (the
    /// newest) is dropped, and Raft resends what matters (see `network::peer_link`).
    pub peer_queue_max: usize,
    // No key bounds client requests: their sizes are the protocol's constants
    // (`d_engine_proto::limits`), which clients size their batches by.
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            connect_timeout_ms: 500,
            request_timeout_ms: 5_000,
            keepalive_interval_ms: 1_000,
            keepalive_timeout_ms: 1_000,
            reconnect_backoff_ms_min: 20,
            reconnect_backoff_ms_max: 500,
            peer_queue_max: 4_096,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `text` for people, `json` (one object per line) for log pipelines.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `d_engine=debug`; RUST_LOG overrides it.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics at http://<listen_addr>/metrics.
    pub enabled: bool,
    pub listen_addr: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: false,
            listen_addr: "127.0.0.1:9181".into(),
        }
    }
}
