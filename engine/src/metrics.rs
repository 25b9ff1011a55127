//! Metrics: names, and the Prometheus exporter.
//!
//! Everything is recorded through the `metrics` facade, so an embedding application
//! can install its own recorder; with none installed the calls cost almost nothing.
//! `metrics.enabled = true` makes the node serve them in the Prometheus text format
//! at `http://<metrics.listen_addr>/metrics`. Every series carries a `node` label.
//! `docs/operations.md` says what each one means and what to alert on.

use std::net::SocketAddr;

/// Role of the node: 0 follower, 1 pre-candidate, 2 candidate, 3 leader, 4 learner.
pub const ROLE: &str = "dengine_role";
pub const TERM: &str = "dengine_term";
/// The leader this node follows (0 = none known).
pub const LEADER_ID: &str = "dengine_leader_id";
pub const COMMIT_INDEX: &str = "dengine_commit_index";
pub const APPLIED_INDEX: &str = "dengine_applied_index";
pub const LAST_INDEX: &str = "dengine_last_index";
pub const SNAPSHOT_INDEX: &str = "dengine_snapshot_index";
/// Leader only, per `peer`: the follower's durable match index and its lag in entries.
pub const PEER_MATCH_INDEX: &str = "dengine_peer_match_index";
pub const PEER_LAG_ENTRIES: &str = "dengine_peer_lag_entries";
/// Requests waiting for the event loop, by `queue` (client, peer).
pub const QUEUE_DEPTH: &str = "dengine_queue_depth";
/// Writes proposed to the core (including those refused as not-leader).
pub const PROPOSALS: &str = "dengine_proposals_total";
/// Reads by `consistency`.
pub const READS: &str = "dengine_reads_total";
/// 1 while storage holds writes back because the disk is full (writes answer
/// NO_SPACE; the node leaves the state by itself once space is freed), else 0.
pub const STORAGE_NO_SPACE: &str = "dengine_storage_no_space";
/// Requests answered BUSY because a queue was full.
pub const BUSY: &str = "dengine_busy_total";
/// Time from queueing a log write to its being durable (includes the fsync), and
/// entries per write.
pub const LOG_WRITE_SECONDS: &str = "dengine_log_write_seconds";
pub const LOG_WRITE_ENTRIES: &str = "dengine_log_write_entries";
/// One fdatasync of the file log (the group commit's flush).
pub const FSYNC_SECONDS: &str = "dengine_fsync_seconds";
/// Applying one batch to the state machine, and entries per batch.
pub const APPLY_SECONDS: &str = "dengine_apply_seconds";
pub const APPLY_BATCH_ENTRIES: &str = "dengine_apply_batch_entries";
/// Elections: pre-vote rounds, elections started, elections won.
pub const PREVOTES: &str = "dengine_prevotes_total";
pub const ELECTIONS_STARTED: &str = "dengine_elections_started_total";
pub const ELECTIONS_WON: &str = "dengine_elections_won_total";
/// Snapshots built, sent (with bytes) and installed, and build duration.
pub const SNAPSHOTS_BUILT: &str = "dengine_snapshots_built_total";
pub const SNAPSHOT_BUILD_SECONDS: &str = "dengine_snapshot_build_seconds";
pub const SNAPSHOTS_SENT: &str = "dengine_snapshots_sent_total";
pub const SNAPSHOT_BYTES_SENT: &str = "dengine_snapshot_bytes_sent_total";
pub const SNAPSHOTS_INSTALLED: &str = "dengine_snapshots_installed_total";
/// Received snapshots that could not be installed (the old state was kept).
pub const SNAPSHOT_INSTALL_FAILURES: &str = "dengine_snapshot_install_failures_total";
/// Snapshot transfers resumed from the receiver's durable offset (sender side).
pub const SNAPSHOT_RESUMES: &str = "dengine_snapshot_resumes_total";
/// Seconds from the first chunk sent to the follower's "installed" (sender side).
pub const SNAPSHOT_TRANSFER_SECONDS: &str = "dengine_snapshot_transfer_seconds";
/// Membership changes appended by this node as leader.
pub const MEMBERSHIP_CHANGES: &str = "dengine_membership_changes_total";
/// Peer messages refused before reaching Raft, by `reason`.
pub const PEER_REFUSED: &str = "dengine_peer_refused_total";
/// Messages the Raft core itself ignored, by reason (`core::Refusal`): the rules that
/// need its state (a same-term message from a non-leader, an answer beyond the log,
/// a read round never started, a term that would overflow).
pub const RAFT_REFUSED: &str = "dengine_raft_refused_total";

