//! Reliable: from its start to the highest revision it is known to cover
//! (its last event, or a progress notification, whichever is higher), a
//! segment delivers every committed event on a key it watches.

use std::collections::{BTreeMap, HashSet};

use crate::txn::budget::Budget;
use crate::watch::committed::{Committed, describe};
use crate::watch::history::{Item, Segment};
use crate::watch::report::{Findings, Guarantee, Violation};

/// The revisions a segment is known to cover, and the line that shows the
/// upper end.
struct Covered {
    from: i64,
    to: i64,
    line: usize,
}

fn covered(s: &Segment) -> Option<Covered> {
    let mut from = (s.start_revision > 0).then_some(s.start_revision);
    let mut to: Option<(i64, usize)> = None;
    for item in &s.items {
        let (low, high, line) = match item {
            Item::Progress { line, revision, .. } => (revision.saturating_add(1), *revision, *line),
            Item::Events(r) => match r.events.iter().map(|e| e.mod_revision).max() {
                Some(max) => (r.events[0].mod_revision, max, r.line),
                None => continue,
            },
        };
        from.get_or_insert(low);
        if to.is_none_or(|(t, _)| high > t) {
            to = Some((high, line));
        }
    }
    let (from, (to, line)) = (from?, to?);
    (from <= to).then_some(Covered { from, to, line })
}

/// Reports each committed event a segment should have delivered and did not.
pub fn check(
    segments: &[Segment],
    committed: &Committed,
    findings: &mut Findings,
    budget: &mut Budget,
) {
    let mut delivered: BTreeMap<u64, HashSet<(i64, &str)>> = BTreeMap::new();
    for s in segments {
        let set = delivered.entry(s.watcher).or_default();
        for r in s.responses() {
            set.extend(r.events.iter().map(|e| (e.mod_revision, e.key.as_str())));
        }
    }
    for s in segments {
        if budget.expired() {
            return;
        }
        let Some(c) = covered(s) else { continue };
        let seen = &delivered[&s.watcher];
        let keys = committed
            .keys
            .range(s.prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&s.prefix));
        for (key, changes) in keys {
            for (&rev, change) in changes.range(c.from..=c.to) {
                if change.event && s.wants(change.kind, key) && !seen.contains(&(rev, key.as_str()))
                {
                    findings.push(missed(
                        s,
                        &c,
                        rev,
                        key,
                        change.kind,
                        change.value.as_deref(),
                    ));
                }
            }
        }
    }
}

fn missed(
    s: &Segment,
    c: &Covered,
    rev: i64,
    key: &str,
    kind: crate::watch::format::EventType,
    value: Option<&str>,
) -> Violation {
    Violation {
        guarantee: Guarantee::Reliable,
        class: "missed",
        watcher: s.watcher,
        revision: rev,
        key: key.to_owned(),
        line: c.line,
        message: format!(
            "watcher {} missed {} at revision {rev}: its stream opened at line {} covers revisions {} to {} (line {})",
            s.watcher,
            describe(kind, key, value),
            s.line,
            c.from,
            c.to,
            c.line
        ),
    }
}
