//! No honest message is refused: in a run without bug switches every peer is honest,
//! so a core that refuses anything (see `core/refusal.rs`) would refuse real traffic
//! too — delayed, duplicated or reordered messages, or peers that crashed and lost
//! unsynced writes.

use d_engine::core::{Bugs, Raft};

pub fn check(raft: &Raft) -> Result<(), String> {
    let refused = raft.refusals();
    if raft.config().bugs != Bugs::default() || refused.total() == 0 {
        return Ok(());
    }
    let why: Vec<String> = refused
        .iter()
        .filter(|&(_, n)| n > 0)
        .map(|(r, n)| format!("{r} x{n}"))
        .collect();
    Err(format!(
        "node {} refused honest messages: {}",
        raft.id(),
        why.join(", ")
    ))
}
