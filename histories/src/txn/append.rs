//! List-append inference: each key's version order is its longest read
//! (every other read must be a prefix of it), and from that order the ww,
//! wr and rw edges and the bad reads: garbage, duplicates, incompatible
//! orders, G1a (aborted reads), G1b (intermediate reads), and reads that
//! contain the reader's own later appends.
//!
//! Only committed reads count; values must be unique per key (the Jepsen
//! list-append generator guarantees it), so each value names its writer.

use std::collections::HashMap;

use crate::checker::hash::FastBuildHasher;
use crate::error::HistoryError;
use crate::history::Status;
use crate::txn::anomaly::{AnomalyKind, Findings};
use crate::txn::budget::Budget;
use crate::txn::explain::{Explain, list_text};
use crate::txn::graph::{EdgeKind, EdgeList, RW, WR, WW};
use crate::txn::history::{Mop, Seen, TxnHistory};

const NONE: u32 = u32::MAX;

/// Who appended a value, and where it is in its key's order.
#[derive(Debug, Clone, Copy)]
struct Entry {
    txn: u32,
    /// Position in the key's longest read; `NONE` if no read shows it.
    pos: u32,
    /// Whether it is its transaction's last append to the key.
    last: bool,
}

/// What the inference learned, kept to explain edges afterwards.
pub struct AppendIndex {
    entries: HashMap<(u32, i64), Entry, FastBuildHasher>,
    /// Per key: the longest committed read (the version order) and its reader.
    order: Vec<(Seen, u32)>,
    /// Per key: position of the first value a failed transaction appended.
    first_failed: Vec<u32>,
}

/// Infers version orders and edges; `None` if the budget ran out.
pub fn infer(
    h: &TxnHistory,
    found: &mut Findings,
    edges: &mut EdgeList,
    budget: &mut Budget,
) -> Result<Option<AppendIndex>, HistoryError> {
    let mut index = AppendIndex {
        entries: index_appends(h)?,
        order: longest_reads(h),
        first_failed: vec![NONE; h.keys.len()],
    };
    walk_orders(h, &mut index, found, edges);
    for t in 0..h.txns.len() {
        if budget.expired() || budget.too_many_edges(edges.len()) {
            return Ok(None);
        }
        if h.txns[t].status == Status::Ok {
            check_reads(h, &index, t, found, edges);
            check_own_order(h, &index, t, found);
            crate::txn::internal::check_list(h, t, found);
        }
    }
    Ok(Some(index))
}

fn index_appends(
    h: &TxnHistory,
) -> Result<HashMap<(u32, i64), Entry, FastBuildHasher>, HistoryError> {
    let mut entries: HashMap<(u32, i64), Entry, FastBuildHasher> =
        HashMap::with_capacity_and_hasher(h.mops.len() / 2 + 1, FastBuildHasher);
    for t in 0..h.txns.len() {
        let mops = h.mops(t);
        for (i, m) in mops.iter().enumerate() {
            let Mop::Append { key, value } = *m else {
                continue;
            };
            let last = !mops[i + 1..]
                .iter()
                .any(|n| matches!(*n, Mop::Append { key: k, .. } if k == key));
            let entry = Entry {
                txn: t as u32,
                pos: NONE,
                last,
            };
            if let Some(prev) = entries.insert((key, value), entry) {
                return Err(HistoryError::new(
                    h.txns[t].call_line,
                    format!(
                        "value {value} is appended to key {} twice (also on line {}); list-append needs unique values per key",
                        h.keys[key as usize], h.txns[prev.txn as usize].call_line
                    ),
                ));
            }
        }
    }
    Ok(entries)
}

fn longest_reads(h: &TxnHistory) -> Vec<(Seen, u32)> {
    let mut order = vec![(Seen::Nil, NONE); h.keys.len()];
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status != Status::Ok {
            continue;
        }
        for m in h.mops(t) {
            if let Mop::Read { key, seen } = *m
                && h.list(seen).len() > h.list(order[key as usize].0).len()
            {
                order[key as usize] = (seen, t as u32);
            }
        }
    }
    order
}

