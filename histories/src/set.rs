//! The set checker: clients `add` unique elements to sets (one per key) and
//! `read` whole sets. With linearizable reads, an element is in every read
//! of its set that begins after either
//!
//! - its `add` was acknowledged (`ok`), or
//! - some read of the set returned it (the add took effect, even one whose
//!   outcome was unknown),
//!
//! so a read that lacks it is a **lost** element; and a read never returns
//! an element nobody tried to add (**unexpected**). Acknowledged elements
//! that no read after their add ever looked for are counted as
//! **unconfirmed**: not a violation, but the run proved nothing about them.
//!
//! Real time is the history's order (the recorder stamps every event under
//! one lock), so "begins after" compares an op's invocation with another's
//! completion position.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::history::{Operation, Status};
use crate::value::Value;

/// One violation, explained.
#[derive(Debug, Clone, Serialize)]
pub struct SetViolation {
    /// `lost` or `unexpected`.
    pub kind: &'static str,
    pub key: String,
    pub element: i64,
    /// History line of the read that shows it.
    pub line: usize,
    pub message: String,
}

/// What the set check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetResult {
    pub valid: bool,
    pub sets: usize,
    pub adds_ok: usize,
    pub reads_ok: usize,
    pub lost: usize,
    pub unexpected: usize,
    pub unconfirmed: usize,
    /// The first few violations (at most [`EXAMPLES_MAX`]).
    pub violations: Vec<SetViolation>,
}

/// Violations kept as examples.
pub const EXAMPLES_MAX: usize = 20;

/// When an element became certain to be present: the history position of
/// the completion that proves it, and that op's line.
#[derive(Debug, Clone, Copy)]
struct Known {
    at: usize,
    line: usize,
}

#[derive(Default)]
struct KeyState<'a> {
    attempted: HashSet<i64>,
    /// Element → earliest proof of presence.
    known: HashMap<i64, Known>,
    reads: Vec<&'a Operation>,
    adds_ok: Vec<&'a Operation>,
}

/// Checks every set (ops of `f` `add` and `read`; others are ignored).
pub fn check_set(ops: &[Operation]) -> SetResult {
    let mut keys: BTreeMap<&str, KeyState> = BTreeMap::new();
    for op in ops {
        let key = op.key.as_deref().unwrap_or("");
        let state = keys.entry(key).or_default();
        match (op.f.as_str(), op.status) {
            ("add", _) => {
                // A failed add certainly did not take effect.
                if let Some(e) = op.input.as_int().filter(|_| op.status != Status::Fail) {
                    state.attempted.insert(e);
                    if op.status == Status::Ok {
                        state.adds_ok.push(op);
                        prove(state, e, op);
                    }
                }
            }
            ("read", Status::Ok) => state.reads.push(op),
            _ => {}
        }
    }
    let mut result = SetResult {
        sets: keys.len(),
        ..SetResult::default()
    };
    for (key, state) in &mut keys {
        for read in state.reads.clone() {
            for e in elements(&read.output) {
                prove(state, e, read);
            }
        }
        check_key(key, state, &mut result);
    }
    result.valid = result.lost == 0 && result.unexpected == 0;
    result
}

fn prove(state: &mut KeyState, e: i64, op: &Operation) {
    let Some(at) = op.ret else { return };
    let line = op.ret_line.unwrap_or(op.call_line);
    let k = state.known.entry(e).or_insert(Known { at, line });
    if at < k.at {
        *k = Known { at, line };
    }
}

fn elements(v: &Value) -> Vec<i64> {
    match v {
        Value::List(items) => items.iter().filter_map(Value::as_int).collect(),
        _ => Vec::new(),
    }
}

