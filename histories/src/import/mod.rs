//! Readers for histories written by other tools, and format detection.

pub mod jepsen_edn;
pub mod jepsen_log;

use crate::edn::Edn;
use crate::error::HistoryError;
use crate::format::{History, read_jsonl};
use crate::value::Value;

/// The input formats `dengine check` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Our own JSON lines (`history.jsonl`).
    Jsonl,
    /// A Jepsen `history.edn`: a vector or list of op maps, or one map per
    /// line.
    JepsenEdn,
    /// Jepsen's `jepsen.log` op lines (tab separated).
    JepsenLog,
    /// The key-value histories of Porcupine's test data: one EDN map per line
    /// with `:key`; read like Jepsen EDN, checked with the key-value model.
    PorcupineKv,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "jsonl" => Format::Jsonl,
            "jepsen-edn" | "edn" => Format::JepsenEdn,
            "jepsen-log" | "log" => Format::JepsenLog,
            "porcupine-kv" => Format::PorcupineKv,
            _ => return None,
        })
    }

    /// Guesses the format from the file name, then from the first bytes.
    pub fn detect(file_name: &str, bytes: &[u8]) -> Option<Format> {
        let lower = file_name.to_ascii_lowercase();
        if lower.ends_with(".jsonl") || lower.ends_with(".json") {
            return Some(Format::Jsonl);
        }
        if lower.ends_with(".edn") {
            return Some(Format::JepsenEdn);
        }
        if lower.ends_with(".log") {
            return Some(Format::JepsenLog);
        }
        let head = &bytes[..bytes.len().min(64 * 1024)];
        let head = String::from_utf8_lossy(head);
        if head.contains("\t:invoke\t") || head.lines().any(is_spaced_log_line) {
            return Some(Format::JepsenLog);
        }
        let first = head.lines().map(str::trim_start).find(|l| !l.is_empty())?;
        if first.starts_with("{\"") {
            Some(Format::Jsonl)
        } else if first.starts_with(['{', '[', '(', ';']) {
            Some(Format::JepsenEdn)
        } else {
            None
        }
    }
}

/// A Jepsen log op line whose fields are separated by spaces: `jepsen.util`
/// names the logger, and an EDN map line never has it outside a string.
fn is_spaced_log_line(line: &str) -> bool {
    let t = line.trim_start();
    !t.starts_with(['{', '[', '(', ';'])
        && t.contains("jepsen.util")
        && [" :invoke ", " :ok ", " :fail ", " :info "]
            .iter()
            .any(|k| t.contains(k))
}

/// Reads `bytes` in the given format.
pub fn read(format: Format, bytes: &[u8]) -> Result<History, HistoryError> {
    match format {
        Format::Jsonl => read_jsonl(bytes),
        Format::JepsenEdn | Format::PorcupineKv => jepsen_edn::read(bytes),
        Format::JepsenLog => jepsen_log::read(bytes),
    }
}

/// Converts an EDN value to an event value. Keywords become strings (`:ok` →
/// `"ok"`); maps, sets and floats, which no built-in model reads, become their
/// text so nothing is lost from the timeline.
pub(crate) fn edn_to_value(v: &Edn) -> Value {
    match v {
        Edn::Nil => Value::Nil,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::Int(*i),
        Edn::Str(s) | Edn::Keyword(s) | Edn::Symbol(s) => Value::Str(s.clone()),
        Edn::Vector(items) | Edn::List(items) => {
            Value::List(items.iter().map(edn_to_value).collect())
        }
        other => Value::Str(edn_text(other)),
    }
}

/// EDN text of a value (for details and error fields).
pub(crate) fn edn_text(v: &Edn) -> String {
    fn join(items: &[Edn]) -> String {
        items.iter().map(edn_text).collect::<Vec<_>>().join(" ")
    }
    match v {
        Edn::Nil => "nil".into(),
        Edn::Bool(b) => b.to_string(),
        Edn::Int(i) => i.to_string(),
        Edn::Float(x) => x.to_string(),
        Edn::Str(s) => format!("{s:?}"),
        Edn::Char(c) => format!("\\{c}"),
        Edn::Keyword(k) => format!(":{k}"),
        Edn::Symbol(s) => s.clone(),
        Edn::Vector(items) => format!("[{}]", join(items)),
        Edn::List(items) => format!("({})", join(items)),
        Edn::Set(items) => format!("#{{{}}}", join(items)),
        Edn::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{} {}", edn_text(k), edn_text(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Edn::Tagged(t, v) => format!("#{t} {}", edn_text(v)),
    }
}

/// A name given as a keyword, string or symbol (`:read`, `"read"`, `read`).
pub(crate) fn edn_name(v: &Edn) -> Option<String> {
    match v {
        Edn::Keyword(s) | Edn::Str(s) | Edn::Symbol(s) => Some(s.clone()),
        Edn::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        assert_eq!(Format::detect("h.jsonl", b""), Some(Format::Jsonl));
        assert_eq!(
            Format::detect("x", b"\n{\"process\":1}"),
            Some(Format::Jsonl)
        );
        assert_eq!(
            Format::detect("x.txt", b"{:process 0, :type :invoke}"),
            Some(Format::JepsenEdn)
        );
        assert_eq!(
            Format::detect("x", b"INFO x - 3\t:invoke\t:read\tnil\n"),
            Some(Format::JepsenLog)
        );
        assert_eq!(
            Format::detect("x", b"INFO  jepsen.util - 3  :invoke  :read  nil\n"),
            Some(Format::JepsenLog)
        );
        assert_eq!(
            Format::detect("x", b"({:process 0, :type :invoke})"),
            Some(Format::JepsenEdn)
        );
        assert_eq!(Format::detect("x", b"hello"), None);
    }
}
