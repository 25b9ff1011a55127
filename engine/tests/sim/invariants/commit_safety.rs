//! Commit index: monotonic on each node (per incarnation; it is volatile), and a
//! leader never commits an entry that is not durable on a quorum of its configuration.

use std::collections::{BTreeMap, BTreeSet};

use d_engine::core::quorum::is_quorum;
use d_engine::core::{LogIndex, NodeId, Raft, Role, Term};

use crate::simlib::cluster::SimNode;

#[derive(Default)]
pub struct CommitSafety {
    last: BTreeMap<NodeId, LogIndex>,
}

impl CommitSafety {
    pub fn check(
        &mut self,
        raft: &Raft,
        nodes: &BTreeMap<NodeId, SimNode>,
        _committed: &[Term],
    ) -> Result<(), String> {
        let c = raft.commit_index();
        let prev = self.last.insert(raft.id(), c).unwrap_or(0);
        if c < prev {
            return Err(format!(
                "node {} commit index went back {prev} -> {c}",
                raft.id()
            ));
        }
        if c < raft.log().applied {
            return Err(format!("node {} applied beyond commit", raft.id()));
        }
        if raft.role() != Role::Leader || c == prev || c <= raft.log().start_index() {
            return Ok(());
        }
        let t = raft.log().term(c).expect("committed entry in log");
        let holders: BTreeSet<NodeId> = nodes
            .values()
            .filter(|n| n.storage.durably_has(c, t))
            .map(|n| n.id)
            .collect();
        if !is_quorum(raft.membership(), &holders) {
            return Err(format!(
                "leader {} committed {c}/{t} but only {holders:?} hold it durably (config {:?})",
                raft.id(),
                raft.membership()
            ));
        }
        Ok(())
    }

    pub fn on_crash(&mut self, id: NodeId) {
        self.last.remove(&id);
    }
}
