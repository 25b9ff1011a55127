//! Configuration of the pure core. Every limit has a unit suffix and a default.

use thiserror::Error;

/// When the core asks the runtime to build a snapshot on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// Only on demand (`Event::SnapshotNow`).
    Never,
    /// Whenever this many entries were applied since the last snapshot.
    EveryEntries(u64),
}

/// When a learner counts as caught up (and may be promoted to voter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnerPromotion {
    /// The learner's match index may trail the leader's last index by at most this many entries…
    pub max_lag_entries: u64,
    /// …continuously for at least this many leader ticks.
    pub sustained_ticks: u64,
}

/// Test-only switches that deliberately break a Raft rule, so the simulator can prove
/// that its invariant checker notices. Never set these outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Commit an entry of an earlier term by counting replicas (violates Figure 8).
    pub commit_previous_term: bool,
    /// Grant votes without persisting `voted_for` first.
    pub skip_vote_persist: bool,
    /// Serve lease reads for a full election timeout, without the drift margin.
    pub lease_without_drift_margin: bool,
}

/// Tunables of the Raft core. Time is measured in ticks of the runtime's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// Lower bound (inclusive) of the randomized election timeout.
    pub election_timeout_ticks_min: u64,
    /// Upper bound (exclusive) of the randomized election timeout.
    pub election_timeout_ticks_max: u64,
    /// The leader sends heartbeats this often.
    pub heartbeat_interval_ticks: u64,
    /// Maximum appends in flight to one follower in replicate state.
    pub max_inflight_msgs: usize,
    /// Maximum payload bytes in flight to one follower.
    pub max_inflight_bytes: u64,
    /// Maximum entries in one append message.
    pub max_entries_per_msg: usize,
    /// Maximum payload bytes in one append message (at least one entry is always sent).
    pub max_bytes_per_msg: u64,
    /// Run a pre-vote round before bumping the term.
    pub pre_vote: bool,
    /// Leader steps down when it has not heard from a quorum for an election timeout;
    /// followers that heard from a live leader refuse (pre-)votes (leader stickiness).
    pub check_quorum: bool,
    /// Serve `ReadConsistency::Lease` reads from a leader lease (requires `check_quorum`).
    pub lease_reads: bool,
    /// The lease lasts `election_timeout_ticks_min - lease_drift_margin_ticks`.
    pub lease_drift_margin_ticks: u64,
    /// When a learner counts as caught up for promotion.
    pub learner_promotion: LearnerPromotion,
    /// The leader promotes learners on its own as soon as they are caught up
    /// (otherwise only on a `ConfChange::Promote` request).
    pub learner_auto_promote: bool,
    /// When to build snapshots automatically.
    pub snapshot_policy: SnapshotPolicy,
    /// After a snapshot at index `s`, keep entries above `s - compaction_trailing_entries`.
    pub compaction_trailing_entries: u64,
    /// A leadership transfer that has not completed after this many ticks is abandoned.
    pub transfer_timeout_ticks: u64,
    /// Maximum linearizable reads waiting in the leader's queue.
    pub max_pending_reads: usize,
    /// A leader refuses proposals (`ProposeError::Busy`) while its log holds this many
    /// entries beyond the commit index...
    pub max_uncommitted_entries: u64,
    /// ...or this many bytes of them (see `log::entry_bytes`).
    pub max_uncommitted_bytes: u64,
    /// Most entries handed to the state machine and not yet reported applied (the
    /// apply queue's bound)...
    pub max_apply_entries: u64,
    /// ...and most bytes of them (a single larger entry still goes alone).
    pub max_apply_bytes: u64,
    /// Also build a snapshot once the entries applied since the last one hold this
    /// many bytes (0: no byte trigger), so the in-memory log is bounded by bytes and
    /// not only by `snapshot_policy`'s entry count.
    pub snapshot_log_bytes: u64,
    /// Also build a snapshot once this many ticks passed since the last one (and
    /// something was applied since); 0: no time trigger.
    pub snapshot_interval_ticks: u64,
    #[doc(hidden)]
    pub bugs: Bugs,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            election_timeout_ticks_min: 10,
            election_timeout_ticks_max: 20,
            heartbeat_interval_ticks: 2,
            max_inflight_msgs: 256,
            max_inflight_bytes: 32 << 20,
            max_entries_per_msg: 4096,
            max_bytes_per_msg: 1 << 20,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            lease_drift_margin_ticks: 2,
            learner_promotion: LearnerPromotion {
                max_lag_entries: 64,
                sustained_ticks: 10,
            },
            learner_auto_promote: false,
            snapshot_policy: SnapshotPolicy::EveryEntries(100_000),
            compaction_trailing_entries: 10_000,
            transfer_timeout_ticks: 20,
            max_pending_reads: 65_536,
            max_uncommitted_entries: 65_536,
            max_uncommitted_bytes: 256 << 20,
            max_apply_entries: 8_192,
            max_apply_bytes: 64 << 20,
            snapshot_log_bytes: 256 << 20,
            snapshot_interval_ticks: 0,
            bugs: Bugs::default(),
        }
    }
}

