//! Simulated storage and state machine. Writes queue up and become durable when the
//! simulator syncs them; a crash drops whatever is still queued.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use d_engine::core::{
    ClientSessions, Entry, EntryPayload, HardState, LogIndex, SnapshotMeta, Term,
};

#[derive(Clone, Debug)]
pub enum Op {
    HardState(HardState),
    Entries {
        truncate_from: Option<LogIndex>,
        entries: Vec<Entry>,
    },
    SnapshotMeta(SnapshotMeta),
    Compact(LogIndex),
}

#[derive(Clone, Debug, Default)]
pub struct Storage {
    pub hs: HardState,
    pub snapshot: SnapshotMeta,
    pub entries: BTreeMap<LogIndex, Entry>,
    pub pending: VecDeque<(u64, Op)>,
    pub next_seq: u64,
    pub synced_seq: u64,
}

impl Storage {
    pub fn push(&mut self, op: Op) {
        self.next_seq += 1;
        self.pending.push_back((self.next_seq, op));
    }

    /// Sequence number a message sent now must wait for (0 = nothing pending).
    pub fn barrier(&self) -> u64 {
        if self.pending.is_empty() {
            0
        } else {
            self.next_seq
        }
    }

    /// Makes the first `n` pending writes durable; returns the last entry written.
    pub fn sync(&mut self, n: usize) -> Option<(LogIndex, Term)> {
        let mut last = None;
        for _ in 0..n {
            let Some((seq, op)) = self.pending.pop_front() else {
                break;
            };
            self.synced_seq = seq;
            match op {
                Op::HardState(hs) => self.hs = hs,
                Op::Entries {
                    truncate_from,
                    entries,
                } => {
                    let from = truncate_from
                        .unwrap_or(entries[0].index)
                        .min(entries[0].index);
                    self.entries.split_off(&from);
                    let l = entries.last().expect("non-empty");
                    last = Some((l.index, l.term));
                    for e in entries {
                        self.entries.insert(e.index, e);
                    }
                }
                Op::SnapshotMeta(m) => {
                    if m.last_index > self.snapshot.last_index {
                        self.snapshot = m;
                    }
                }
                Op::Compact(upto) => {
                    assert!(
                        upto <= self.snapshot.last_index,
                        "compacting beyond the snapshot"
                    );
                    self.entries = self.entries.split_off(&(upto + 1));
                }
            }
        }
        last
    }

    pub fn crash(&mut self) {
        self.pending.clear();
        self.synced_seq = self.next_seq;
    }

    /// True if entry `(index, term)` is durable here (or folded into the snapshot).
    pub fn durably_has(&self, index: LogIndex, term: Term) -> bool {
        index <= self.snapshot.last_index
            || self.entries.get(&index).is_some_and(|e| e.term == term)
    }

    pub fn install(&mut self, meta: &SnapshotMeta, keep_suffix: bool) {
        self.snapshot = meta.clone();
        if keep_suffix {
            self.entries = self.entries.split_off(&(meta.last_index + 1));
        } else {
            self.entries.clear();
        }
    }
}

/// An operation id: (client, seq).
pub type OpId = (u64, u64);

/// The simulated state machine: the ordered list of client operations that took effect,
/// with the session table that decides it. Volatile: rebuilt from snapshots on restart.
#[derive(Clone, Debug, Default)]
pub struct StateMachine {
    pub applied: LogIndex,
    pub applied_term: Term,
    pub sessions: ClientSessions,
    /// Operation → index at which it took effect.
    pub effective: BTreeMap<OpId, LogIndex>,
    /// Operations seen in applied entries (effective or duplicate).
    pub seen: BTreeSet<OpId>,
}

/// What applying one entry did.
pub struct Applied {
    pub op: Option<OpId>,
    pub took_effect: bool,
}

impl StateMachine {
    pub fn apply(&mut self, e: &Entry) -> Applied {
        self.applied = e.index;
        self.applied_term = e.term;
        let EntryPayload::Command {
            session: Some(s), ..
        } = &e.payload
        else {
            return Applied {
                op: None,
                took_effect: false,
            };
        };
        // Simulated clients are the lanes of one client id (see `SIM_CLIENT_ID`).
        let op = (s.lane as u64, s.seq);
        self.seen.insert(op);
        let took_effect = self.sessions.admit(*s);
        if took_effect {
            self.effective.insert(op, e.index);
        }
        Applied {
            op: Some(op),
            took_effect,
        }
    }
}