fn check_key(key: &str, state: &KeyState, out: &mut SetResult) {
    out.adds_ok += state.adds_ok.len();
    out.reads_ok += state.reads.len();
    // Elements by the position that proves them, to walk reads in order.
    let mut proofs: Vec<(usize, i64, Known)> =
        state.known.iter().map(|(&e, &k)| (k.at, e, k)).collect();
    proofs.sort_unstable_by_key(|p| (p.0, p.1));
    let mut reads = state.reads.clone();
    reads.sort_unstable_by_key(|r| r.call);
    let mut confirmed: HashSet<i64> = HashSet::new();
    for read in reads {
        let seen: HashSet<i64> = elements(&read.output).into_iter().collect();
        for &e in &seen {
            if !state.attempted.contains(&e) {
                let message = format!(
                    "set {key}: read by process {} (line {}) returned {e}, which no add wrote (or whose add failed)",
                    read.process, read.call_line
                );
                push(out, "unexpected", key, e, read.call_line, message);
            }
        }
        for &(_, e, proof) in proofs.iter().take_while(|p| p.0 < read.call) {
            confirmed.insert(e);
            if !seen.contains(&e) {
                let message = format!(
                    "set {key}: element {e}, present since line {}, is missing from the read by process {} (line {})",
                    proof.line, read.process, read.call_line
                );
                push(out, "lost", key, e, read.call_line, message);
            }
        }
    }
    out.unconfirmed += state
        .adds_ok
        .iter()
        .filter_map(|op| op.input.as_int())
        .filter(|e| !confirmed.contains(e))
        .count();
}

fn push(out: &mut SetResult, kind: &'static str, key: &str, e: i64, line: usize, message: String) {
    match kind {
        "lost" => out.lost += 1,
        _ => out.unexpected += 1,
    }
    if out.violations.len() < EXAMPLES_MAX {
        out.violations.push(SetViolation {
            kind,
            key: key.to_owned(),
            element: e,
            line,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{pair, read_jsonl};

    fn check(text: &str) -> SetResult {
        check_set(&pair(&read_jsonl(text.as_bytes()).unwrap()).unwrap())
    }

    const ADD_THEN_READ: &str = r#"{"process":0,"type":"invoke","f":"add","key":"s","value":1}
{"process":0,"type":"ok","f":"add","key":"s","value":1}
{"process":1,"type":"invoke","f":"add","key":"s","value":2}
{"process":1,"type":"info","f":"add","key":"s","value":2}
{"process":0,"type":"invoke","f":"read","key":"s"}
{"process":0,"type":"ok","f":"read","key":"s","value":[1,2]}
"#;

    #[test]
    fn a_read_after_the_add_holds_the_element() {
        let r = check(ADD_THEN_READ);
        assert!(r.valid, "{r:?}");
        assert_eq!((r.adds_ok, r.reads_ok, r.unconfirmed), (1, 1, 0));
    }

    #[test]
    fn an_acknowledged_element_missing_from_a_later_read_is_lost() {
        let text = ADD_THEN_READ.replace("[1,2]", "[2]");
        let r = check(&text);
        assert!(!r.valid);
        assert_eq!(r.lost, 1);
        assert!(r.violations[0].message.contains("element 1"), "{r:?}");
    }

    #[test]
    fn an_element_once_read_must_stay() {
        let text = format!(
            "{ADD_THEN_READ}{}",
            r#"{"process":0,"type":"invoke","f":"read","key":"s"}
{"process":0,"type":"ok","f":"read","key":"s","value":[1]}
"#
        );
        let r = check(&text);
        assert_eq!((r.lost, r.unexpected), (1, 0), "{r:?}");
        assert_eq!(r.violations[0].element, 2);
    }

    #[test]
    fn an_element_nobody_added_is_unexpected() {
        let text = ADD_THEN_READ.replace("[1,2]", "[1,2,9]");
        let r = check(&text);
        assert_eq!((r.lost, r.unexpected), (0, 1), "{r:?}");
    }

    #[test]
    fn a_concurrent_read_may_miss_an_add() {
        let text = r#"{"process":0,"type":"invoke","f":"add","key":"s","value":1}
{"process":1,"type":"invoke","f":"read","key":"s"}
{"process":0,"type":"ok","f":"add","key":"s","value":1}
{"process":1,"type":"ok","f":"read","key":"s","value":[]}
"#;
        let r = check(text);
        assert!(r.valid, "{r:?}");
        assert_eq!(r.unconfirmed, 1);
    }
}
