//! Progress never runs ahead: a write invoked after a progress notification
//! for revision R was received, and applied, has a revision above R. Only
//! writes with a put count: a write of deletes of absent keys changes
//! nothing and reports the current revision.

use crate::watch::history::{Item, Outcome, Segment, Write};
use crate::watch::report::{Findings, Guarantee, Violation};

/// The ok writes with a put by invocation time, with the lowest revision
/// from each on: `(invoke_ns, write of the lowest revision, that revision)`.
fn lowest_after(writes: &[Write]) -> Vec<(u64, usize, i64)> {
    let mut ok: Vec<(u64, usize, i64)> = writes
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match w.outcome {
            Outcome::Ok(rev) if w.has_put() => Some((w.invoke_ns, i, rev)),
            _ => None,
        })
        .collect();
    ok.sort_unstable();
    for j in (0..ok.len().saturating_sub(1)).rev() {
        let next = ok[j + 1];
        if next.2 < ok[j].2 {
            ok[j] = (ok[j].0, next.1, next.2);
        }
    }
    ok
}

pub fn check(segments: &[Segment], writes: &[Write], findings: &mut Findings) {
    let lowest = lowest_after(writes);
    for s in segments {
        for item in &s.items {
            let Item::Progress {
                line,
                revision,
                time_ns,
            } = item
            else {
                continue;
            };
            let from = lowest.partition_point(|(t, _, _)| t <= time_ns);
            let Some(&(_, i, rev)) = lowest.get(from) else {
                continue;
            };
            if rev <= *revision {
                let w = &writes[i];
                findings.push(Violation {
                    guarantee: Guarantee::Bookmarkable,
                    class: "progress-ahead",
                    watcher: s.watcher,
                    revision: *revision,
                    key: w.ops.first().map(|op| op.key().to_owned()).unwrap_or_default(),
                    line: *line,
                    message: format!(
                        "watcher {} got a progress notification for revision {revision} at line {line} (time {time_ns} ns), but process {}'s write of {} invoked later (line {}, time {} ns) committed at revision {rev}",
                        s.watcher, w.process, keys(w), w.line, w.invoke_ns
                    ),
                });
            }
        }
    }
}

/// `w/a, w/b`: the keys a write touches.
fn keys(w: &Write) -> String {
    let keys: Vec<&str> = w.ops.iter().map(|op| op.key()).collect();
    keys.join(", ")
}
