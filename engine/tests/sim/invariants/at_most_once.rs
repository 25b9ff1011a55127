//! Every client operation takes effect at most once: across all nodes and restarts, an
//! operation takes effect at a single log index (a retry that got a second log entry
//! must be skipped by the session table, including after a snapshot restore).

use std::collections::HashMap;

use d_engine::core::{Entry, LogIndex, NodeId};

use crate::simlib::storage::{Applied, OpId};

#[derive(Default)]
pub struct AtMostOnce {
    effective_at: HashMap<OpId, LogIndex>,
}

impl AtMostOnce {
    pub fn check(&mut self, id: NodeId, e: &Entry, r: &Applied) -> Result<(), String> {
        let (Some(op), true) = (r.op, r.took_effect) else {
            return Ok(());
        };
        let at = *self.effective_at.entry(op).or_insert(e.index);
        if at != e.index {
            return Err(format!(
                "operation {op:?} took effect at {at} and again at {} on node {id}",
                e.index
            ));
        }
        Ok(())
    }
}