/// A configuration value that makes no sense; names the offending field.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("raft config field `{field}` is invalid: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

fn check(ok: bool, field: &'static str, reason: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid { field, reason })
    }
}

impl RaftConfig {
    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.heartbeat_interval_ticks >= 1,
            "heartbeat_interval_ticks",
            "must be at least 1",
        )?;
        check(
            self.election_timeout_ticks_min > self.heartbeat_interval_ticks,
            "election_timeout_ticks_min",
            "must exceed heartbeat_interval_ticks",
        )?;
        check(
            self.election_timeout_ticks_max > self.election_timeout_ticks_min,
            "election_timeout_ticks_max",
            "must exceed election_timeout_ticks_min",
        )?;
        check(
            self.max_inflight_msgs >= 1,
            "max_inflight_msgs",
            "must be at least 1",
        )?;
        check(
            self.max_inflight_bytes >= 1,
            "max_inflight_bytes",
            "must be at least 1",
        )?;
        check(
            self.max_entries_per_msg >= 1,
            "max_entries_per_msg",
            "must be at least 1",
        )?;
        check(
            self.max_bytes_per_msg >= 1,
            "max_bytes_per_msg",
            "must be at least 1",
        )?;
        check(
            !self.lease_reads || self.check_quorum,
            "lease_reads",
            "lease reads require check_quorum (leader stickiness)",
        )?;
        check(
            self.lease_drift_margin_ticks < self.election_timeout_ticks_min,
            "lease_drift_margin_ticks",
            "must be smaller than election_timeout_ticks_min",
        )?;
        check(
            self.transfer_timeout_ticks >= 1,
            "transfer_timeout_ticks",
            "must be at least 1",
        )?;
        check(
            self.max_pending_reads >= 1,
            "max_pending_reads",
            "must be at least 1",
        )?;
        if let SnapshotPolicy::EveryEntries(n) = self.snapshot_policy {
            check(
                n >= 1,
                "snapshot_policy",
                "EveryEntries needs at least 1 entry",
            )?;
        }
        Ok(())
    }

    /// Length of a leader lease in ticks, measured from the start of a confirmed round.
    pub fn lease_ticks(&self) -> u64 {
        if self.bugs.lease_without_drift_margin {
            self.election_timeout_ticks_min
        } else {
            self.election_timeout_ticks_min - self.lease_drift_margin_ticks
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        RaftConfig::default().validate().unwrap();
    }

    #[test]
    fn error_names_field() {
        let cfg = RaftConfig {
            election_timeout_ticks_max: 5,
            ..RaftConfig::default()
        };
        let err = cfg.validate().unwrap_err();
        assert!(err.to_string().contains("election_timeout_ticks_max"));
        let cfg = RaftConfig {
            lease_reads: true,
            check_quorum: false,
            ..RaftConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("lease_reads")
        );
    }
}
