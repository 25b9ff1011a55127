//! Log matching: two entries with the same index and term carry the same payload and
//! follow entries with the same term (hence, by induction, identical prefixes).
//! Checked incrementally on every entry any node writes.

use std::collections::HashMap;

use d_engine::core::{Entry, LogIndex, NodeId, Raft, Term};

use super::digest;

#[derive(Default)]
pub struct LogMatching {
    /// (index, term) → (payload digest, term of the previous entry).
    seen: HashMap<(LogIndex, Term), (u64, Option<Term>, NodeId)>,
}

impl LogMatching {
    pub fn check(&mut self, id: NodeId, raft: &Raft, entries: &[Entry]) -> Result<(), String> {
        let mut prev = entries.first().and_then(|e| raft.log().term(e.index - 1));
        for e in entries {
            let d = digest(e);
            let (d0, p0, who) = *self.seen.entry((e.index, e.term)).or_insert((d, prev, id));
            if d0 != d {
                return Err(format!(
                    "entry {}/{} differs between nodes {who} and {id}",
                    e.index, e.term
                ));
            }
            if let (Some(a), Some(b)) = (p0, prev)
                && a != b
            {
                return Err(format!(
                    "entry {}/{} follows term {a} on node {who} but term {b} on node {id}",
                    e.index, e.term
                ));
            }
            prev = Some(e.term);
        }
        Ok(())
    }
}
