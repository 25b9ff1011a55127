//! The transactional checker, after Elle (Kingsbury & Alvaro, 2020):
//! infer version orders from what reads returned, build a dependency graph
//! of transactions, find its cycles, classify them as Adya's anomalies, and
//! say which consistency models the anomalies rule out.
//!
//! ```text
//! [Operation] ──decode──▶ TxnHistory ──append / register──▶ ww, wr, rw edges + bad reads
//!                                     ──order──────────────▶ process, real-time edges
//!            Graph ──scc──▶ components ──cycle (BFS per class)──▶ anomalies ──▶ verdict per model
//! ```
//!
//! The checker claims only what the reads prove: an edge it cannot justify
//! is left out, so a cycle is always a real anomaly, and running out of time
//! or memory yields Unknown for every model not already ruled out.
//!
//! ```
//! use d_engine_histories::txn::{Consistency, ModelVerdict, TxnOptions, Workload, check_ops};
//! use d_engine_histories::{import, pair};
//! // Write skew: each transaction read the key the other one wrote, as empty.
//! let text = br#"
//! {:process 0, :type :invoke, :f :txn, :value [[:r 1 nil] [:append 2 1]]}
//! {:process 1, :type :invoke, :f :txn, :value [[:r 2 nil] [:append 1 1]]}
//! {:process 0, :type :ok, :f :txn, :value [[:r 1 nil] [:append 2 1]]}
//! {:process 1, :type :ok, :f :txn, :value [[:r 2 nil] [:append 1 1]]}
//! {:process 0, :type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]]}
//! {:process 0, :type :ok, :f :txn, :value [[:r 1 [1]] [:r 2 [1]]]}"#;
//! let ops = pair(&import::read(import::Format::JepsenEdn, text).unwrap()).unwrap();
//! let (_, result) = check_ops(&ops, Some(Workload::ListAppend), &TxnOptions::default()).unwrap();
//! assert_eq!(result.verdict(Consistency::SnapshotIsolation), ModelVerdict::Valid);
//! assert_eq!(result.verdict(Consistency::Serializable), ModelVerdict::Invalid);
//! ```

pub mod anomaly;
pub mod append;
pub mod budget;
pub mod cycle;
pub mod decode;
pub mod explain;
pub mod graph;
pub mod history;
pub mod html;
pub mod internal;
pub mod order;
pub mod register;
pub mod report;
pub mod scc;
pub mod svg;
pub mod synth;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use anomaly::{Anomaly, AnomalyKind, Consistency, CycleStep};
pub use history::{Mop, Seen, Txn, TxnHistory, TxnMeta, Workload};
pub use report::TxnReport;

use crate::checker::{CancelToken, StopReason};
use crate::error::HistoryError;
use crate::history::Operation;
use anomaly::Findings;
use budget::Budget;
use explain::Explain;
use graph::{EdgeList, Graph};

/// Knobs of one transactional check.
#[derive(Debug, Clone)]
pub struct TxnOptions {
    /// Give up (Unknown for models not yet ruled out) after this long.
    pub timeout: Option<Duration>,
    pub cancel: Option<CancelToken>,
    /// Bound on the history, indexes and graph together, estimated.
    pub memory_limit_bytes: usize,
    /// Add real-time edges (needed for strict serializability only).
    pub realtime: bool,
}

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            timeout: None,
            cancel: None,
            memory_limit_bytes: 8 << 30,
            realtime: true,
        }
    }
}

/// Whether a history satisfies one consistency model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelVerdict {
    Valid,
    Invalid,
    /// Not decided (deadline, cancel, memory bound) and nothing found so
    /// far that rules the model out.
    Unknown,
}

/// What a transactional check found.
#[derive(Debug, Clone, Serialize)]
pub struct TxnResult {
    pub workload: Workload,
    pub txns: usize,
    pub edges: usize,
    /// Examples (the first few of each class), explained.
    pub anomalies: Vec<Anomaly>,
    /// How many of each class were found.
    pub counts: BTreeMap<AnomalyKind, usize>,
    /// Why the check stopped early, if it did.
    pub stopped: Option<StopReason>,
    #[serde(serialize_with = "ser_ms")]
    pub elapsed: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

impl TxnResult {
    /// The classes found that `model` does not allow.
    pub fn ruling_out(&self, model: Consistency) -> Vec<AnomalyKind> {
        self.counts
            .keys()
            .copied()
            .filter(|&k| model.rules_out(k))
            .collect()
    }

