//! Linearizable reads (ReadIndex and lease): the index a read is served at is at least
//! every index committed anywhere before the read was issued. Catches stale leaders
//! serving reads (e.g. a lease without a clock-drift margin).

use std::collections::HashMap;

use d_engine::core::{LogIndex, NodeId, ReadConsistency, ReadError};

#[derive(Default)]
pub struct ReadLinearizable {
    pending: HashMap<u64, (NodeId, ReadConsistency, LogIndex)>,
    pub served: u64,
}

impl ReadLinearizable {
    pub fn issue(&mut self, req: u64, node: NodeId, c: ReadConsistency, min: LogIndex) {
        self.pending.insert(req, (node, c, min));
    }

    pub fn result(
        &mut self,
        req: u64,
        node: NodeId,
        result: Result<LogIndex, ReadError>,
        applied: LogIndex,
    ) -> Result<(), String> {
        let Some((n, c, min)) = self.pending.remove(&req) else {
            return Ok(());
        };
        let Ok(idx) = result else { return Ok(()) };
        if n != node {
            return Err(format!("read {req} answered by {node}, sent to {n}"));
        }
        if applied < idx {
            return Err(format!(
                "read {req} at {idx} answered before apply ({applied})"
            ));
        }
        if c != ReadConsistency::Serializable && idx < min {
            self.served += 1;
            return Err(format!(
                "{c:?} read {req} served by node {node} at index {idx}, but {min} was already committed"
            ));
        }
        self.served += 1;
        Ok(())
    }
}
