//! Follower side: accepting appends, heartbeats and snapshots from the leader.

use super::action::{Action, SendWhen};
use super::message::{Append, AppendResp, Body};
use super::raft::Raft;
use super::types::{EntryPayload, LogIndex, NodeId, SnapshotMeta};

impl Raft {
    pub(crate) fn on_append(&mut self, from: NodeId, a: Append) {
        if self.installing.is_some() {
            // The log is frozen while a snapshot is being installed; the leader retries.
            return;
        }
        let Append {
            id,
            mut prev_index,
            mut prev_term,
            mut entries,
            leader_commit,
        } = a;
        let committed = self.log.committed;
        if prev_index < committed {
            // Our committed prefix matches the leader's; skip what it covers.
            let skip = (committed - prev_index) as usize;
            if skip >= entries.len() {
                self.ack_append(from, id, committed);
                return;
            }
            prev_term = entries[skip - 1].term;
            prev_index = committed;
            entries.drain(..skip);
        }
        if self.log.term(prev_index) != Some(prev_term) {
            self.reject_append(from, id, prev_index);
            return;
        }
        let match_index = prev_index + entries.len() as u64;
        if let Some(c) = self.log.find_conflict(&entries) {
            let new = entries.split_off((c - prev_index - 1) as usize);
            let truncate_from = (c <= self.log.last_index()).then_some(c);
            if let Some(c) = truncate_from {
                self.log.truncate_from(c);
            }
            let has_config = new
                .iter()
                .any(|e| matches!(e.payload, EntryPayload::Config(_)));
            self.log.append(&new);
            self.actions.push(Action::PersistEntries {
                truncate_from,
                entries: new,
            });
            if has_config || truncate_from.is_some() {
                self.refresh_membership();
            }
        }
        let commit = leader_commit.min(match_index);
        if commit > self.log.committed {
            self.log.committed = commit;
        }
        self.ack_append(from, id, match_index);
    }

    /// Acknowledges durable entries: the reply waits for every earlier persist.
    fn ack_append(&mut self, to: NodeId, id: u64, match_index: LogIndex) {
        let r = AppendResp {
            id,
            success: true,
            match_index,
            reject_index: 0,
            conflict_term: None,
            conflict_index: 0,
        };
        self.send(to, Body::AppendResp(r), SendWhen::AfterPersist);
    }

    fn reject_append(&mut self, to: NodeId, id: u64, prev_index: LogIndex) {
        let (conflict_term, conflict_index) = match self.log.term(prev_index) {
            None => (None, self.log.last_index() + 1),
            Some(t) => (
                Some(t),
                self.log
                    .first_index_of_term_at(prev_index)
                    .max(self.log.committed + 1),
            ),
        };
        let r = AppendResp {
            id,
            success: false,
            match_index: 0,
            reject_index: prev_index,
            conflict_term,
            conflict_index,
        };
        self.send(to, Body::AppendResp(r), SendWhen::Now);
    }

    pub(crate) fn on_heartbeat(&mut self, from: NodeId, commit: LogIndex, read_ctx: u64) {
        // The leader caps `commit` at our acknowledged match, so it is in our log.
        let commit = commit.min(self.log.last_index());
        if commit > self.log.committed && self.installing.is_none() {
            self.log.committed = commit;
        }
        self.send(from, Body::HeartbeatResp { read_ctx }, SendWhen::Now);
    }

    pub(crate) fn on_install_snapshot(&mut self, from: NodeId, meta: SnapshotMeta) {
        if meta.last_index <= self.log.committed {
            let c = self.log.committed;
            self.ack_append(from, 0, c);
            return;
        }
        if self.installing.is_some() {
            return;
        }
        let keep_suffix = self.log.term(meta.last_index) == Some(meta.last_term);
        self.installing = Some((from, meta.clone()));
        self.actions.push(Action::InstallSnapshot {
            from,
            meta,
            keep_suffix,
        });
    }

    pub(crate) fn on_snapshot_install_failed(&mut self, meta: SnapshotMeta) {
        if self.installing.as_ref().is_some_and(|(_, m)| *m == meta) {
            self.installing = None;
        }
    }

    pub(crate) fn on_snapshot_installed(&mut self, meta: SnapshotMeta) {
        let Some((from, expected)) = self.installing.take() else {
            return;
        };
        if expected != meta {
            self.installing = Some((from, expected));
            return;
        }
        self.log.install_snapshot(&meta);
        self.snapshot = meta.clone();
        self.refresh_membership();
        self.on_applied(meta.last_index);
        let r = AppendResp {
            id: 0,
            success: true,
            match_index: meta.last_index,
            reject_index: 0,
            conflict_term: None,
            conflict_index: 0,
        };
        self.send(from, Body::AppendResp(r), SendWhen::AfterPersist);
    }
}
