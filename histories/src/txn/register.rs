//! Read-write register inference, claiming only what reads prove (Elle's
//! rules without assuming the database is linearizable per key):
//!
//! * every value was written once (writes are unique per key), so a read of
//!   `v` names its writer: a wr edge, or a garbage, aborted (G1a) or
//!   intermediate (G1b) read;
//! * the initial `nil` comes before every written version, so a read of
//!   `nil` has an rw edge to each writer of a version nothing else is known
//!   to precede;
//! * a transaction that read `u` and then wrote `v` orders `u` before `v`:
//!   a ww edge from `u`'s writer, and rw edges from `u`'s other readers.
//!
//! Nothing else is guessed: two blind writes stay unordered.

use std::collections::HashMap;

use crate::checker::hash::FastBuildHasher;
use crate::error::HistoryError;
use crate::history::Status;
use crate::txn::anomaly::{AnomalyKind, Findings};
use crate::txn::budget::Budget;
use crate::txn::explain::Explain;
use crate::txn::graph::{EdgeKind, EdgeList, RW, WR, WW};
use crate::txn::history::{Mop, Seen, TxnHistory};

#[derive(Debug, Clone, Copy)]
struct Entry {
    txn: u32,
    /// Whether it is its transaction's last write to the key.
    last: bool,
}

/// What the inference learned, kept to explain edges.
pub struct RegisterIndex {
    writes: HashMap<(u32, i64), Entry, FastBuildHasher>,
}

/// A transaction's external read of a key and its final write of it.
fn read_then_write(mops: &[Mop], key: u32) -> Option<(Seen, i64)> {
    let first = mops.iter().find(|m| m.key() == key)?;
    let Mop::Read { seen, .. } = *first else {
        return None;
    };
    let last = mops.iter().rev().find_map(|m| match *m {
        Mop::Write { key: k, value } if k == key => Some(value),
        _ => None,
    })?;
    (seen != Seen::Unknown).then_some((seen, last))
}

/// The first access of each key in `mops`, if it is a known read.
fn external_reads(mops: &[Mop]) -> impl Iterator<Item = (u32, Seen)> + '_ {
    mops.iter().enumerate().filter_map(|(i, m)| match *m {
        Mop::Read { key, seen }
            if seen != Seen::Unknown && !mops[..i].iter().any(|n| n.key() == key) =>
        {
            Some((key, seen))
        }
        _ => None,
    })
}

/// Infers edges; `None` if the budget ran out.
pub fn infer(
    h: &TxnHistory,
    found: &mut Findings,
    edges: &mut EdgeList,
    budget: &mut Budget,
) -> Result<Option<RegisterIndex>, HistoryError> {
    let index = RegisterIndex {
        writes: index_writes(h)?,
    };
    // successors[(key, u)]: writers that read u and then wrote the key.
    let mut successors: HashMap<(u32, i64), Vec<u32>, FastBuildHasher> = HashMap::default();
    // Per key: writers of versions only nil is known to precede.
    let mut minimal: Vec<Vec<u32>> = vec![Vec::new(); h.keys.len()];
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status == Status::Fail {
            continue;
        }
        let mops = h.mops(t);
        for (key, _) in index.final_writes(mops) {
            match read_then_write(mops, key).filter(|_| txn.status == Status::Ok) {
                Some((Seen::Value(u), _)) => {
                    successors.entry((key, u)).or_default().push(t as u32);
                    if let Some(w) = index.live_writer(h, key, u) {
                        edges.add(w, t as u32, WW);
                    }
                }
                _ => minimal[key as usize].push(t as u32),
            }
        }
    }
    for t in 0..h.txns.len() {
        if budget.expired() || budget.too_many_edges(edges.len()) {
            return Ok(None);
        }
        if h.txns[t].status != Status::Ok {
            continue;
        }
        for (key, seen) in external_reads(h.mops(t)) {
            let after: &[u32] = match seen {
                Seen::Value(u) => {
                    index.check_read(h, t, key, u, found, edges);
                    successors.get(&(key, u)).map_or(&[], Vec::as_slice)
                }
                _ => &minimal[key as usize],
            };
            for &w in after {
                edges.add(t as u32, w, RW);
            }
        }
        crate::txn::internal::check_register(h, t, found);
    }
    Ok(Some(index))
}

