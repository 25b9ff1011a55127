//! No acknowledged proposal lost: once a client was told its write was applied, every
//! later leader holds that entry, and at the end every member has applied the write.

use std::collections::BTreeMap;

use d_engine::core::{LogIndex, NodeId, Raft, Role, Term};

use crate::simlib::cluster::SimNode;
use crate::simlib::storage::OpId;

#[derive(Default)]
pub struct NoLostAck {
    /// (operation, index, entry term, term of the node that acknowledged it).
    pub acked: Vec<(OpId, LogIndex, Term, Term)>,
    checked_leaders: std::collections::BTreeSet<(NodeId, Term)>,
}

impl NoLostAck {
    pub fn check(&mut self, raft: &Raft) -> Result<(), String> {
        if raft.role() != Role::Leader || !self.checked_leaders.insert((raft.id(), raft.term())) {
            return Ok(());
        }
        for &(op, i, t, at) in &self.acked {
            if i <= raft.log().start_index() || at >= raft.term() {
                continue;
            }
            if raft.log().term(i) != Some(t) {
                return Err(format!(
                    "write {op:?} acknowledged at {i}/{t} is missing from leader {} of term {}",
                    raft.id(),
                    raft.term()
                ));
            }
        }
        Ok(())
    }

    pub fn check_final(
        &self,
        nodes: &BTreeMap<NodeId, SimNode>,
        members: &[NodeId],
    ) -> Result<(), String> {
        for id in members {
            let sm = &nodes[id].sm;
            for &(op, i, _, _) in &self.acked {
                if !sm.seen.contains(&op) && sm.applied >= i {
                    return Err(format!("node {id} applied past {i} without write {op:?}"));
                }
                if sm.applied < i {
                    return Err(format!(
                        "node {id} has not applied acknowledged write {op:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}
