//! The history format: JSON lines, one event per line.
//!
//! ```text
//! {"index":0,"time_ns":1200,"process":3,"type":"invoke","f":"put","key":"k1","value":"a"}
//! {"index":1,"time_ns":2900,"process":3,"type":"ok","f":"put","key":"k1","value":"a"}
//! ```
//!
//! A transaction (for [`crate::txn`]) is `"f":"txn"` with a list of
//! micro-ops `[f, key, value]` as its value, written as Elle writes them in
//! EDN (`append`, `r`, `w`; a read's value is `null` in the invocation):
//!
//! ```text
//! {"index":2,"process":0,"type":"invoke","f":"txn","value":[["append","x",1],["r","y",null]]}
//! {"index":3,"process":0,"type":"ok","f":"txn","value":[["append","x",1],["r","y",[1,2]]]}
//! ```
//!
//! Events are checked in file order: the writer appends them in the order they
//! happen, so line order is real-time order even if two clocks disagree.
//! `time_ns` is kept for display only.

use std::io::{self, Write};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::HistoryError;
use crate::nemesis::NemesisEvent;
use crate::value::Value;

/// What an event says about its operation (Jepsen's four types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client is about to send the request.
    Invoke,
    /// The operation took effect; `value` is its result.
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// The outcome is unknown (timeout, lost connection).
    Info,
}

impl EventType {
    pub fn parse(name: &str) -> Option<EventType> {
        Some(match name {
            "invoke" => EventType::Invoke,
            "ok" => EventType::Ok,
            "fail" => EventType::Fail,
            "info" => EventType::Info,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history, starting at 0.
    #[serde(default)]
    pub index: u64,
    /// Nanoseconds since the start of the run; absent in imported histories
    /// that have no clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ns: Option<u64>,
    /// The client (logical thread) that issued the operation.
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The operation's name: `read`, `write`, `cas`, `get`, `put`, …
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    pub fn new(process: u64, kind: EventType, f: &str, key: Option<&str>, value: Value) -> Self {
        Event {
            index: 0,
            time_ns: None,
            process,
            kind,
            f: f.to_owned(),
            key: key.map(str::to_owned),
            value,
            error: None,
        }
    }
}

/// A parsed history: client events (with their source lines) and fault events.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// `lines[i]` is the 1-based source line of `events[i]`.
    pub lines: Vec<usize>,
    pub nemesis: Vec<NemesisEvent>,
}

impl History {
    pub fn push(&mut self, event: Event, line: usize) {
        self.events.push(event);
        self.lines.push(line);
    }
}

/// Appends events to a JSON-lines history.
///
/// It stamps `index` (0, 1, 2, …) and `time_ns` (monotonic nanoseconds since
/// the writer was created) so callers only say what happened. Share it between
/// clients behind a `Mutex`: the order of calls is the order in the file, which
/// is the order the checker trusts.
///
/// ```
/// use d_engine_histories::{HistoryWriter, Value};
/// let mut w = HistoryWriter::new(Vec::new());
/// w.invoke(1, "put", Some("k"), Value::from("a")).unwrap();
/// w.ok(1, "put", Some("k"), Value::from("a")).unwrap();
/// w.invoke(2, "get", Some("k"), Value::Nil).unwrap();
/// w.info(2, "get", Some("k"), Value::Nil, Some("timeout")).unwrap();
/// let text = String::from_utf8(w.into_inner()).unwrap();
/// assert_eq!(text.lines().count(), 4);
/// ```
pub struct HistoryWriter<W: Write> {
    out: W,
    next_index: u64,
    start: Instant,
}

impl<W: Write> HistoryWriter<W> {
    pub fn new(out: W) -> Self {
        HistoryWriter {
            out,
            next_index: 0,
            start: Instant::now(),
        }
    }

    /// Writes `event` as given, except `index`, which the writer assigns, and
    /// `time_ns`, which it fills in when absent.
    pub fn write_event(&mut self, mut event: Event) -> io::Result<()> {
        event.index = self.next_index;
        if event.time_ns.is_none() {
            event.time_ns = Some(self.start.elapsed().as_nanos() as u64);
        }
        self.next_index += 1;
        serde_json::to_writer(&mut self.out, &event)?;
        self.out.write_all(b"\n")
    }

    pub fn invoke(
        &mut self,
        process: u64,
        f: &str,
        key: Option<&str>,
        value: Value,
    ) -> io::Result<()> {
        self.write_event(Event::new(process, EventType::Invoke, f, key, value))
    }

    /// The operation took effect and returned `value`.
    pub fn ok(&mut self, process: u64, f: &str, key: Option<&str>, value: Value) -> io::Result<()> {
        self.write_event(Event::new(process, EventType::Ok, f, key, value))
    }

    /// The operation certainly did not take effect.
    pub fn fail(
        &mut self,
        process: u64,
        f: &str,
        key: Option<&str>,
        error: Option<&str>,
    ) -> io::Result<()> {
        let mut e = Event::new(process, EventType::Fail, f, key, Value::Nil);
        e.error = error.map(str::to_owned);
        self.write_event(e)
    }

    /// The outcome is unknown; the process must not be used again.
    pub fn info(
        &mut self,
        process: u64,
        f: &str,
        key: Option<&str>,
        value: Value,
        error: Option<&str>,
    ) -> io::Result<()> {
        let mut e = Event::new(process, EventType::Info, f, key, value);
        e.error = error.map(str::to_owned);
        self.write_event(e)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Splits `bytes` into lines, refusing non-UTF-8 with the line number.
pub(crate) fn utf8_lines(bytes: &[u8]) -> Result<Vec<(usize, &str)>, HistoryError> {
    let mut lines = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw).map_err(|e| {
            HistoryError::new(i + 1, format!("not UTF-8 (byte {})", e.valid_up_to() + 1))
        })?;
        lines.push((i + 1, text));
    }
    Ok(lines)
}

/// Reads a JSON-lines history. Blank lines are skipped; anything else that is
/// not one complete event (a truncated last line, an unknown `type`) is an
/// error naming the line.
pub fn read_jsonl(bytes: &[u8]) -> Result<History, HistoryError> {
    let mut history = History::default();
    for (line, text) in utf8_lines(bytes)? {
        if text.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(text)
            .map_err(|e| HistoryError::new(line, format!("bad event: {e}")))?;
        history.push(event, line);
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_output_reads_back() {
        let mut w = HistoryWriter::new(Vec::new());
        w.invoke(1, "cas", None, Value::List(vec![1.into(), 2.into()]))
            .unwrap();
        w.fail(1, "cas", None, Some("mismatch")).unwrap();
        let h = read_jsonl(&w.into_inner()).unwrap();
        assert_eq!(h.events.len(), 2);
        assert_eq!(h.events[1].index, 1);
        assert_eq!(h.events[1].kind, EventType::Fail);
        assert_eq!(
            h.events[0].value,
            Value::List(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(h.lines, vec![1, 2]);
    }

    #[test]
    fn truncated_line_is_named() {
        let text = b"{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":1,\"ty";
        let err = read_jsonl(text).unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn unknown_type_and_non_utf8_are_refused() {
        let err = read_jsonl(b"{\"process\":1,\"type\":\"maybe\",\"f\":\"read\"}\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = read_jsonl(b"\n\n{\"process\":1,\xff}").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("UTF-8"));
    }
}
