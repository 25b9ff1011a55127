//! Range and consistency checks on a parsed [`Config`].

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

use super::{Config, ConfigError};

/// Smallest `storage.segment_bytes`, 2,113,536: twice the largest entry (a 1 MiB value
/// with its key, session and record headers, MAX_ENTRY_BYTES = 1 MiB + 8 KiB), so any
/// entry a client may send fits in a segment with its header.
const SEGMENT_BYTES_MIN: u64 = 2 * d_engine_proto::limits::MAX_ENTRY_BYTES as u64;
/// Largest `storage.segment_bytes`: the file log addresses a segment with u32 offsets
/// (`storage::file` refuses more when it opens).
const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// The file log's records are 8-byte aligned, so a segment is a whole number of words.
const SEGMENT_BYTES_ALIGN: u64 = 8;

/// One thing wrong with a configuration: the key and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn check(&mut self, ok: bool, key: &str, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(Problem {
                key: key.to_string(),
                problem: problem(),
            });
        }
    }

    fn positive(&mut self, key: &str, value: u64) {
        self.check(value > 0, key, || "must be greater than 0".into());
    }

    fn addr(&mut self, key: &str, value: &str) {
        self.check(value.parse::<SocketAddr>().is_ok(), key, || {
            format!("`{value}` is not an ip:port address")
        });
    }
}

impl Config {
    /// Checks every key's range and the relations between keys; the error lists every
    /// problem found, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems(Vec::new());
        self.validate_node(&mut p);
        self.validate_raft(&mut p);
        let (s, n) = (&self.snapshot, &self.network);
        p.positive("snapshot.chunk_bytes", s.chunk_bytes);
        validate_segment_bytes(&mut p, self.storage.segment_bytes);
        p.positive("network.connect_timeout_ms", n.connect_timeout_ms);
        p.positive("network.request_timeout_ms", n.request_timeout_ms);
        p.positive("network.keepalive_interval_ms", n.keepalive_interval_ms);
        p.positive("network.peer_queue_max", n.peer_queue_max as u64);
        p.check(
            n.reconnect_backoff_ms_min > 0
                && n.reconnect_backoff_ms_min <= n.reconnect_backoff_ms_max,
            "network.reconnect_backoff_ms_min",
            || "must be > 0 and <= network.reconnect_backoff_ms_max".into(),
        );
        if self.metrics.enabled {
            p.addr("metrics.listen_addr", &self.metrics.listen_addr);
        }
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(p.0))
        }
    }

    fn validate_node(&self, p: &mut Problems) {
        p.positive("node.id", self.node.id);
        p.addr("node.listen_addr", &self.node.listen_addr);
        p.check(
            !self.node.data_dir.as_os_str().is_empty(),
            "node.data_dir",
            || "must not be empty".into(),
        );
        let members = &self.cluster.initial_members;
        p.check(!members.is_empty(), "cluster.initial_members", || {
            "must list at least one member".into()
        });
        let mut ids = BTreeSet::new();
        for (i, m) in members.iter().enumerate() {
            p.positive(&format!("cluster.initial_members[{i}].id"), m.id);
            p.check(
                ids.insert(m.id),
                &format!("cluster.initial_members[{i}].id"),
                || format!("node id {} is listed twice", m.id),
            );
            p.addr(&format!("cluster.initial_members[{i}].addr"), &m.addr);
        }
        p.check(
            members.iter().any(|m| !m.learner),
            "cluster.initial_members",
            || "must contain at least one voter".into(),
        );
        p.check(
            members.iter().any(|m| m.id == self.node.id),
            "cluster.initial_members",
            || format!("does not list this node (node.id = {})", self.node.id),
        );
    }

    fn validate_raft(&self, p: &mut Problems) {
        let r = &self.raft;
        p.positive("raft.tick_ms", r.tick_ms);
        p.positive("raft.heartbeat_interval_ms", r.heartbeat_interval_ms);
        p.positive("raft.inflight_msgs_max", r.inflight_msgs_max as u64);
        p.positive("raft.inflight_bytes_max", r.inflight_bytes_max);
        p.positive("raft.entries_per_msg_max", r.entries_per_msg_max as u64);
        p.positive("raft.bytes_per_msg_max", r.bytes_per_msg_max);
        p.positive("raft.proposal_queue_max", r.proposal_queue_max as u64);
        p.positive("raft.uncommitted_entries_max", r.uncommitted_entries_max);
        p.positive("raft.uncommitted_bytes_max", r.uncommitted_bytes_max);
        p.positive("raft.apply_entries_max", r.apply_entries_max);
        p.positive("raft.apply_bytes_max", r.apply_bytes_max);
        p.positive("raft.transfer_timeout_ms", r.transfer_timeout_ms);
        p.check(
            r.election_timeout_ms_min < r.election_timeout_ms_max,
            "raft.election_timeout_ms_min",
            || {
                format!(
                    "({}) must be less than raft.election_timeout_ms_max ({})",
                    r.election_timeout_ms_min, r.election_timeout_ms_max
                )
            },
        );
        p.check(
            r.heartbeat_interval_ms.saturating_mul(2) <= r.election_timeout_ms_min,
            "raft.heartbeat_interval_ms",
            || {
                format!(
                    "({}) must be at most half of raft.election_timeout_ms_min ({})",
                    r.heartbeat_interval_ms, r.election_timeout_ms_min
                )
            },
        );
        p.check(r.tick_ms <= r.heartbeat_interval_ms, "raft.tick_ms", || {
            format!(
                "({}) must not exceed raft.heartbeat_interval_ms ({})",
                r.tick_ms, r.heartbeat_interval_ms
            )
        });
        let margin = self.read.clock_drift_margin_ms;
        p.check(
            !self.read.lease_enabled || margin < r.election_timeout_ms_min,
            "read.clock_drift_margin_ms",
            || {
                format!(
                    "({margin}) must be less than raft.election_timeout_ms_min ({}) when leases are enabled",
                    r.election_timeout_ms_min
                )
            },
        );
        // Without check_quorum a follower may grant votes while the leader's lease
        // still holds, so a lease read could return a value already overwritten.
        p.check(
            !self.read.lease_enabled || r.check_quorum,
            "read.lease_enabled",
            || "requires raft.check_quorum = true".into(),
        );
    }
}

/// The file log's rules for `storage.segment_bytes`, checked here so that a bad value
/// is refused naming the key rather than when storage opens.
fn validate_segment_bytes(p: &mut Problems, bytes: u64) {
    let key = "storage.segment_bytes";
    p.check(bytes >= SEGMENT_BYTES_MIN, key, || {
        format!(
            "({bytes}) must be at least {SEGMENT_BYTES_MIN}, twice the largest entry \
             (a segment must hold the largest entry a client may send)"
        )
    });
    p.check(bytes <= SEGMENT_BYTES_MAX, key, || {
        format!("({bytes}) must be at most {SEGMENT_BYTES_MAX}")
    });
    p.check(bytes.is_multiple_of(SEGMENT_BYTES_ALIGN), key, || {
        format!("({bytes}) must be a multiple of {SEGMENT_BYTES_ALIGN}")
    });
}
