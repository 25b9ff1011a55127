//! From configuration and storage to a Raft core ready to run.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;

use crate::config::{Config, StorageBackend};
use crate::core::{self, LogIndex, Membership, Raft, Restored, SnapshotMeta};
use crate::error::{ConsensusError, Error};
use crate::network::AddressBook;
use crate::storage::{
    FileStateMachine, FileStorageEngine, FileStorageOptions, MemStateMachine, MemStorageEngine,
    StateMachine, StorageEngine, recover,
};

pub(crate) struct Parts {
    pub config: Arc<Config>,
    pub shutdown: watch::Receiver<()>,
    pub storage: Arc<dyn StorageEngine>,
    pub sm: Arc<dyn StateMachine>,
    pub raft: Raft,
    pub applied: LogIndex,
    pub latest_snapshot: SnapshotMeta,
    pub book: AddressBook,
}

/// The core's configuration from the node's: times in milliseconds become ticks.
pub fn core_config(c: &Config) -> core::RaftConfig {
    let tick = c.raft.tick_ms.max(1);
    let ticks = |ms: u64| ms.div_ceil(tick).max(1);
    core::RaftConfig {
        election_timeout_ticks_min: ticks(c.raft.election_timeout_ms_min),
        election_timeout_ticks_max: ticks(c.raft.election_timeout_ms_max)
            .max(ticks(c.raft.election_timeout_ms_min) + 1),
        heartbeat_interval_ticks: ticks(c.raft.heartbeat_interval_ms),
        max_inflight_msgs: c.raft.inflight_msgs_max,
        max_inflight_bytes: c.raft.inflight_bytes_max,
        max_entries_per_msg: c.raft.entries_per_msg_max,
        max_bytes_per_msg: c.raft.bytes_per_msg_max,
        pre_vote: c.raft.pre_vote,
        check_quorum: c.raft.check_quorum,
        lease_reads: c.read.lease_enabled,
        lease_drift_margin_ticks: ticks(c.read.clock_drift_margin_ms),
        learner_promotion: core::LearnerPromotion {
            max_lag_entries: c.raft.learner_promote_lag_entries_max,
            sustained_ticks: ticks(c.raft.learner_promote_sustain_ms),
        },
        snapshot_policy: match c.snapshot.entries_since_last {
            0 => core::SnapshotPolicy::Never,
            n => core::SnapshotPolicy::EveryEntries(n),
        },
        compaction_trailing_entries: c.snapshot.trailing_entries,
        transfer_timeout_ticks: ticks(c.raft.transfer_timeout_ms),
        learner_auto_promote: c.raft.learner_auto_promote,
        max_uncommitted_entries: c.raft.uncommitted_entries_max,
        max_uncommitted_bytes: c.raft.uncommitted_bytes_max,
        max_apply_entries: c.raft.apply_entries_max,
        max_apply_bytes: c.raft.apply_bytes_max,
        snapshot_log_bytes: c.snapshot.log_bytes_since_last,
        snapshot_interval_ticks: match c.snapshot.interval_secs {
            0 => 0,
            secs => ticks(secs.saturating_mul(1000)),
        },
        ..core::RaftConfig::default()
    }
}

fn initial_membership(c: &Config) -> Membership {
    let mut m = Membership::default();
    for member in &c.cluster.initial_members {
        if member.learner {
            m.learners.insert(member.id);
        } else {
            m.voters.insert(member.id);
        }
        m.addresses.insert(member.id, member.addr.clone());
    }
    m
}

/// A log and a state machine, behind trait objects.
type Backends = (Arc<dyn StorageEngine>, Arc<dyn StateMachine>);

