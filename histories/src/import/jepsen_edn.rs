//! Jepsen EDN histories: one vector `[...]` or list `(...)` of op maps, or
//! one op map per line (as `history.edn` and Porcupine's test data are
//! written); `;` comments and `#_` discards anywhere. A history of nemesis
//! ops only is valid: it has fault events and no client events.
//!
//! Keys read: `:process :type :f :value` and optionally `:key :index :time
//! :error`; other keys are ignored. An op whose `:process` is not an integer
//! (Jepsen's `:nemesis`) is a fault event: it goes to the fault lane and the
//! model never sees it.

use crate::edn::{Edn, Reader};
use crate::error::HistoryError;
use crate::format::{Event, EventType, History};
use crate::import::{edn_name, edn_text, edn_to_value};
use crate::nemesis::NemesisEvent;

/// Reads a Jepsen EDN history.
pub fn read(bytes: &[u8]) -> Result<History, HistoryError> {
    // Check UTF-8 line by line first so the error names the line.
    crate::format::utf8_lines(bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|e| HistoryError::new(0, e.to_string()))?;
    let mut reader = Reader::new(text);
    let mut builder = Builder::default();
    if let Some(open @ (b'[' | b'(')) = reader.peek() {
        let (close, what) = if open == b'[' {
            (b']', "vector")
        } else {
            (b')', "list")
        };
        let open_line = reader.line();
        reader.eat(open);
        loop {
            match reader.peek() {
                None => {
                    return Err(HistoryError::new(
                        reader.line(),
                        format!(
                            "unexpected end of input: the {what} opened on line {open_line} is not closed (truncated?)"
                        ),
                    ));
                }
                Some(b) if b == close => {
                    reader.eat(close);
                    break;
                }
                Some(_) => {
                    reader.skip_ignored()?;
                    if reader.peek() == Some(close) {
                        continue;
                    }
                    let line = reader.line();
                    if let Some(op) = reader.next_value()? {
                        builder.op(&op, line)?;
                    }
                }
            }
        }
        if reader.next_value()?.is_some() {
            return Err(HistoryError::new(
                reader.line(),
                format!("unexpected data after the history {what}"),
            ));
        }
    } else {
        loop {
            reader.skip_ignored()?;
            let line = reader.line();
            match reader.next_value()? {
                Some(op) => builder.op(&op, line)?,
                None => break,
            }
        }
    }
    Ok(builder.finish())
}

/// Turns op maps into events and fault events.
#[derive(Default)]
struct Builder {
    history: History,
    /// A nemesis op seen once (its invocation), waiting for its completion.
    pending_fault: Option<NemesisEvent>,
}

impl Builder {
    fn op(&mut self, op: &Edn, line: usize) -> Result<(), HistoryError> {
        if !matches!(op, Edn::Map(_)) {
            return Err(HistoryError::new(
                line,
                format!("expected an op map, found {}", edn_text(op)),
            ));
        }
        let time_ns = match op.get("time") {
            Some(Edn::Int(t)) if *t >= 0 => Some(*t as u64),
            _ => None,
        };
        let process = op
            .get("process")
            .ok_or_else(|| HistoryError::new(line, "op without :process"))?;
        let Edn::Int(process) = *process else {
            self.fault(op, time_ns);
            return Ok(());
        };
        if process < 0 {
            return Err(HistoryError::new(line, "negative :process"));
        }
        let kind = match op.get("type") {
            Some(t) => edn_name(t)
                .and_then(|n| EventType::parse(&n))
                .ok_or_else(|| HistoryError::new(line, format!("unknown :type {}", edn_text(t))))?,
            None => return Err(HistoryError::new(line, "op without :type")),
        };
        let f = match op.get("f") {
            Some(f) => edn_name(f)
                .ok_or_else(|| HistoryError::new(line, format!("bad :f {}", edn_text(f))))?,
            None => return Err(HistoryError::new(line, "op without :f")),
        };
        let key = match op.get("key") {
            None | Some(Edn::Nil) => None,
            Some(k) => Some(edn_name(k).unwrap_or_else(|| edn_text(k))),
        };
        let index = match op.get("index") {
            Some(Edn::Int(i)) if *i >= 0 => *i as u64,
            _ => self.history.events.len() as u64,
        };
        let event = Event {
            index,
            time_ns,
            process: process as u64,
            kind,
            f,
            key,
            value: op.get("value").map(edn_to_value).unwrap_or_default(),
            error: op
                .get("error")
                .map(|e| edn_name(e).unwrap_or_else(|| edn_text(e))),
        };
        self.history.push(event, line);
        Ok(())
    }

