//! Leader completeness: a leader's log holds every entry committed in earlier terms
//! (the term an entry was committed in, not the term it carries).
//! Checked when a node first leads a term (against everything committed so far) and
//! whenever the committed prefix grows (against every current leader of a later term).

use std::collections::BTreeSet;

use d_engine::core::{LogIndex, NodeId, Raft, Role, Term};

#[derive(Default)]
pub struct LeaderCompleteness {
    checked: BTreeSet<(NodeId, Term)>,
}

fn holds(leader: &Raft, i: LogIndex, t: Term, at: Term) -> Result<(), String> {
    if t == 0 || at >= leader.term() || i <= leader.log().start_index() {
        return Ok(());
    }
    match leader.log().term(i) {
        Some(x) if x == t => Ok(()),
        other => Err(format!(
            "leader {} of term {} has {:?} at {i}, but {i}/{t} is committed",
            leader.id(),
            leader.term(),
            other
        )),
    }
}

impl LeaderCompleteness {
    pub fn check(
        &mut self,
        raft: &Raft,
        leaders: &[&Raft],
        committed: &[Term],
        committed_at: &[Term],
        new_from: LogIndex,
    ) -> Result<(), String> {
        if raft.role() == Role::Leader && self.checked.insert((raft.id(), raft.term())) {
            for (i, &t) in committed.iter().enumerate().skip(1) {
                holds(raft, i as LogIndex, t, committed_at[i])?;
            }
        }
        for l in leaders {
            for i in new_from as usize..committed.len() {
                holds(l, i as LogIndex, committed[i], committed_at[i])?;
            }
        }
        Ok(())
    }
}
