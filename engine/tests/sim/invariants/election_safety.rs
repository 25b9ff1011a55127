//! Election safety: at most one leader per term.

use std::collections::BTreeMap;

use d_engine::core::{NodeId, Raft, Role, Term};

#[derive(Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<Term, NodeId>,
}

impl ElectionSafety {
    pub fn check(&mut self, raft: &Raft) -> Result<(), String> {
        if raft.role() != Role::Leader {
            return Ok(());
        }
        let prev = *self.leaders.entry(raft.term()).or_insert(raft.id());
        if prev != raft.id() {
            return Err(format!(
                "nodes {prev} and {} are both leaders of term {}",
                raft.id(),
                raft.term()
            ));
        }
        Ok(())
    }

    pub fn on_crash(&mut self, _id: NodeId) {}
}
