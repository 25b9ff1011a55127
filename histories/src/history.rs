//! Pairs invocations with completions into operations, with Jepsen's
//! semantics: `fail` did not take effect; `info`, or no completion at all,
//! may or may not have taken effect and stays open to the end of the history.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::HistoryError;
use crate::format::{EventType, History};
use crate::value::Value;

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    /// Unknown outcome: an `info` completion or none at all.
    Info,
}

/// One invocation with its completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    /// Position among the history's operations, in invocation order.
    pub id: usize,
    pub process: u64,
    pub f: String,
    pub key: Option<String>,
    /// Dense number of `key` (0 for "no key"), so models can index by it.
    #[serde(skip)]
    pub key_id: u32,
    /// The invocation's value (the argument).
    pub input: Value,
    /// The completion's value (the result); `Nil` without a completion.
    pub output: Value,
    pub status: Status,
    pub error: Option<String>,
    /// Position of the invocation among the history's events: the real-time
    /// order the checker uses.
    pub call: usize,
    /// Position of the completion; `None` if there was none. For the checker
    /// an `info` op never returns, whatever this says.
    pub ret: Option<usize>,
    pub call_time_ns: Option<u64>,
    pub ret_time_ns: Option<u64>,
    pub call_line: usize,
    pub ret_line: Option<usize>,
}

impl Operation {
    /// Where the checker considers the op finished: never, unless it is `ok`.
    pub fn effective_return(&self) -> Option<usize> {
        if self.status == Status::Ok {
            self.ret
        } else {
            None
        }
    }
}

/// Pairs the events of `history`. Errors (naming the line): a completion with
/// no pending invocation, an invocation while the same process has one
/// pending, a completion whose `f` differs from its invocation's.
pub fn pair(history: &History) -> Result<Vec<Operation>, HistoryError> {
    let mut ops: Vec<Operation> = Vec::new();
    let mut pending: HashMap<u64, usize> = HashMap::new();
    let mut keys: HashMap<String, u32> = HashMap::new();
    for (pos, (event, &line)) in history.events.iter().zip(&history.lines).enumerate() {
        match event.kind {
            EventType::Invoke => {
                if let Some(&open) = pending.get(&event.process) {
                    return Err(HistoryError::new(
                        line,
                        format!(
                            "process {} invokes {} while its {} from line {} has not completed",
                            event.process, event.f, ops[open].f, ops[open].call_line
                        ),
                    ));
                }
                let key_id = match &event.key {
                    None => 0,
                    Some(k) => {
                        let next = keys.len() as u32 + 1;
                        *keys.entry(k.clone()).or_insert(next)
                    }
                };
                pending.insert(event.process, ops.len());
                ops.push(Operation {
                    id: ops.len(),
                    process: event.process,
                    f: event.f.clone(),
                    key: event.key.clone(),
                    key_id,
                    input: event.value.clone(),
                    output: Value::Nil,
                    status: Status::Info,
                    error: None,
                    call: pos,
                    ret: None,
                    call_time_ns: event.time_ns,
                    ret_time_ns: None,
                    call_line: line,
                    ret_line: None,
                });
            }
            kind => {
                let Some(open) = pending.remove(&event.process) else {
                    return Err(HistoryError::new(
                        line,
                        format!(
                            "{} of {} by process {} without an invocation",
                            kind.as_str(),
                            event.f,
                            event.process
                        ),
                    ));
                };
                let op = &mut ops[open];
                if op.f != event.f {
                    return Err(HistoryError::new(
                        line,
                        format!(
                            "completion of {} does not match the invocation of {} on line {}",
                            event.f, op.f, op.call_line
                        ),
                    ));
                }
                op.status = match kind {
                    EventType::Ok => Status::Ok,
                    EventType::Fail => Status::Fail,
                    _ => Status::Info,
                };
                op.output = event.value.clone();
                op.error = event.error.clone();
                op.ret = Some(pos);
                op.ret_time_ns = event.time_ns;
                op.ret_line = Some(line);
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Event;

    fn ev(process: u64, kind: EventType, f: &str) -> Event {
        Event::new(process, kind, f, None, Value::Nil)
    }

    fn history(events: Vec<Event>) -> History {
        let mut h = History::default();
        for (i, e) in events.into_iter().enumerate() {
            h.push(e, i + 1);
        }
        h
    }

    #[test]
    fn pairs_and_leaves_missing_completions_open() {
        let h = history(vec![
            ev(1, EventType::Invoke, "write"),
            ev(2, EventType::Invoke, "read"),
            ev(1, EventType::Ok, "write"),
            ev(3, EventType::Invoke, "read"),
            ev(2, EventType::Info, "read"),
        ]);
        let ops = pair(&h).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!((ops[0].status, ops[0].ret), (Status::Ok, Some(2)));
        assert_eq!(ops[1].status, Status::Info);
        assert_eq!(ops[1].effective_return(), None);
        assert_eq!((ops[2].status, ops[2].ret), (Status::Info, None));
    }

    #[test]
    fn completion_without_invocation_is_refused() {
        let h = history(vec![
            ev(1, EventType::Invoke, "write"),
            ev(2, EventType::Ok, "write"),
        ]);
        assert_eq!(pair(&h).unwrap_err().line, 2);
        let h = history(vec![
            ev(1, EventType::Invoke, "write"),
            ev(1, EventType::Invoke, "read"),
        ]);
        assert_eq!(pair(&h).unwrap_err().line, 2);
        let h = history(vec![
            ev(1, EventType::Invoke, "write"),
            ev(1, EventType::Ok, "read"),
        ]);
        assert_eq!(pair(&h).unwrap_err().line, 2);
    }
}