/// Serves the metrics at `addr` (`/metrics`). Fails if `addr` cannot be bound or a
/// recorder is already installed in this process.
pub fn install_prometheus(addr: SocketAddr) -> Result<(), String> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let seconds = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5, 5.0,
    ];
    let entries = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
    ];
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_entries".into()), &entries))
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| e.to_string())
}

/// Handles to the event loop's series, registered once (cheap to update).
pub(crate) struct LoopMetrics {
    pub node: String,
    pub role: metrics::Gauge,
    pub term: metrics::Gauge,
    pub leader: metrics::Gauge,
    pub commit: metrics::Gauge,
    pub applied: metrics::Gauge,
    pub last: metrics::Gauge,
    pub snapshot: metrics::Gauge,
    pub client_queue: metrics::Gauge,
    pub peer_queue: metrics::Gauge,
    pub no_space: metrics::Gauge,
    pub proposals: metrics::Counter,
    pub log_write_seconds: metrics::Histogram,
    pub log_write_entries: metrics::Histogram,
    pub prevotes: metrics::Counter,
    pub elections_started: metrics::Counter,
    pub elections_won: metrics::Counter,
    pub snapshots_built: metrics::Counter,
    pub snapshots_installed: metrics::Counter,
    pub membership_changes: metrics::Counter,
    /// Proposals refused because too much of the log waits for commit.
    pub proposals_refused_busy: metrics::Counter,
    peers: std::collections::HashMap<u64, (metrics::Gauge, metrics::Gauge)>,
}

impl LoopMetrics {
    pub(crate) fn new(node: u64) -> Self {
        let n = node.to_string();
        let l = || [("node", n.clone())];
        LoopMetrics {
            role: metrics::gauge!(ROLE, &l()),
            term: metrics::gauge!(TERM, &l()),
            leader: metrics::gauge!(LEADER_ID, &l()),
            commit: metrics::gauge!(COMMIT_INDEX, &l()),
            applied: metrics::gauge!(APPLIED_INDEX, &l()),
            last: metrics::gauge!(LAST_INDEX, &l()),
            snapshot: metrics::gauge!(SNAPSHOT_INDEX, &l()),
            client_queue: metrics::gauge!(QUEUE_DEPTH, "node" => n.clone(), "queue" => "client"),
            peer_queue: metrics::gauge!(QUEUE_DEPTH, "node" => n.clone(), "queue" => "peer"),
            no_space: metrics::gauge!(STORAGE_NO_SPACE, &l()),
            proposals: metrics::counter!(PROPOSALS, &l()),
            log_write_seconds: metrics::histogram!(LOG_WRITE_SECONDS, &l()),
            log_write_entries: metrics::histogram!(LOG_WRITE_ENTRIES, &l()),
            prevotes: metrics::counter!(PREVOTES, &l()),
            elections_started: metrics::counter!(ELECTIONS_STARTED, &l()),
            elections_won: metrics::counter!(ELECTIONS_WON, &l()),
            snapshots_built: metrics::counter!(SNAPSHOTS_BUILT, &l()),
            snapshots_installed: metrics::counter!(SNAPSHOTS_INSTALLED, &l()),
            membership_changes: metrics::counter!(MEMBERSHIP_CHANGES, &l()),
            proposals_refused_busy: metrics::counter!(BUSY, &l()),
            peers: std::collections::HashMap::new(),
            node: n,
        }
    }

    /// The match index and lag gauges of one peer (registered on first use).
    pub(crate) fn peer(&mut self, peer: u64) -> &(metrics::Gauge, metrics::Gauge) {
        let node = self.node.clone();
        self.peers.entry(peer).or_insert_with(|| {
            let p = peer.to_string();
            (
                metrics::gauge!(PEER_MATCH_INDEX, "node" => node.clone(), "peer" => p.clone()),
                metrics::gauge!(PEER_LAG_ENTRIES, "node" => node, "peer" => p),
            )
        })
    }
}

/// The numeric value of a role for [`ROLE`].
pub fn role_value(role: crate::core::Role, learner: bool) -> f64 {
    use crate::core::Role;
    match role {
        _ if learner => 4.0,
        Role::Follower => 0.0,
        Role::PreCandidate => 1.0,
        Role::Candidate => 2.0,
        Role::Leader => 3.0,
    }
}
