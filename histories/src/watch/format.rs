//! `watch.jsonl`: one record a line, tagged by `kind`.
//!
//! ```text
//! {"kind":"write","process":3,"type":"invoke","ops":[{"op":"put","key":"w/k1","value":"17"}],"time_ns":100}
//! {"kind":"write","process":3,"type":"ok","ops":[{"op":"put","key":"w/k1","value":"17"}],"revision":123,"time_ns":250}
//! {"kind":"watch","watcher":1,"prefix":"w/","start_revision":5,"prev_kv":true,"filters":[],"time_ns":400}
//! {"kind":"events","watcher":1,"revision":130,"events":[{"type":"put","key":"w/k1","value":"17","mod_revision":123,"prev_value":null}],"time_ns":500}
//! {"kind":"progress","watcher":1,"revision":140,"time_ns":600}
//! {"kind":"cancel","watcher":1,"reason":"compacted 50","time_ns":700}
//! {"kind":"end","watcher":1,"time_ns":800}
//! ```
//!
//! Records are in the order they happened; a record's line number is how a
//! violation points at it.

use std::io::{self, Write};

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::HistoryError;
use crate::format::utf8_lines;

/// One line of `watch.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WatchRecord {
    Write(WriteRecord),
    Watch(WatchOpen),
    Events(EventsRecord),
    Progress(ProgressRecord),
    Cancel(CancelRecord),
    End(EndRecord),
}

/// Jepsen's four types, for the writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteType {
    Invoke,
    /// Applied, at `revision`.
    Ok,
    /// Certainly not applied.
    Fail,
    /// Unknown.
    Info,
}

/// One op of a (multi-key) write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum WriteOp {
    Put { key: String, value: String },
    Delete { key: String },
}

impl WriteOp {
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key } => key,
        }
    }
}

/// A write's invocation or completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRecord {
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: WriteType,
    pub ops: Vec<WriteOp>,
    /// The header revision of an `ok` write: every op committed at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub time_ns: u64,
}

/// Which events a watch leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    NoPut,
    NoDelete,
}

/// Watcher `watcher` (re)opens its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchOpen {
    pub watcher: u64,
    pub prefix: String,
    /// 0 or less: from "now" (the start is then not known).
    pub start_revision: i64,
    #[serde(default)]
    pub prev_kv: bool,
    #[serde(default)]
    pub filters: Vec<Filter>,
    #[serde(default)]
    pub time_ns: u64,
}

/// Put or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Put,
    Delete,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Put => "put",
            EventType::Delete => "delete",
        }
    }
}

/// One event of a watch response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub key: String,
    /// Absent for a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub mod_revision: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Absent: prev_kv not requested; `Some(None)` (JSON null): no
    /// previous value.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub prev_value: Option<Option<String>>,
}

/// A field that is present, even as null, is `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// One watch response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsRecord {
    pub watcher: u64,
    /// The response's header revision.
    pub revision: i64,
    pub events: Vec<WatchEvent>,
    #[serde(default)]
    pub time_ns: u64,
}

/// A progress notification: every event up to `revision` was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressRecord {
    pub watcher: u64,
    pub revision: i64,
    #[serde(default)]
    pub time_ns: u64,
}

/// The server ended the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRecord {
    pub watcher: u64,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub time_ns: u64,
}

/// The client closed the stream at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndRecord {
    pub watcher: u64,
    #[serde(default)]
    pub time_ns: u64,
}

/// A record and its 1-based line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    pub line: usize,
    pub record: WatchRecord,
}

/// Appends records to a `watch.jsonl`, one line each.
pub struct WatchWriter<W: Write> {
    out: W,
}

impl<W: Write> WatchWriter<W> {
    pub fn new(out: W) -> Self {
        WatchWriter { out }
    }