/// Places every value of each key's order, adds ww edges between
/// consecutive writers, and reports garbage and duplicate values.
fn walk_orders(
    h: &TxnHistory,
    index: &mut AppendIndex,
    found: &mut Findings,
    edges: &mut EdgeList,
) {
    for key in 0..h.keys.len() {
        let (seen, reader) = index.order[key];
        let mut prev: Option<u32> = None;
        for (i, &v) in h.list(seen).iter().enumerate() {
            let name = &h.keys[key];
            let Some(e) = index.entries.get_mut(&(key as u32, v)) else {
                found.add(AnomalyKind::GarbageRead, &[reader as usize], || {
                    format!(
                        "{} read key {name} as {}, but no transaction appended {v} to it",
                        h.name(reader as usize),
                        list_text(h.list(seen))
                    )
                });
                continue;
            };
            if e.pos != NONE {
                found.add(AnomalyKind::DuplicateElements, &[reader as usize], || {
                    format!(
                        "{} read key {name} as {}, which holds {v} twice though it was appended once",
                        h.name(reader as usize),
                        list_text(h.list(seen))
                    )
                });
                continue;
            }
            e.pos = i as u32;
            let w = e.txn;
            if h.txns[w as usize].status == Status::Fail {
                index.first_failed[key] = index.first_failed[key].min(i as u32);
                continue;
            }
            if let Some(p) = prev {
                edges.add(p, w, WW);
            }
            prev = Some(w);
        }
    }
}

impl AppendIndex {
    fn writer(&self, key: u32, value: i64) -> Option<Entry> {
        self.entries.get(&(key, value)).copied()
    }

    fn order<'h>(&self, h: &'h TxnHistory, key: u32) -> &'h [i64] {
        h.list(self.order[key as usize].0)
    }

    /// The first committed writer after the first `len` values of `key`'s
    /// order, unless that is `reader` itself (whose own appends follow).
    fn next_writer(&self, h: &TxnHistory, key: u32, len: usize, reader: u32) -> Option<u32> {
        for &v in &self.order(h, key)[len..] {
            let Some(e) = self.writer(key, v) else {
                continue;
            };
            if h.txns[e.txn as usize].status == Status::Fail {
                continue;
            }
            return (e.txn != reader).then_some(e.txn);
        }
        None
    }
}

/// Whether the read at `i` in `mops` is the first access to its key.
fn is_external(mops: &[Mop], i: usize) -> bool {
    let key = mops[i].key();
    !mops[..i].iter().any(|m| m.key() == key)
}

fn check_reads(
    h: &TxnHistory,
    index: &AppendIndex,
    t: usize,
    found: &mut Findings,
    edges: &mut EdgeList,
) {
    let mops = h.mops(t);
    for (i, m) in mops.iter().enumerate() {
        let Mop::Read { key, seen } = *m else {
            continue;
        };
        if seen == Seen::Unknown {
            continue;
        }
        let read = h.list(seen);
        let order = index.order(h, key);
        let name = &h.keys[key as usize];
        if read.len() > order.len() || order[..read.len()] != *read {
            let longest = index.order[key as usize].1 as usize;
            found.add(AnomalyKind::IncompatibleOrder, &[t, longest], || {
                format!(
                    "{} read key {name} as {}, and {} read it as {}; neither is a prefix of the other",
                    h.name(t),
                    list_text(read),
                    h.name(longest),
                    list_text(order)
                )
            });
            continue;
        }
        let first_failed = index.first_failed[key as usize] as usize;
        if first_failed < read.len() {
            let v = read[first_failed];
            let w = index.writer(key, v).map_or(t, |e| e.txn as usize);
            found.add(AnomalyKind::G1a, &[t, w], || {
                format!(
                    "{} read key {name} as {}, which holds {v}, appended by {}, which failed",
                    h.name(t),
                    list_text(read),
                    h.name(w)
                )
            });
        }
        if is_external(mops, i) {
            external_read(h, index, t, key, read, found, edges);
        }
    }
}

/// The edges a transaction's first read of a key proves.
fn external_read(
    h: &TxnHistory,
    index: &AppendIndex,
    t: usize,
    key: u32,
    read: &[i64],
    found: &mut Findings,
    edges: &mut EdgeList,
) {
    let name = &h.keys[key as usize];
    if let Some(&last) = read.last()
        && let Some(e) = index.writer(key, last)
        && e.txn as usize != t
        && h.txns[e.txn as usize].status != Status::Fail
    {
        edges.add(e.txn, t as u32, WR);
        if !e.last {
            found.add(AnomalyKind::G1b, &[t, e.txn as usize], || {
                format!(
                    "{} read key {name} as {}, ending in {last}, which {} appended before appending more to the key",
                    h.name(t),
                    list_text(read),
                    h.name(e.txn as usize)
                )
            });
        }
    }
    if let Some(w) = index.next_writer(h, key, read.len(), t as u32) {
        edges.add(t as u32, w, RW);
    }
    for m in h.mops(t) {
        if let Mop::Append { key: k, value } = *m
            && k == key
            && index
                .writer(k, value)
                .is_some_and(|e| (e.pos as usize) < read.len())
        {
            found.add(AnomalyKind::Internal, &[t], || {
                format!(
                    "{} read key {name} as {} before appending {value} itself",
                    h.name(t),
                    list_text(read)
                )
            });
        }
    }
}