    /// Jepsen logs a nemesis op twice (when it starts, and with its result);
    /// the pair becomes one bar in the fault lane.
    fn fault(&mut self, op: &Edn, time_ns: Option<u64>) {
        let at = time_ns.unwrap_or(self.history.events.len() as u64);
        let kind = op
            .get("f")
            .and_then(edn_name)
            .unwrap_or_else(|| "fault".into());
        let value = op.get("value").filter(|v| **v != Edn::Nil);
        let targets = match value {
            Some(Edn::Vector(items) | Edn::List(items) | Edn::Set(items)) => items
                .iter()
                .map(|v| edn_name(v).unwrap_or_else(|| edn_text(v)))
                .collect(),
            _ => Vec::new(),
        };
        let detail = value.map(edn_text);
        if let Some(mut open) = self.pending_fault.take() {
            if open.kind == kind {
                open.end_ns = Some(at);
                if !targets.is_empty() {
                    open.targets = targets;
                }
                open.detail = detail.or(open.detail);
                self.history.nemesis.push(open);
                return;
            }
            self.history.nemesis.push(open);
        }
        self.pending_fault = Some(NemesisEvent {
            start_ns: at,
            end_ns: None,
            kind,
            targets,
            detail,
        });
    }

    fn finish(mut self) -> History {
        if let Some(open) = self.pending_fault.take() {
            self.history.nemesis.push(open);
        }
        self.history
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn vector_of_maps_with_nemesis_and_comments() {
        let text = r#"; a Jepsen history
[{:type :invoke, :f :cas, :value [1 4], :process 3, :time 10, :index 0}
 {:type :info, :f :start, :value nil, :process :nemesis, :time 11}
 {:type :info, :f :start, :value [:isolated "n1"], :process :nemesis, :time 12}
 {:type :ok, :f :cas, :value [1 4], :process 3, :time 20, :index 1, :extra "ignored"}
 {:type :invoke, :f :read, :value nil, :process 4}
]"#;
        let h = read(text.as_bytes()).unwrap();
        assert_eq!(h.events.len(), 3);
        assert_eq!(h.lines, vec![2, 5, 6]);
        assert_eq!(
            h.events[0].value,
            Value::List(vec![Value::Int(1), Value::Int(4)])
        );
        assert_eq!(h.events[1].kind, EventType::Ok);
        assert_eq!(h.events[1].time_ns, Some(20));
        assert_eq!(h.nemesis.len(), 1);
        assert_eq!(h.nemesis[0].kind, "start");
        assert_eq!((h.nemesis[0].start_ns, h.nemesis[0].end_ns), (11, Some(12)));
        assert_eq!(
            h.nemesis[0].targets,
            vec!["isolated".to_string(), "n1".to_string()]
        );
    }

    #[test]
    fn one_map_per_line_with_keys() {
        let text = "{:process 0, :type :invoke, :f :get, :key \"3\", :value nil}\n\
                    {:process 0, :type :ok, :f :get, :key \"3\", :value \"x 1 y\"}\n";
        let h = read(text.as_bytes()).unwrap();
        assert_eq!(h.events[1].key.as_deref(), Some("3"));
        assert_eq!(h.events[1].value, Value::Str("x 1 y".into()));
        assert_eq!(h.lines, vec![1, 2]);
    }

    #[test]
    fn bad_input_names_the_line() {
        let err =
            read(b"[{:process 1, :type :invoke, :f :read}\n {:process 1, :type :ok").unwrap_err();
        assert_eq!(err.line, 2);
        let err =
            read(b"{:process 1, :type :invoke, :f :read}\n{:process 1, :type :done, :f :read}")
                .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains(":done"));
        let err = read(b"[{:process 1, :type :invoke, :f :read}").unwrap_err();
        assert!(err.message.contains("not closed"));
    }
}
