//! The committed events: the ok writes' ops at their revisions, and every
//! delivered event once it is matched to a write. Events that match no
//! write are phantoms; two different events at one (revision, key) mean the
//! watchers disagree.

use std::collections::BTreeMap;

use crate::txn::budget::Budget;
use crate::watch::format::{EventType, WatchEvent, WriteOp};
use crate::watch::history::{Outcome, Response, Segment, WatchHistory, Write};
use crate::watch::report::{Findings, Guarantee, Violation};

/// One change to one key at one revision.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: EventType,
    pub value: Option<String>,
    /// The write it came from, if known.
    pub write: Option<usize>,
    /// A watcher that delivered it, and the line.
    pub seen: Option<(u64, usize)>,
    /// A time by which the revision was certainly committed.
    pub known_ns: u64,
    /// Whether a watcher must see it (a delete of an absent key is no event).
    pub event: bool,
}

/// What is known to have been committed.
#[derive(Debug, Default)]
pub struct Committed {
    /// key → revision → change.
    pub keys: BTreeMap<String, BTreeMap<i64, Change>>,
    /// The revision an `info` write was seen at, by write.
    pub info_revision: Vec<Option<i64>>,
    /// Keys an unseen `info` write touches → its earliest invocation.
    pub unseen: BTreeMap<String, u64>,
}

impl Committed {
    /// Whether an unseen write of unknown outcome might have changed `key`
    /// before a revision known committed at `known_ns`.
    pub fn maybe_unseen_before(&self, key: &str, known_ns: u64) -> bool {
        self.unseen.get(key).is_some_and(|&t| t < known_ns)
    }
}

/// Builds the committed events and reports phantoms and disagreements.
pub fn build(h: &WatchHistory, findings: &mut Findings, budget: &mut Budget) -> Committed {
    let mut c = Committed {
        info_revision: vec![None; h.writes.len()],
        ..Committed::default()
    };
    for (i, w) in h.writes.iter().enumerate() {
        if let (Outcome::Ok(rev), Some(done)) = (w.outcome, w.complete_ns) {
            add_write(&mut c, i, w, rev, done);
        }
    }
    let values = put_index(&h.writes);
    let deletes = delete_index(&h.writes);
    for s in &h.segments {
        for r in s.responses() {
            if budget.expired() {
                return c;
            }
            for e in &r.events {
                if let Err(why) = attribute(&mut c, h, (&values, &deletes), e, r) {
                    findings.push(phantom(s, r, e, why));
                } else {
                    merge(&mut c, s, r, e, findings);
                }
            }
        }
    }
    finish(&mut c, &h.writes);
    c
}

/// Every put value → (write, key), for the writes that may have applied.
fn put_index(writes: &[Write]) -> BTreeMap<&str, (usize, &str)> {
    let mut values = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        if w.outcome == Outcome::Fail {
            continue;
        }
        for op in &w.ops {
            if let WriteOp::Put { key, value } = op {
                values.insert(value.as_str(), (i, key.as_str()));
            }
        }
    }
    values
}

/// Every deleted key → the writes that may have deleted it.
fn delete_index(writes: &[Write]) -> BTreeMap<&str, Vec<usize>> {
    let mut keys: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        if w.outcome == Outcome::Fail {
            continue;
        }
        for op in &w.ops {
            if let WriteOp::Delete { key } = op {
                keys.entry(key.as_str()).or_default().push(i);
            }
        }
    }
    keys
}

