//! Fault events (what the nemesis did and when), kept apart from client
//! events because the model never sees them; only the timeline draws them.
//!
//! On disk: `nemesis.jsonl` beside `history.jsonl`, one event per line:
//! `{"start_ns":10,"end_ns":90,"kind":"partition","targets":["n1","n2"]}`.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::error::HistoryError;
use crate::format::utf8_lines;

/// One fault window. `end_ns` is absent when the fault was never healed (or
/// the importer saw only one side of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisEvent {
    /// Start, in the same units as the history's x axis (`time_ns`, or the
    /// event position for histories without a clock).
    pub start_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ns: Option<u64>,
    /// `kill`, `pause`, `partition`, `start`, …
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Reads a `nemesis.jsonl` file.
pub fn read_nemesis_jsonl(bytes: &[u8]) -> Result<Vec<NemesisEvent>, HistoryError> {
    let mut out = Vec::new();
    for (line, text) in utf8_lines(bytes)? {
        if text.trim().is_empty() {
            continue;
        }
        let ev = serde_json::from_str(text)
            .map_err(|e| HistoryError::new(line, format!("bad fault event: {e}")))?;
        out.push(ev);
    }
    Ok(out)
}

/// Appends one fault event as a JSON line.
pub fn write_nemesis_event<W: Write>(out: &mut W, event: &NemesisEvent) -> io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ev = NemesisEvent {
            start_ns: 5,
            end_ns: Some(9),
            kind: "kill".into(),
            targets: vec!["n2".into()],
            detail: None,
        };
        let mut buf = Vec::new();
        write_nemesis_event(&mut buf, &ev).unwrap();
        assert_eq!(read_nemesis_jsonl(&buf).unwrap(), vec![ev]);
        assert_eq!(read_nemesis_jsonl(b"{\"start_ns\":").unwrap_err().line, 1);
    }
}
