//! Requests the event loop has accepted and will answer later.

use std::collections::{BTreeMap, HashMap};

use super::request::{ReadDone, ReadQuery, Reply, RequestError, WriteDone};
use crate::core::{LogIndex, NodeId, Term};

#[derive(Default)]
pub(crate) struct Waiters {
    next_id: u64,
    /// Writes handed to the core, by proposal id.
    pub proposals: HashMap<u64, Reply<WriteDone>>,
    /// Writes appended at an index: answered when that index is applied, if the entry
    /// applied there is still of the term it was appended in.
    pub by_index: BTreeMap<LogIndex, (Term, Reply<WriteDone>)>,
    /// Linearizable and lease reads waiting for the core's confirmation.
    pub reads: HashMap<u64, (ReadQuery, Reply<ReadDone>)>,
    /// Membership changes: by request id, then by log index once appended.
    pub membership: HashMap<u64, Reply<u64>>,
    pub membership_by_index: Vec<(LogIndex, Reply<u64>)>,
    pub transfer: Option<(NodeId, Reply<u64>)>,
    pub snapshots: Vec<Reply<u64>>,
}

impl Waiters {
    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Answers everything still waiting when the node stops: reads and snapshot
    /// requests with `e`; writes and membership changes, which were already handed to
    /// Raft and may still commit under another leader, with an unknown outcome.
    pub(crate) fn fail_all(&mut self, e: RequestError) {
        let unknown = RequestError::OutcomeUnknown(format!(
            "node stopped ({e:?}) after the request reached Raft"
        ));
        for (_, r) in self.proposals.drain() {
            let _ = r.send(Err(unknown.clone()));
        }
        for (_, (_, r)) in std::mem::take(&mut self.by_index) {
            let _ = r.send(Err(unknown.clone()));
        }
        for (_, (_, r)) in self.reads.drain() {
            let _ = r.send(Err(e.clone()));
        }
        for (_, r) in self.membership.drain() {
            let _ = r.send(Err(unknown.clone()));
        }
        for (_, r) in self.membership_by_index.drain(..) {
            let _ = r.send(Err(unknown.clone()));
        }
        if let Some((_, r)) = self.transfer.take() {
            let _ = r.send(Err(unknown.clone()));
        }
        for r in self.snapshots.drain(..) {
            let _ = r.send(Err(e.clone()));
        }
    }
}