/// Put values and deleted keys to the writes.
type Index<'a, 'h> = (
    &'a BTreeMap<&'h str, (usize, &'h str)>,
    &'a BTreeMap<&'h str, Vec<usize>>,
);

/// Adds a write's ops at `rev`. A put wins over a delete at the same
/// (revision, key): a delete of an absent key changes nothing, and its
/// write reports the revision some other write made.
fn add_write(c: &mut Committed, i: usize, w: &Write, rev: i64, known_ns: u64) {
    for op in &w.ops {
        let (kind, value) = match op {
            WriteOp::Put { value, .. } => (EventType::Put, Some(value.clone())),
            WriteOp::Delete { .. } => (EventType::Delete, None),
        };
        let at = c.keys.entry(op.key().to_owned()).or_default();
        let keep = at.get(&rev).is_some_and(|old| old.kind == EventType::Put);
        if !keep {
            at.insert(
                rev,
                Change {
                    kind,
                    value,
                    write: Some(i),
                    seen: None,
                    known_ns,
                    event: kind == EventType::Put,
                },
            );
        }
    }
}

/// Finds the write a delivered event comes from (and places an `info`
/// write at its revision), or says why there is none.
fn attribute(
    c: &mut Committed,
    h: &WatchHistory,
    (values, deletes): Index,
    e: &WatchEvent,
    r: &Response,
) -> Result<(), String> {
    if e.kind == EventType::Delete {
        return delete_matches(h, deletes, e);
    }
    let Some(value) = e.value.as_deref() else {
        return Err("a put without a value".into());
    };
    let Some(&(i, key)) = values.get(value) else {
        return Err(format!("no write that may have applied put {value:?}"));
    };
    let w = &h.writes[i];
    if key != e.key {
        return Err(format!(
            "the write of line {} put {value:?} on {key}, not {}",
            w.line, e.key
        ));
    }
    let placed = match w.outcome {
        Outcome::Ok(rev) => Some(rev),
        _ => c.info_revision[i],
    };
    match placed {
        Some(rev) if rev != e.mod_revision => Err(format!(
            "the write of line {} that put {value:?} committed at revision {rev}",
            w.line
        )),
        Some(_) => Ok(()),
        None => {
            c.info_revision[i] = Some(e.mod_revision);
            add_write(c, i, w, e.mod_revision, r.time_ns);
            Ok(())
        }
    }
}

fn delete_matches(
    h: &WatchHistory,
    deletes: &BTreeMap<&str, Vec<usize>>,
    e: &WatchEvent,
) -> Result<(), String> {
    let writes = deletes.get(e.key.as_str()).map_or(&[][..], Vec::as_slice);
    let found = writes.iter().any(|&i| match h.writes[i].outcome {
        Outcome::Ok(rev) => rev == e.mod_revision,
        Outcome::Info => true,
        Outcome::Fail => false,
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "no write that may have applied deleted {} at that revision",
            e.key
        ))
    }
}

fn phantom(s: &Segment, r: &Response, e: &WatchEvent, why: String) -> Violation {
    Violation {
        guarantee: Guarantee::Reliable,
        class: "phantom",
        watcher: s.watcher,
        revision: e.mod_revision,
        key: e.key.clone(),
        line: r.line,
        message: format!(
            "watcher {} got a phantom event at line {}: {} at revision {}, but {why}",
            s.watcher,
            r.line,
            describe(e.kind, e.key.as_str(), e.value.as_deref()),
            e.mod_revision
        ),
    }
}

/// `put w/k1 = "17"` or `delete w/k2`.
pub fn describe(kind: EventType, key: &str, value: Option<&str>) -> String {
    match (kind, value) {
        (EventType::Put, Some(v)) => format!("put {key} = {v:?}"),
        (kind, _) => format!("{} {key}", kind.as_str()),
    }
}

/// Records a delivered event as committed, or reports that it differs
/// from what is already known at that (revision, key).
fn merge(c: &mut Committed, s: &Segment, r: &Response, e: &WatchEvent, findings: &mut Findings) {
    let at = c.keys.entry(e.key.clone()).or_default();
    let Some(old) = at.get_mut(&e.mod_revision) else {
        at.insert(
            e.mod_revision,
            Change {
                kind: e.kind,
                value: e.value.clone(),
                write: None,
                seen: Some((s.watcher, r.line)),
                known_ns: r.time_ns,
                event: true,
            },
        );
        return;
    };
    let value = if e.kind == EventType::Put {
        e.value.clone()
    } else {
        None
    };
    if old.kind == e.kind && old.value == value {
        old.event = true;
        old.known_ns = old.known_ns.min(r.time_ns);
        old.seen.get_or_insert((s.watcher, r.line));
        return;
    }
    let before = match old.seen {
        Some((w, line)) => format!("watcher {w} got {} (line {line})", old_text(old, &e.key)),
        None => format!("the writes say {}", old_text(old, &e.key)),
    };
    findings.push(Violation {
        guarantee: Guarantee::Reliable,
        class: "disagree",
        watcher: s.watcher,
        revision: e.mod_revision,
        key: e.key.clone(),
        line: r.line,
        message: format!(
            "watcher {} got {} at revision {} (line {}), but {before} there",
            s.watcher,
            describe(e.kind, &e.key, e.value.as_deref()),
            e.mod_revision,
            r.line
        ),
    });
}

fn old_text(old: &Change, key: &str) -> String {
    describe(old.kind, key, old.value.as_deref())
}

/// Notes the unseen `info` writes, and which deletes must be events: those
/// of a key known present just before, with no unseen write that might
/// have deleted it in between.
fn finish(c: &mut Committed, writes: &[Write]) {
    for (i, w) in writes.iter().enumerate() {
        if w.outcome == Outcome::Info && c.info_revision[i].is_none() {
            for op in &w.ops {
                let t = c.unseen.entry(op.key().to_owned()).or_insert(u64::MAX);
                *t = (*t).min(w.invoke_ns);
            }
        }
    }
    for (key, changes) in &mut c.keys {
        let unseen = c.unseen.get(key).copied().unwrap_or(u64::MAX);
        let mut present = false;
        for change in changes.values_mut() {
            if change.kind == EventType::Delete && !change.event {
                change.event = present && unseen >= change.known_ns;
            }
            present = change.kind == EventType::Put;
        }
    }
}