fn index_writes(
    h: &TxnHistory,
) -> Result<HashMap<(u32, i64), Entry, FastBuildHasher>, HistoryError> {
    let mut writes: HashMap<(u32, i64), Entry, FastBuildHasher> = HashMap::default();
    for t in 0..h.txns.len() {
        let mops = h.mops(t);
        for (i, m) in mops.iter().enumerate() {
            let Mop::Write { key, value } = *m else {
                continue;
            };
            let last = !mops[i + 1..]
                .iter()
                .any(|n| matches!(*n, Mop::Write { key: k, .. } if k == key));
            let entry = Entry {
                txn: t as u32,
                last,
            };
            if let Some(prev) = writes.insert((key, value), entry) {
                return Err(HistoryError::new(
                    h.txns[t].call_line,
                    format!(
                        "value {value} is written to key {} twice (also on line {}); rw-register needs unique values per key",
                        h.keys[key as usize], h.txns[prev.txn as usize].call_line
                    ),
                ));
            }
        }
    }
    Ok(writes)
}

impl RegisterIndex {
    /// Keys `mops` writes, with the final value written to each.
    fn final_writes<'m>(&'m self, mops: &'m [Mop]) -> impl Iterator<Item = (u32, i64)> + 'm {
        mops.iter().filter_map(|m| match *m {
            Mop::Write { key, value } if self.writes.get(&(key, value)).is_some_and(|e| e.last) => {
                Some((key, value))
            }
            _ => None,
        })
    }

    /// The writer of `value`, unless it failed.
    fn live_writer(&self, h: &TxnHistory, key: u32, value: i64) -> Option<u32> {
        let e = self.writes.get(&(key, value))?;
        (h.txns[e.txn as usize].status != Status::Fail).then_some(e.txn)
    }

    /// A committed external read of `u`: its wr edge, or why it is bad.
    fn check_read(
        &self,
        h: &TxnHistory,
        t: usize,
        key: u32,
        u: i64,
        found: &mut Findings,
        edges: &mut EdgeList,
    ) {
        let name = &h.keys[key as usize];
        let Some(&e) = self.writes.get(&(key, u)) else {
            found.add(AnomalyKind::GarbageRead, &[t], || {
                format!(
                    "{} read key {name} as {u}, which no transaction wrote",
                    h.name(t)
                )
            });
            return;
        };
        let w = e.txn as usize;
        let (kind, what) = if w == t {
            (AnomalyKind::Internal, "before writing it itself")
        } else if h.txns[w].status == Status::Fail {
            (AnomalyKind::G1a, "written by a transaction that failed")
        } else if !e.last {
            edges.add(e.txn, t as u32, WR);
            (
                AnomalyKind::G1b,
                "an intermediate value its writer overwrote",
            )
        } else {
            edges.add(e.txn, t as u32, WR);
            return;
        };
        found.add(kind, &[t, w], || {
            format!(
                "{} read key {name} as {u}, {what}: {}",
                h.name(t),
                h.name(w)
            )
        });
    }
}

impl Explain for RegisterIndex {
    fn why(&self, h: &TxnHistory, from: usize, to: usize, kind: EdgeKind) -> Option<String> {
        let name = |k: u32| &h.keys[k as usize];
        match kind {
            EdgeKind::Wr => external_reads(h.mops(to)).find_map(|(key, seen)| {
                let Seen::Value(u) = seen else { return None };
                (self.writes.get(&(key, u))?.txn as usize == from).then(|| {
                    format!(
                        "{} read key {} as {u}, which {} wrote",
                        h.name(to),
                        name(key),
                        h.name(from)
                    )
                })
            }),
            EdgeKind::Ww => self.final_writes(h.mops(to)).find_map(|(key, v)| {
                let (Seen::Value(u), _) = read_then_write(h.mops(to), key)? else {
                    return None;
                };
                (self.writes.get(&(key, u))?.txn as usize == from).then(|| {
                    format!(
                        "{} read key {} as {u}, which {} wrote, then wrote {v} over it",
                        h.name(to),
                        name(key),
                        h.name(from)
                    )
                })
            }),
            EdgeKind::Rw => self.why_rw(h, from, to),
            _ => None,
        }
    }
}

impl RegisterIndex {
    fn why_rw(&self, h: &TxnHistory, from: usize, to: usize) -> Option<String> {
        external_reads(h.mops(from)).find_map(|(key, seen)| {
            let (_, v) = self.final_writes(h.mops(to)).find(|&(k, _)| k == key)?;
            let before = read_then_write(h.mops(to), key).map(|(s, _)| s);
            let follows = match seen {
                Seen::Value(_) => before == Some(seen),
                _ => !matches!(before, Some(Seen::Value(_))),
            };
            follows.then(|| {
                format!(
                    "{} read key {} as {}, and {} wrote {v} after that version",
                    h.name(from),
                    h.keys[key as usize],
                    h.seen_text(seen),
                    h.name(to)
                )
            })
        })
    }
}