/// A transaction's appends to a key must appear in the order it made them.
fn check_own_order(h: &TxnHistory, index: &AppendIndex, t: usize, found: &mut Findings) {
    let mops = h.mops(t);
    for (i, a) in mops.iter().enumerate() {
        let Mop::Append { key, value: first } = *a else {
            continue;
        };
        let Some(pa) = index
            .writer(key, first)
            .map(|e| e.pos)
            .filter(|&p| p != NONE)
        else {
            continue;
        };
        for b in &mops[i + 1..] {
            if let Mop::Append {
                key: k,
                value: second,
            } = *b
                && k == key
                && index.writer(k, second).is_some_and(|e| e.pos < pa)
            {
                found.add(AnomalyKind::IncompatibleOrder, &[t], || {
                    format!(
                        "{} appended {first} then {second} to key {}, but its order {} has them the other way round",
                        h.name(t),
                        h.keys[key as usize],
                        list_text(index.order(h, key))
                    )
                });
            }
        }
    }
}

impl Explain for AppendIndex {
    fn why(&self, h: &TxnHistory, from: usize, to: usize, kind: EdgeKind) -> Option<String> {
        match kind {
            EdgeKind::Ww => self.why_ww(h, from, to),
            EdgeKind::Wr => self.why_wr(h, from, to),
            EdgeKind::Rw => self.why_rw(h, from, to),
            _ => None,
        }
    }
}

impl AppendIndex {
    fn why_ww(&self, h: &TxnHistory, from: usize, to: usize) -> Option<String> {
        for m in h.mops(from) {
            let Mop::Append { key, value } = *m else {
                continue;
            };
            let Some(e) = self.writer(key, value).filter(|e| e.pos != NONE) else {
                continue;
            };
            let order = self.order(h, key);
            let next = order[e.pos as usize + 1..].iter().find_map(|&v| {
                let n = self.writer(key, v)?;
                let live = h.txns[n.txn as usize].status != Status::Fail;
                (live && n.txn as usize != from).then_some((v, n.txn as usize))
            });
            if let Some((v, _)) = next.filter(|&(_, w)| w == to) {
                return Some(format!(
                    "{} appended {value} to key {} and {} appended {v} after it ({})",
                    h.name(from),
                    h.keys[key as usize],
                    h.name(to),
                    list_text(order)
                ));
            }
        }
        None
    }

    fn why_wr(&self, h: &TxnHistory, from: usize, to: usize) -> Option<String> {
        let mops = h.mops(to);
        (0..mops.len()).find_map(|i| {
            let Mop::Read { key, seen } = mops[i] else {
                return None;
            };
            let read = h.list(seen);
            let last = *read.last()?;
            (is_external(mops, i) && self.writer(key, last)?.txn as usize == from).then(|| {
                format!(
                    "{} read key {} as {}, ending in {last}, which {} appended",
                    h.name(to),
                    h.keys[key as usize],
                    list_text(read),
                    h.name(from)
                )
            })
        })
    }

    fn why_rw(&self, h: &TxnHistory, from: usize, to: usize) -> Option<String> {
        let mops = h.mops(from);
        (0..mops.len()).find_map(|i| {
            let Mop::Read { key, seen } = mops[i] else {
                return None;
            };
            if seen == Seen::Unknown || !is_external(mops, i) {
                return None;
            }
            let read = h.list(seen);
            let w = self.next_writer(h, key, read.len(), from as u32)?;
            (w as usize == to).then(|| {
                let appended = h.mops(to).iter().find_map(|m| match *m {
                    Mop::Append { key: k, value } if k == key => Some(value),
                    _ => None,
                });
                format!(
                    "{} read key {} as {}, without {}, which {} appended later",
                    h.name(from),
                    h.keys[key as usize],
                    list_text(read),
                    appended.map_or_else(|| "the next value".to_owned(), |v| v.to_string()),
                    h.name(to)
                )
            })
        })
    }
}
