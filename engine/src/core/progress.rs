//! The leader's view of one follower's replication.

use super::inflights::Inflights;
use super::types::LogIndex;

/// How the leader currently replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Next index unknown: send one append at a time and wait for its answer.
    Probe,
    /// Next index known: stream appends optimistically, bounded by the inflight window.
    Replicate,
    /// The follower needs a snapshot at `index`; appends wait until it is installed.
    Snapshot { index: LogIndex, sent_tick: u64 },
}

#[derive(Clone, Debug)]
pub struct Progress {
    pub match_index: LogIndex,
    pub next_index: LogIndex,
    pub state: ProgressState,
    /// In probe state: an append is outstanding, send nothing more until an answer.
    pub probe_sent: bool,
    pub inflights: Inflights,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Leader tick since which this learner has lagged by no more than the promotion
    /// threshold; `None` while it lags further.
    pub caught_up_since: Option<u64>,
    /// Match index at the previous heartbeat answer (stall detection).
    pub match_at_heartbeat: LogIndex,
}

impl Progress {
    pub fn new(next_index: LogIndex) -> Self {
        Progress {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::default(),
            recent_active: false,
            caught_up_since: None,
            match_at_heartbeat: 0,
        }
    }

    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.inflights.reset();
        self.next_index = self.next_index.max(self.match_index + 1);
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.probe_sent = false;
        self.inflights.reset();
        self.next_index = self.match_index + 1;
    }

    pub fn become_snapshot(&mut self, index: LogIndex, tick: u64) {
        self.state = ProgressState::Snapshot {
            index,
            sent_tick: tick,
        };
        self.probe_sent = false;
        self.inflights.reset();
    }

    /// Records an acknowledgement; returns true if the match index moved forward.
    pub fn ack(&mut self, index: LogIndex) -> bool {
        self.inflights.free_to(index);
        if index > self.match_index {
            self.match_index = index;
            self.next_index = self.next_index.max(index + 1);
            self.probe_sent = false;
            true
        } else {
            false
        }
    }

    /// True if no more appends may be sent right now.
    pub fn is_paused(&self, max_msgs: usize, max_bytes: u64) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(max_msgs, max_bytes),
            ProgressState::Snapshot { .. } => true,
        }
    }
}
