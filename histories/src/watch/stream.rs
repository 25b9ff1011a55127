//! The checks that need only one watcher's stream: ordered, unique,
//! atomic, resumable, no event after a progress notification, header
//! revisions, and no event on a key (or of a kind) the stream does not
//! watch.
//!
//! An equal revision in a later response is a duplicate if the key was
//! delivered at that revision before (unique), else a split revision
//! (atomic); ordered reports only revisions that go back, so each fault
//! gets the one explanation that fits it best.

use std::collections::{BTreeMap, HashMap};

use crate::watch::committed::describe;
use crate::watch::format::WatchEvent;
use crate::watch::history::{Item, Response, Segment};
use crate::watch::report::{Findings, Guarantee, Violation};

/// What one watcher has received so far.
#[derive(Default)]
struct Stream {
    /// The highest revision delivered, and its line.
    last: Option<(i64, usize)>,
    /// (revision, key) → line it was delivered at.
    delivered: HashMap<(i64, String), usize>,
    /// Revision → the line of the response that carried it.
    responses: HashMap<i64, usize>,
}

/// Runs the stream checks over every watcher.
pub fn check(segments: &[Segment], findings: &mut Findings) {
    let mut streams: BTreeMap<u64, Stream> = BTreeMap::new();
    for s in segments {
        let stream = streams.entry(s.watcher).or_default();
        let mut progress: Option<(i64, usize)> = None;
        for item in &s.items {
            match item {
                Item::Progress { line, revision, .. } => {
                    if progress.is_none_or(|(r, _)| *revision > r) {
                        progress = Some((*revision, *line));
                    }
                }
                Item::Events(r) => {
                    for e in &r.events {
                        one_event(stream, s, r, e, progress, findings);
                    }
                    for e in &r.events {
                        stream.responses.entry(e.mod_revision).or_insert(r.line);
                    }
                }
            }
        }
    }
}

fn one_event(
    stream: &mut Stream,
    s: &Segment,
    r: &Response,
    e: &WatchEvent,
    progress: Option<(i64, usize)>,
    findings: &mut Findings,
) {
    let what = describe(e.kind, &e.key, e.value.as_deref());
    let mut push = |guarantee, class, message: String| {
        findings.push(Violation {
            guarantee,
            class,
            watcher: s.watcher,
            revision: e.mod_revision,
            key: e.key.clone(),
            line: r.line,
            message,
        });
    };
    let (w, rev, line) = (s.watcher, e.mod_revision, r.line);
    if rev > r.revision {
        push(
            Guarantee::Header,
            "header",
            format!(
                "watcher {w} got {what} at revision {rev} in a response whose header revision is {} (line {line})",
                r.revision
            ),
        );
    }
    if !s.wants(e.kind, &e.key) {
        push(
            Guarantee::Reliable,
            "unwatched",
            format!(
                "watcher {w} got {what} at revision {rev} (line {line}), which its stream opened at line {} (prefix {:?}{}) does not watch",
                s.line,
                s.prefix,
                filters(s)
            ),
        );
    }
    if s.start_revision > 0 && rev < s.start_revision {
        push(
            Guarantee::Resumable,
            "too-early",
            format!(
                "watcher {w} got {what} at revision {rev} (line {line}) on a stream opened from revision {} (line {})",
                s.start_revision, s.line
            ),
        );
    }
    if let Some((p, p_line)) = progress.filter(|(p, _)| rev <= *p) {
        push(
            Guarantee::Bookmarkable,
            "after-progress",
            format!(
                "watcher {w} got {what} at revision {rev} (line {line}) after a progress notification for revision {p} (line {p_line})"
            ),
        );
    }
    let id = (rev, e.key.clone());
    if let Some(&first) = stream.delivered.get(&id) {
        push(
            Guarantee::Unique,
            "duplicate",
            format!(
                "watcher {w} got {what} at revision {rev} twice: at line {first} and again at line {line}"
            ),
        );
        return;
    }
    stream.delivered.insert(id, line);
    match stream.last {
        Some((last, last_line)) if rev < last => push(
            Guarantee::Ordered,
            "backwards",
            format!(
                "watcher {w} got {what} at revision {rev} (line {line}) after revision {last} (line {last_line})"
            ),
        ),
        _ => stream.last = Some((rev, line)),
    }
    if let Some(&other) = stream.responses.get(&rev).filter(|&&l| l != line) {
        push(
            Guarantee::Atomic,
            "split",
            format!(
                "watcher {w} got {what} at revision {rev} at line {line}, apart from the rest of revision {rev} at line {other}"
            ),
        );
    }
}

/// `, noput` and so on, for a message.
fn filters(s: &Segment) -> String {
    let mut out = String::new();
    if s.no_put {
        out.push_str(", noput");
    }
    if s.no_delete {
        out.push_str(", nodelete");
    }
    out
}
