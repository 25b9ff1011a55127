//! State machine safety: no two nodes apply different entries at one index, and each
//! node applies indexes in order without gaps.

use std::collections::HashMap;

use d_engine::core::{Entry, LogIndex, NodeId, Term};

use super::digest;

#[derive(Default)]
pub struct StateMachineSafety {
    applied: HashMap<LogIndex, (Term, u64, NodeId)>,
}

impl StateMachineSafety {
    pub fn check(&mut self, id: NodeId, e: &Entry, expected: LogIndex) -> Result<(), String> {
        if e.index != expected {
            return Err(format!(
                "node {id} applied {} but expected {expected}",
                e.index
            ));
        }
        let d = digest(e);
        let (t0, d0, who) = *self.applied.entry(e.index).or_insert((e.term, d, id));
        if (t0, d0) != (e.term, d) {
            return Err(format!(
                "node {who} applied {}/{t0} but node {id} applied {}/{}",
                e.index, e.index, e.term
            ));
        }
        Ok(())
    }
}
