//! Jepsen log lines, as printed by `jepsen.util` while a test runs:
//!
//! ```text
//! INFO  jepsen.util - 3<TAB>:invoke<TAB>:cas<TAB>[1 4]
//! INFO  jepsen.util - 3<TAB>:fail<TAB>:cas<TAB>[1 4]
//! INFO  jepsen.util - :nemesis<TAB>:info<TAB>:start<TAB>"Cut off ..."
//! ```
//!
//! (`<TAB>` is a tab character.) Fields are tab separated: process (last word of the first field), type, f,
//! value, then an optional error. Lines of any other shape are ignored, since
//! a test log interleaves them with everything else the test prints.

use crate::edn::{Edn, Reader};
use crate::error::HistoryError;
use crate::format::{Event, EventType, History, utf8_lines};
use crate::import::{edn_name, edn_text, edn_to_value};
use crate::nemesis::NemesisEvent;

/// Reads the op lines of a Jepsen log.
pub fn read(bytes: &[u8]) -> Result<History, HistoryError> {
    let mut history = History::default();
    for (line, text) in utf8_lines(bytes)? {
        let fields: Vec<&str> = text.split('\t').collect();
        if fields.len() < 3 {
            continue;
        }
        let Some(mut kind) = fields[1]
            .trim()
            .strip_prefix(':')
            .and_then(EventType::parse)
        else {
            continue;
        };
        let Some(process) = fields[0].split_whitespace().last() else {
            continue;
        };
        let Some(f) = fields[2].trim().strip_prefix(':').map(str::to_owned) else {
            continue;
        };
        let value = match fields.get(3) {
            Some(v) => parse_field(v, line)?,
            None => Edn::Nil,
        };
        let error = match fields.get(4) {
            Some(e) => Some(parse_field(e, line)?),
            None => None,
        };
        // `:fail :read :timed-out` is Jepsen's way of saying the client gave
        // up waiting: the outcome is unknown, not a failure.
        let timed_out = |e: &Edn| matches!(e, Edn::Keyword(k) if k == "timed-out");
        if kind == EventType::Fail && (timed_out(&value) || error.as_ref().is_some_and(timed_out)) {
            kind = EventType::Info;
        }
        let Ok(process) = process.parse::<u64>() else {
            history.nemesis.push(NemesisEvent {
                start_ns: history.events.len() as u64,
                end_ns: None,
                kind: f,
                targets: Vec::new(),
                detail: (value != Edn::Nil).then(|| edn_text(&value)),
            });
            continue;
        };
        let event = Event {
            index: history.events.len() as u64,
            time_ns: None,
            process,
            kind,
            f,
            key: None,
            value: edn_to_value(&value),
            error: error.map(|e| edn_name(&e).unwrap_or_else(|| edn_text(&e))),
        };
        history.push(event, line);
    }
    Ok(history)
}

fn parse_field(text: &str, line: usize) -> Result<Edn, HistoryError> {
    let mut reader = Reader::new(text);
    let v = reader
        .next_value()
        .map_err(|e| HistoryError::new(line, format!("bad value {text:?}: {}", e.message)))?;
    Ok(v.unwrap_or(Edn::Nil))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn op_lines_and_noise() {
        let text = "2017-05-04 12:00:00,001 INFO  jepsen.core - Running test\n\
                    INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]\n\
                    INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                    INFO  jepsen.util - 3\t:fail\t:cas\t[1 4]\n\
                    INFO  jepsen.util - 4\t:invoke\t:read\tnil\n\
                    INFO  jepsen.util - 4\t:fail\t:read\t:timed-out\n";
        let h = read(text.as_bytes()).unwrap();
        assert_eq!(h.events.len(), 4);
        assert_eq!(h.events[0].process, 3);
        assert_eq!(
            h.events[0].value,
            Value::List(vec![Value::Int(1), Value::Int(4)])
        );
        assert_eq!(h.events[1].kind, EventType::Fail);
        assert_eq!(h.events[3].kind, EventType::Info);
        assert_eq!(h.lines, vec![2, 4, 5, 6]);
        assert_eq!(h.nemesis.len(), 1);
        assert_eq!(h.nemesis[0].kind, "start");
    }

    #[test]
    fn bad_value_names_the_line() {
        let err = read(b"x\nINFO  jepsen.util - 3\t:invoke\t:cas\t[1 4\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