    pub fn write(&mut self, record: &WatchRecord) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads `watch.jsonl` with each record's line number. Blank lines are
/// skipped; anything else that is not one record is an error naming the line.
pub fn read_watch_numbered(bytes: &[u8]) -> Result<Vec<Numbered>, HistoryError> {
    let mut records = Vec::new();
    for (line, text) in utf8_lines(bytes)? {
        if text.trim().is_empty() {
            continue;
        }
        let record: WatchRecord = serde_json::from_str(text)
            .map_err(|e| HistoryError::new(line, format!("bad watch record: {e}")))?;
        records.push(Numbered { line, record });
    }
    Ok(records)
}

/// Reads `watch.jsonl` (see [`read_watch_numbered`]).
pub fn read_watch_jsonl(bytes: &[u8]) -> Result<Vec<WatchRecord>, HistoryError> {
    Ok(read_watch_numbered(bytes)?
        .into_iter()
        .map(|n| n.record)
        .collect())
}

/// Numbers records as the lines of a file without blank lines.
pub fn numbered(records: &[WatchRecord]) -> Vec<Numbered> {
    records
        .iter()
        .enumerate()
        .map(|(i, record)| Numbered {
            line: i + 1,
            record: record.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_lines_read_and_write_back() {
        let text = br#"{"kind":"write","process":3,"type":"invoke","ops":[{"op":"put","key":"w/k1","value":"17"},{"op":"delete","key":"w/k2"}],"time_ns":100}
{"kind":"write","process":3,"type":"ok","ops":[{"op":"put","key":"w/k1","value":"17"},{"op":"delete","key":"w/k2"}],"revision":123,"time_ns":250}
{"kind":"write","process":4,"type":"info","ops":[],"error":"timeout","time_ns":300}
{"kind":"watch","watcher":1,"prefix":"w/","start_revision":5,"prev_kv":true,"filters":["noput","nodelete"],"time_ns":400}
{"kind":"events","watcher":1,"revision":130,"events":[{"type":"put","key":"w/k1","value":"17","mod_revision":123,"create_revision":120,"version":3,"prev_value":"12"},{"type":"delete","key":"w/k2","mod_revision":123,"prev_value":null}],"time_ns":500}

{"kind":"progress","watcher":1,"revision":140,"time_ns":600}
{"kind":"cancel","watcher":1,"reason":"compacted 50","time_ns":700}
{"kind":"end","watcher":1,"time_ns":800}
"#;
        let records = read_watch_numbered(text).unwrap();
        assert_eq!(records.len(), 8);
        assert_eq!(records[5].line, 7);
        let WatchRecord::Events(e) = &records[4].record else {
            panic!("not events: {:?}", records[4]);
        };
        assert_eq!(e.events[0].prev_value, Some(Some("12".into())));
        assert_eq!(e.events[1].prev_value, Some(None));
        let mut w = WatchWriter::new(Vec::new());
        for r in &records {
            w.write(&r.record).unwrap();
        }
        let again = read_watch_jsonl(&w.into_inner()).unwrap();
        let first: Vec<_> = records.into_iter().map(|n| n.record).collect();
        assert_eq!(again, first);
    }

    #[test]
    fn an_absent_prev_value_stays_absent() {
        let text = br#"{"kind":"events","watcher":1,"revision":2,"events":[{"type":"delete","key":"k","mod_revision":2}]}"#;
        let r = read_watch_jsonl(text).unwrap();
        let WatchRecord::Events(e) = &r[0] else {
            panic!()
        };
        assert_eq!(e.events[0].prev_value, None);
        let written = serde_json::to_string(&r[0]).unwrap();
        assert!(!written.contains("prev_value"), "{written}");
    }

    #[test]
    fn errors_name_the_line() {
        let text = b"{\"kind\":\"end\",\"watcher\":1}\n{\"kind\":\"nope\"}\n";
        assert_eq!(read_watch_jsonl(text).unwrap_err().line, 2);
        let text = b"{\"kind\":\"end\",\"watcher\":1}\n{\"kind\":\"end\",\"wat";
        assert_eq!(read_watch_jsonl(text).unwrap_err().line, 2);
    }
}
