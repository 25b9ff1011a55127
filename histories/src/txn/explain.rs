//! Sentences: why an edge of a cycle exists, and what a cycle means.

use crate::txn::anomaly::{AnomalyKind, CycleStep};
use crate::txn::graph::EdgeKind;
use crate::txn::history::TxnHistory;

/// Reads longer than this are shortened in sentences.
const LIST_SHOWN_MAX: usize = 8;

/// Justifies data edges (ww, wr, rw) from what the inference learned.
pub trait Explain {
    /// The key and values that prove `from -> to` of `kind`, if it holds.
    fn why(&self, h: &TxnHistory, from: usize, to: usize, kind: EdgeKind) -> Option<String>;
}

/// `[1 2 3]`, or `[1 2 … 9 10] (12 values)` for a long list.
pub fn list_text(list: &[i64]) -> String {
    let join = |xs: &[i64]| xs.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    if list.len() <= LIST_SHOWN_MAX {
        format!("[{}]", join(list))
    } else {
        format!(
            "[{} … {}] ({} values)",
            join(&list[..3]),
            join(&list[list.len() - 3..]),
            list.len()
        )
    }
}

/// Why `from -> to` holds as `kind`.
pub fn edge_reason(
    h: &TxnHistory,
    data: &dyn Explain,
    from: usize,
    to: usize,
    kind: EdgeKind,
) -> String {
    match kind {
        EdgeKind::Process => format!(
            "{} and {} ran one after the other on process {}",
            h.name(from),
            h.name(to),
            h.txns[from].process
        ),
        EdgeKind::Realtime => format!(
            "{} completed (line {}) before {} was invoked (line {})",
            h.name(from),
            h.txns[from].ret_line.unwrap_or(0),
            h.name(to),
            h.txns[to].call_line
        ),
        _ => data
            .why(h, from, to, kind)
            .unwrap_or_else(|| format!("{} -> {} ({})", h.name(from), h.name(to), kind.as_str())),
    }
}

/// One sentence for a whole cycle.
pub fn cycle_sentence(kind: AnomalyKind, steps: &[CycleStep]) -> String {
    let meaning = match kind {
        AnomalyKind::G0 | AnomalyKind::G0Process | AnomalyKind::G0Realtime => {
            "each transaction's write is ordered after the next one's (write cycle)"
        }
        AnomalyKind::G1c | AnomalyKind::G1cProcess | AnomalyKind::G1cRealtime => {
            "each transaction depends on the next one's writes (circular information flow)"
        }
        AnomalyKind::GSingle | AnomalyKind::GSingleProcess | AnomalyKind::GSingleRealtime => {
            "one transaction missed a write that, through the other dependencies, happened before it (read skew or lost update)"
        }
        _ => "two or more transactions each missed another's write (write skew)",
    };
    let names: Vec<String> = steps.iter().map(|s| format!("T{}", s.from)).collect();
    let edges: Vec<String> = steps
        .iter()
        .map(|s| format!("{} ({})", s.kind.as_str(), s.why))
        .collect();
    format!(
        "{}: {} -> T{} form a cycle, so no order of them explains what they saw: {meaning}. Edges: {}",
        kind.as_str(),
        names.join(" -> "),
        steps.first().map_or(0, |s| s.from),
        edges.join("; ")
    )
}
