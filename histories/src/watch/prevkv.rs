//! prev_kv: an event's previous value is the key's value just before the
//! event's revision in the committed history. Checked only where that
//! history is complete: not where an unseen write of unknown outcome on
//! the key might lie below.

use crate::watch::committed::{Committed, describe};
use crate::watch::format::{EventType, WatchEvent};
use crate::watch::history::{Response, Segment};
use crate::watch::report::{Findings, Guarantee, Violation};

/// The key's value just before `rev` (`None`: absent), and the revision
/// that set it.
fn value_before<'a>(c: &'a Committed, key: &str, rev: i64) -> (Option<&'a str>, Option<i64>) {
    let Some((&at, change)) = c.keys.get(key).and_then(|ch| ch.range(..rev).next_back()) else {
        return (None, None);
    };
    match change.kind {
        EventType::Put => (change.value.as_deref(), Some(at)),
        EventType::Delete => (None, Some(at)),
    }
}

pub fn check(segments: &[Segment], c: &Committed, findings: &mut Findings) {
    for s in segments.iter().filter(|s| s.prev_kv) {
        for r in s.responses() {
            for e in &r.events {
                if let Some(got) = &e.prev_value
                    && !c.maybe_unseen_before(&e.key, r.time_ns)
                {
                    one(s, r, e, got.as_deref(), c, findings);
                }
            }
        }
    }
}

fn one(
    s: &Segment,
    r: &Response,
    e: &WatchEvent,
    got: Option<&str>,
    c: &Committed,
    findings: &mut Findings,
) {
    let (want, set_at) = value_before(c, &e.key, e.mod_revision);
    if got == want {
        return;
    }
    let show = |v: Option<&str>| v.map_or_else(|| "null".to_owned(), |v| format!("{v:?}"));
    let because = match set_at {
        Some(at) => format!("set at revision {at}"),
        None => "no write before it".to_owned(),
    };
    findings.push(Violation {
        guarantee: Guarantee::PrevKv,
        class: "prev-value",
        watcher: s.watcher,
        revision: e.mod_revision,
        key: e.key.clone(),
        line: r.line,
        message: format!(
            "watcher {} got prev_value {} with {} at revision {} (line {}), but the value just before was {} ({because})",
            s.watcher,
            show(got),
            describe(e.kind, &e.key, e.value.as_deref()),
            e.mod_revision,
            r.line,
            show(want)
        ),
    });
}
