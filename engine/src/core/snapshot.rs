//! Snapshots as the core sees them: metadata (index, term, membership). The runtime
//! builds, stores, streams and installs the data.
//!
//! Policy: after `EveryEntries(n)` applied entries (or on `SnapshotNow`) the core asks
//! for a snapshot at the applied index. When it is built, the core records its meta and
//! compacts the log up to `snapshot index - compaction_trailing_entries`, so slightly
//! lagging followers can still be served from the log. A follower whose next entry was
//! compacted away gets the latest snapshot instead.

use super::action::Action;
use super::config::SnapshotPolicy;
use super::progress::ProgressState;
use super::raft::Raft;
use super::types::{LogIndex, NodeId, SnapshotMeta};

/// Election timeouts to wait after a failed snapshot build before the policy asks
/// again (a full disk would otherwise be asked to write an image at every apply).
pub const SNAPSHOT_RETRY_TIMEOUTS: u64 = 5;

impl Raft {
    pub(crate) fn maybe_take_snapshot(&mut self, force: bool) {
        let applied = self.log.applied;
        if self.snapshot_building || applied <= self.snapshot.last_index {
            return;
        }
        let interval = self.cfg.snapshot_interval_ticks;
        let due = match self.cfg.snapshot_policy {
            SnapshotPolicy::Never => false,
            SnapshotPolicy::EveryEntries(n) => {
                applied - self.snapshot.last_index >= n
                    || (self.cfg.snapshot_log_bytes > 0
                        && self.log.bytes_between(self.snapshot.last_index, applied)
                            >= self.cfg.snapshot_log_bytes)
                    || (interval > 0 && self.ticks >= self.snapshot_tick + interval)
            }
        };
        let backing_off = self.ticks < self.snapshot_retry_tick;
        if force || (due && !backing_off) {
            self.snapshot_building = true;
            self.actions.push(Action::TakeSnapshot { index: applied });
        }
    }

    pub(crate) fn on_snapshot_failed(&mut self) {
        self.snapshot_building = false;
        self.snapshot_retry_tick =
            self.ticks + SNAPSHOT_RETRY_TIMEOUTS * self.cfg.election_timeout_ticks_max;
    }

    pub(crate) fn on_snapshot_built(&mut self, last_index: LogIndex) {
        self.snapshot_building = false;
        self.snapshot_tick = self.ticks;
        if last_index <= self.snapshot.last_index || last_index > self.log.applied {
            return;
        }
        let Some(last_term) = self.log.term(last_index) else {
            return;
        };
        let meta = SnapshotMeta {
            last_index,
            last_term,
            membership: self.log.membership_at(last_index),
        };
        self.actions.push(Action::SaveSnapshotMeta(meta.clone()));
        self.snapshot = meta;
        let upto = last_index.saturating_sub(self.cfg.compaction_trailing_entries);
        if upto > self.log.start_index() {
            self.log.compact(upto);
            self.actions.push(Action::CompactLog { upto });
        }
    }

    /// A snapshot send that got no answer for an election timeout is retried.
    pub(crate) fn tick_snapshot_progress(&mut self) {
        let (now, wait) = (self.ticks, self.cfg.election_timeout_ticks_min);
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        let mut retry: Vec<NodeId> = Vec::new();
        for (&peer, pr) in lead.progress.iter_mut() {
            if let ProgressState::Snapshot { sent_tick, .. } = pr.state
                && now >= sent_tick + wait
            {
                pr.become_probe();
                retry.push(peer);
            }
        }
        for peer in retry {
            self.send_appends(peer);
        }
    }
}