fn open_backends(c: &Config) -> Result<Backends, Error> {
    let dir = &c.node.data_dir;
    Ok(match c.storage.backend {
        StorageBackend::File => {
            let opts = FileStorageOptions {
                segment_bytes: c.storage.segment_bytes,
                ..Default::default()
            };
            (
                Arc::new(FileStorageEngine::open(dir.join("storage"), opts)?),
                Arc::new(FileStateMachine::open(
                    dir.join("state_machine"),
                    c.node.id,
                )?),
            )
        }
        StorageBackend::Memory => (
            Arc::new(MemStorageEngine::new()),
            Arc::new(MemStateMachine::new()),
        ),
        #[cfg(feature = "rocksdb")]
        StorageBackend::Rocksdb => (
            Arc::new(crate::storage::RocksDBStorageEngine::new(
                dir.join("rocksdb-log"),
            )?),
            Arc::new(crate::storage::RocksDBStateMachine::new(
                dir.join("rocksdb-state"),
            )?),
        ),
        #[cfg(not(feature = "rocksdb"))]
        StorageBackend::Rocksdb => {
            return Err(Error::Config(crate::config::ConfigError::Invalid(vec![
                crate::config::Problem {
                    key: "storage.backend".into(),
                    problem: "`rocksdb` needs a build with the `rocksdb` feature".into(),
                },
            ])));
        }
    })
}

pub(crate) fn build(
    config: Result<Config, Error>,
    shutdown: watch::Receiver<()>,
    storage: Option<Arc<dyn StorageEngine>>,
    sm: Option<Arc<dyn StateMachine>>,
) -> Result<Parts, Error> {
    let config = config?;
    let (storage, sm) = match (storage, sm) {
        (Some(s), Some(m)) => (s, m),
        (s, m) => {
            let (ds, dm) = open_backends(&config)?;
            (s.unwrap_or(ds), m.unwrap_or(dm))
        }
    };
    let log = recover(&*storage)?;
    let sm_meta = sm.durable_meta();
    let applied = sm.last_applied();
    if log.snapshot.last_index > sm_meta.last_index {
        return Err(ConsensusError::Inconsistent(format!(
            "the log is compacted to {} but the state machine's snapshot only covers {}",
            log.snapshot.last_index, sm_meta.last_index
        ))
        .into());
    }
    let fresh =
        log.hard_state == Default::default() && log.entries.is_empty() && sm_meta.last_index == 0;
    let mut snapshot = if sm_meta.last_index >= log.snapshot.last_index {
        sm_meta
    } else {
        log.snapshot.clone()
    };
    let has_config_entry = log
        .entries
        .iter()
        .any(|e| matches!(e.payload, core::EntryPayload::Config(_)));
    if snapshot.membership == Membership::default() && !has_config_entry {
        // The first membership comes from the configuration: until a membership change
        // or a snapshot records one durably, every start derives it the same way.
        snapshot.membership = initial_membership(&config);
    }
    info!(
        node = config.node.id,
        fresh,
        term = log.hard_state.term,
        snapshot = snapshot.last_index,
        entries = log.entries.len(),
        applied,
        "recovered durable state"
    );
    let restored = Restored {
        hard_state: log.hard_state,
        snapshot: snapshot.clone(),
        entries: log.entries,
        applied,
    };
    let seed = seed_from_entropy() ^ config.node.id;
    let raft = Raft::new(config.node.id, core_config(&config), seed, restored)
        .map_err(ConsensusError::from)?;
    // The configured members seed the book (a node's own configuration may route to a
    // peer its own way, e.g. through a proxy); the durable membership (snapshot meta and
    // config entries) adds every current member the configuration does not list. Data
    // written before memberships carried addresses has none: then the book is the
    // configuration's, as it was.
    let book = AddressBook::new(
        config
            .cluster
            .initial_members
            .iter()
            .map(|m| (m.id, m.addr.clone())),
    );
    super::event_loop::learn_addresses(&book, config.node.id, raft.membership());
    Ok(Parts {
        config: Arc::new(config),
        shutdown,
        storage,
        sm,
        raft,
        applied,
        latest_snapshot: snapshot,
        book,
    })
}

/// Election jitter needs only to differ between nodes and runs: the std hasher's
/// per-process random keys are enough.
fn seed_from_entropy() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}