    pub fn verdict(&self, model: Consistency) -> ModelVerdict {
        if !self.ruling_out(model).is_empty() {
            ModelVerdict::Invalid
        } else if self.stopped.is_some() {
            ModelVerdict::Unknown
        } else {
            ModelVerdict::Valid
        }
    }
}

/// Decodes `ops` (from [`crate::pair`]) and checks them.
pub fn check_ops(
    ops: &[Operation],
    workload: Option<Workload>,
    options: &TxnOptions,
) -> Result<(TxnHistory, TxnResult), HistoryError> {
    let (workload, history) = decode::decode(ops, workload)?;
    let result = check(workload, &history, options)?;
    Ok((history, result))
}

/// Checks a transactional history. Errors only on input the checker cannot
/// interpret (a value appended or written twice to a key).
pub fn check(
    workload: Workload,
    h: &TxnHistory,
    options: &TxnOptions,
) -> Result<TxnResult, HistoryError> {
    let start = Instant::now();
    let mut budget = Budget::new(options.timeout.map(|t| start + t), options.cancel.clone());
    let mut found = Findings::default();
    let mut edges = EdgeList::default();
    let history_bytes = estimated_bytes(h, 0);
    budget.edges_max =
        options.memory_limit_bytes.saturating_sub(history_bytes) / EdgeList::BYTES_PER_EDGE;
    let data: Option<Box<dyn Explain>> = if history_bytes > options.memory_limit_bytes {
        budget.stop(StopReason::MemoryLimit);
        None
    } else {
        match workload {
            Workload::ListAppend => append::infer(h, &mut found, &mut edges, &mut budget)?
                .map(|i| Box::new(i) as Box<dyn Explain>),
            Workload::RwRegister => register::infer(h, &mut found, &mut edges, &mut budget)?
                .map(|i| Box::new(i) as Box<dyn Explain>),
        }
    };
    let mut edge_count = edges.len();
    if let Some(data) = data {
        order::add_order_edges(h, options.realtime, &mut edges);
        edge_count = edges.len();
        if estimated_bytes(h, edges.len()) > options.memory_limit_bytes {
            budget.stop(StopReason::MemoryLimit);
        } else {
            let graph = Graph::build(h.txns.len(), edges);
            cycle::find_cycles(h, &graph, data.as_ref(), &mut found, &mut budget);
        }
    }
    Ok(TxnResult {
        workload,
        txns: h.txns.len(),
        edges: edge_count,
        anomalies: found.examples,
        counts: found.counts,
        stopped: budget.stopped,
        elapsed: start.elapsed(),
    })
}

/// What the check holds at its peak, roughly: the history, the value index
/// (about 40 bytes a micro-op) and the edges twice (list and graph).
fn estimated_bytes(h: &TxnHistory, edges: usize) -> usize {
    h.txns.len() * std::mem::size_of::<Txn>()
        + h.mops.len() * (std::mem::size_of::<Mop>() + 40)
        + h.values.len() * 8
        + edges * EdgeList::BYTES_PER_EDGE
}

/// The one-line verdict, e.g. `h.edn: serializable: invalid (list-append,
/// 6 txns; G2-item ×1)`.
pub fn verdict_line(file: &str, result: &TxnResult, model: Consistency) -> String {
    let ms = result.elapsed.as_secs_f64() * 1e3;
    let sizes = format!(
        "{}, {} txns, {} edges, {ms:.1} ms",
        result.workload.as_str(),
        result.txns,
        result.edges
    );
    let found: Vec<String> = result
        .counts
        .iter()
        .map(|(k, n)| format!("{} ×{n}", k.as_str()))
        .collect();
    let found = if found.is_empty() {
        "no anomalies".to_owned()
    } else {
        found.join(", ")
    };
    match result.verdict(model) {
        ModelVerdict::Valid => format!("{file}: {}: valid ({sizes}; {found})", model.as_str()),
        ModelVerdict::Invalid => {
            let why: Vec<&str> = result
                .ruling_out(model)
                .iter()
                .map(|k| k.as_str())
                .collect();
            format!(
                "{file}: {}: invalid, ruled out by {} ({sizes}; found {found})",
                model.as_str(),
                why.join(", ")
            )
        }
        ModelVerdict::Unknown => format!(
            "{file}: {}: unknown ({}; {sizes}; found so far {found})",
            model.as_str(),
            result.stopped.map_or("undecided", StopReason::describe)
        ),
    }
}
