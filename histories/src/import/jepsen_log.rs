//! Jepsen log lines, as printed by `jepsen.util` while a test runs:
//!
//! ```text
//! INFO  jepsen.util - 3<TAB>:invoke<TAB>:cas<TAB>[1 4]
//! INFO  jepsen.util - 3<TAB>:fail<TAB>:cas<TAB>[1 4]
//! INFO  jepsen.util - :nemesis<TAB>:info<TAB>:start<TAB>"Cut off ..."
//! ```
//!
//! (`<TAB>` is a tab character.) Fields are tab separated: process (last word
//! of the first field), type, f, value, then an optional error. Logs that
//! went through a formatter which turned tabs into runs of spaces are read
//! too. Lines of any other shape are ignored, since a test log interleaves
//! them with everything else the test prints.

use crate::edn::{Edn, Reader};
use crate::error::HistoryError;
use crate::format::{Event, EventType, History, utf8_lines};
use crate::import::{edn_name, edn_text, edn_to_value};
use crate::nemesis::NemesisEvent;

/// Reads the op lines of a Jepsen log.
pub fn read(bytes: &[u8]) -> Result<History, HistoryError> {
    let mut history = History::default();
    for (line, text) in utf8_lines(bytes)? {
        let Some(mut op) = op_fields(text, line)? else {
            continue;
        };
        // `:fail :read :timed-out` is Jepsen's way of saying the client gave
        // up waiting: the outcome is unknown, not a failure.
        let timed_out = |e: &Edn| matches!(e, Edn::Keyword(k) if k == "timed-out");
        if op.kind == EventType::Fail
            && (timed_out(&op.value) || op.error.as_ref().is_some_and(timed_out))
        {
            op.kind = EventType::Info;
        }
        let Ok(process) = op.process.parse::<u64>() else {
            history.nemesis.push(NemesisEvent {
                start_ns: history.events.len() as u64,
                end_ns: None,
                kind: op.f,
                targets: Vec::new(),
                detail: (op.value != Edn::Nil).then(|| edn_text(&op.value)),
            });
            continue;
        };
        let event = Event {
            index: history.events.len() as u64,
            time_ns: None,
            process,
            kind: op.kind,
            f: op.f,
            key: None,
            value: edn_to_value(&op.value),
            error: op
                .error
                .map(|e| edn_name(&e).unwrap_or_else(|| edn_text(&e))),
        };
        history.push(event, line);
    }
    Ok(history)
}

/// The fields of one op line.
struct OpFields<'a> {
    process: &'a str,
    kind: EventType,
    f: String,
    value: Edn,
    error: Option<Edn>,
}

/// The op on `text`, if it is an op line: tab separated, or (as some
/// loggers rewrite them) separated by runs of spaces.
fn op_fields(text: &str, line: usize) -> Result<Option<OpFields<'_>>, HistoryError> {
    if text.contains('\t') {
        return tab_fields(text, line);
    }
    space_fields(text, line)
}

fn tab_fields(text: &str, line: usize) -> Result<Option<OpFields<'_>>, HistoryError> {
    let fields: Vec<&str> = text.split('\t').collect();
    if fields.len() < 3 {
        return Ok(None);
    }
    let kind = fields[1]
        .trim()
        .strip_prefix(':')
        .and_then(EventType::parse);
    let process = fields[0].split_whitespace().last();
    let f = fields[2].trim().strip_prefix(':');
    let (Some(kind), Some(process), Some(f)) = (kind, process, f) else {
        return Ok(None);
    };
    let value = match fields.get(3) {
        Some(v) => parse_field(v, line)?,
        None => Edn::Nil,
    };
    let error = match fields.get(4) {
        Some(e) => Some(parse_field(e, line)?),
        None => None,
    };
    Ok(Some(OpFields {
        process,
        kind,
        f: f.to_owned(),
        value,
        error,
    }))
}

/// `... - 3  :invoke  :cas  [1 4]`: the op starts at the first word that is
/// a type keyword with a process before it and a keyword `f` after it; the
/// rest of the line is the value and an optional error, read as EDN (so a
/// value with spaces inside, like `[1 4]`, stays one field).
fn space_fields(text: &str, line: usize) -> Result<Option<OpFields<'_>>, HistoryError> {
    let words: Vec<(usize, &str)> = text
        .split(' ')
        .scan(0, |at, w| {
            let start = *at;
            *at += w.len() + 1;
            Some((start, w))
        })
        .filter(|(_, w)| !w.is_empty())
        .collect();
    for i in 1..words.len().saturating_sub(1) {
        let kind = words[i].1.strip_prefix(':').and_then(EventType::parse);
        let (Some(kind), Some(f)) = (kind, words[i + 1].1.strip_prefix(':')) else {
            continue;
        };
        let process = words[i - 1].1;
        if process.parse::<u64>().is_err() && !process.starts_with(':') {
            continue;
        }
        let rest = &text[words[i + 1].0 + words[i + 1].1.len()..];
        let mut reader = Reader::new(rest);
        let bad =
            |e: HistoryError| HistoryError::new(line, format!("bad value {rest:?}: {}", e.message));
        let value = reader.next_value().map_err(bad)?.unwrap_or(Edn::Nil);
        let error = reader.next_value().map_err(bad)?;
        return Ok(Some(OpFields {
            process: process.trim_start_matches(':'),
            kind,
            f: f.to_owned(),
            value,
            error,
        }));
    }
    Ok(None)
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
