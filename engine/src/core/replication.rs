//! Leader side of log replication: sending appends, handling acknowledgements,
//! advancing the commit index.

use super::action::{Role, SendWhen};
use super::message::{Append, AppendResp, Body};
use super::progress::{Progress, ProgressState};
use super::quorum;
use super::raft::Raft;
use super::refusal::Refusal;
use super::types::{LogIndex, NodeId};

impl Raft {
    pub(crate) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = match &self.lead {
            Some(l) => l.progress.keys().copied().collect(),
            None => return,
        };
        for to in peers {
            self.send_appends(to);
        }
    }

    /// Sends as many appends to `to` as its progress state and the limits allow.
    pub(crate) fn send_appends(&mut self, to: NodeId) {
        while self.send_append(to, false) {}
    }

    /// Sends one append (or a snapshot). With `allow_empty` an append without entries
    /// is sent too (a probe, or to carry the commit index). Returns true if it sent one.
    pub(crate) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let (max_msgs, max_bytes) = (self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes);
        let Some(lead) = self.lead.as_mut() else {
            return false;
        };
        let Some(pr) = lead.progress.get_mut(&to) else {
            return false;
        };
        if pr.is_paused(max_msgs, max_bytes) {
            return false;
        }
        let prev_index = pr.next_index - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            self.send_snapshot(to);
            return false;
        };
        let entries = self.log.slice(
            pr.next_index,
            self.log.last_index(),
            self.cfg.max_entries_per_msg,
            self.cfg.max_bytes_per_msg,
        );
        // A probe goes out even when empty: its answer tells us where the follower is.
        if entries.is_empty() && !allow_empty && pr.state != ProgressState::Probe {
            return false;
        }
        match pr.state {
            ProgressState::Replicate => {
                if let Some(last) = entries.last() {
                    let bytes: u64 = entries.iter().map(|e| e.payload_len() as u64).sum();
                    pr.next_index = last.index + 1;
                    pr.inflights.add(last.index, bytes);
                }
            }
            ProgressState::Probe => pr.probe_sent = true,
            ProgressState::Snapshot { .. } => unreachable!("paused"),
        }
        let id = lead.next_append_id;
        lead.next_append_id += 1;
        let append = Append {
            id,
            prev_index,
            prev_term,
            entries,
            leader_commit: self.log.committed,
        };
        self.send(to, Body::Append(append), SendWhen::Now);
        // In replicate state keep streaming; a probe waits for its answer.
        !allow_empty
    }

    pub(crate) fn send_snapshot(&mut self, to: NodeId) {
        let (meta, tick) = (self.snapshot.clone(), self.ticks);
        let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&to)) else {
            return;
        };
        assert!(
            meta.last_index >= self.log.start_index(),
            "no snapshot covers the compacted log"
        );
        pr.become_snapshot(meta.last_index, tick);
        self.send(to, Body::InstallSnapshot { meta }, SendWhen::Now);
    }

    pub(crate) fn on_append_resp(&mut self, from: NodeId, r: AppendResp) {
        let last = self.log.last_index();
        // Answers only concern appends of this term, whose indexes are all in our log
        // (it only grows while we lead); anything beyond it is forged or corrupt.
        let answered = if r.success {
            r.match_index
        } else {
            r.reject_index
        };
        if answered > last {
            self.refuse(Refusal::BadResponse);
            return;
        }
        let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&from)) else {
            return;
        };
        pr.recent_active = true;
        if r.success {
            let advanced = pr.ack(r.match_index);
            match pr.state {
                ProgressState::Probe => pr.become_replicate(),
                ProgressState::Snapshot { index, .. } if pr.match_index >= index => {
                    pr.become_replicate()
                }
                _ => {}
            }
            track_catch_up(
                pr,
                last,
                self.ticks,
                self.cfg.learner_promotion.max_lag_entries,
            );
            if advanced {
                self.maybe_commit();
                self.maybe_send_timeout_now(from);
            }
            self.send_appends(from);
            return;
        }
        // The follower's log ends before what it once acknowledged: it lost its data
        // (a wiped data directory, a replaced disk). Start over from what it holds,
        // which may mean sending it a snapshot. A reordered old reject can land here
        // too; lowering `match_index` then only makes the leader more conservative.
        if r.conflict_term.is_none() && r.conflict_index <= pr.match_index {
            pr.match_index = r.conflict_index.saturating_sub(1);
            pr.match_at_heartbeat = pr.match_index;
            pr.next_index = r.conflict_index.max(1);
            pr.become_probe();
            self.send_append(from, true);
            return;
        }
        let stale = match pr.state {
            ProgressState::Replicate => r.reject_index <= pr.match_index,
            ProgressState::Probe => r.reject_index + 1 != pr.next_index,
            ProgressState::Snapshot { .. } => true,
        };
        if stale {
            return;
        }
        // Fast backtracking: skip a whole conflicting term at once.
        let hint = match r.conflict_term {
            Some(t) => match self.log.last_index_of_term(t) {
                Some(i) => (i + 1).min(r.reject_index),
                None => r.conflict_index,
            },
            None => r.conflict_index,
        };
        pr.next_index = hint.min(r.reject_index).max(pr.match_index + 1);
        pr.become_probe();
        self.send_append(from, true);
    }

    pub(crate) fn on_heartbeat_resp(&mut self, from: NodeId, read_ctx: u64) {
        // An answer to a round never started would confirm every open round at once.
        if self
            .lead
            .as_ref()
            .is_some_and(|l| !l.reads.was_started(read_ctx))
        {
            self.refuse(Refusal::BadResponse);
            return;
        }
        let last = self.log.last_index();
        let is_voter = self.membership.is_voter(from);
        let Some(pr) = self.lead.as_mut().and_then(|l| l.progress.get_mut(&from)) else {
            return;
        };
        pr.recent_active = true;
        track_catch_up(
            pr,
            last,
            self.ticks,
            self.cfg.learner_promotion.max_lag_entries,
        );
        // A lost probe, or a lost tail of a pipeline, would otherwise stall: if nothing
        // was acknowledged since the previous heartbeat answer, re-probe.
        let stalled = pr.match_index == pr.match_at_heartbeat;
        pr.match_at_heartbeat = pr.match_index;
        if pr.match_index < last && stalled {
            match pr.state {
                ProgressState::Replicate => {
                    pr.next_index = pr.match_index + 1;
                    pr.become_probe();
                }
                ProgressState::Probe => pr.probe_sent = false,
                ProgressState::Snapshot { .. } => {}
            }
            self.send_appends(from);
        }
        if is_voter && read_ctx > 0 {
            self.ack_read_round(from, read_ctx);
        }
    }

    /// Commits the highest index a quorum holds durably, if it is of the current term.
    pub(crate) fn maybe_commit(&mut self) {
        let Some(lead) = self.lead.as_ref() else {
            return;
        };
        let id = self.id;
        let stable = self.log.stable;
        let idx = quorum::committed_index(&self.membership, |peer| {
            if peer == id {
                stable
            } else {
                lead.progress.get(&peer).map_or(0, |p| p.match_index)
            }
        })
        .min(self.log.last_index());
        if idx <= self.log.committed {
            return;
        }
        // Figure 8: counting replicas only commits entries of the leader's own term.
        let current = self.log.term(idx) == Some(self.hs.term);
        if current || self.cfg.bugs.commit_previous_term {
            self.log.committed = idx;
            self.on_commit_advanced();
        }
    }

    fn on_commit_advanced(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        self.release_reads_waiting_commit();
        self.advance_membership_change();
    }

    /// Adds progress for new members and drops it for nodes no longer in the config.
    pub(crate) fn sync_progress_with_membership(&mut self) {
        let members = self.membership.members();
        let (id, next) = (self.id, self.log.last_index() + 1);
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        lead.progress.retain(|peer, _| members.contains(peer));
        for &peer in &members {
            if peer != id {
                lead.progress
                    .entry(peer)
                    .or_insert_with(|| Progress::new(next));
            }
        }
    }
}

fn track_catch_up(pr: &mut Progress, last: LogIndex, now: u64, max_lag: u64) {
    if last.saturating_sub(pr.match_index) <= max_lag {
        pr.caught_up_since.get_or_insert(now);
    } else {
        pr.caught_up_since = None;
    }
}
