//! What a run's history says: the checker for its workload, run on
//! `history.jsonl`, reduced to what the summary and the exit code need.
//!
//! - register: linearizability of every key (CAS register), plus aborted
//!   reads (a value read whose write was reported failed);
//! - list-append, rw-register: strict serializability (Elle-style cycles,
//!   each anomaly explained);
//! - set: no acknowledged element lost, none unexpected;
//! - watch: the watch validator on `watch.jsonl` (ordered, unique, atomic,
//!   reliable, resumable, bookmarkable, prev_kv).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use d_engine_histories::txn::{self, Consistency as TxnModel, ModelVerdict, TxnOptions, Workload};
use d_engine_histories::{
    CheckOptions, Operation, RegisterModel, Status, Value, Verdict, check, pair, read_jsonl, set,
    watch,
};

use crate::workload::WorkloadKind;

/// The outcome of the check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// `linearizable` / `not linearizable`, `strict-serializable` / `not
    /// strict-serializable`, `valid` / `invalid` (set, watch), or `unknown`.
    pub verdict: String,
    /// 0 proven correct, 1 a violation, 2 undecided.
    pub class: u8,
    pub failing_key: Option<String>,
    /// Each violation found, in a sentence (aborted reads, anomalies with
    /// their cycles, lost elements).
    pub findings: Vec<String>,
    pub ops_checked: usize,
    /// The checker's own report, written to `check.json`.
    pub report: serde_json::Value,
}

/// Checks the history in run directory `out` as `kind` prescribes:
/// `watch.jsonl` for the watch workload, else `history.jsonl`.
pub fn check_run(kind: WorkloadKind, out: &Path, timeout: Duration) -> anyhow::Result<Checked> {
    let read = |name: &str| {
        let path = out.join(name);
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    if kind == WorkloadKind::Watch {
        return watches(&read("watch.jsonl")?, timeout);
    }
    check_history(kind, &read("history.jsonl")?, timeout)
}

/// Checks `history` (the bytes of `history.jsonl`) as `kind` prescribes.
pub fn check_history(
    kind: WorkloadKind,
    history: &[u8],
    timeout: Duration,
) -> anyhow::Result<Checked> {
    let ops = pair(&read_jsonl(history)?)?;
    match kind {
        WorkloadKind::Watch => anyhow::bail!("the watch workload's history is watch.jsonl"),
        WorkloadKind::Register => register(&ops, timeout),
        WorkloadKind::ListAppend => transactions(&ops, Workload::ListAppend, timeout),
        WorkloadKind::RwRegister => transactions(&ops, Workload::RwRegister, timeout),
        WorkloadKind::Set => sets(&ops),
    }
}

fn register(ops: &[Operation], timeout: Duration) -> anyhow::Result<Checked> {
    let aborted = aborted_reads(ops);
    let options = CheckOptions {
        timeout: Some(timeout),
        ..CheckOptions::default()
    };
    let result = check(&RegisterModel::cas_register(), ops, &options)?;
    // An aborted read is a certain violation even when the search gives up.
    let class = match (result.verdict, aborted.is_empty()) {
        (Verdict::Linearizable, true) => 0,
        (Verdict::Unknown, true) => 2,
        _ => 1,
    };
    Ok(Checked {
        verdict: result.verdict.as_str().to_owned(),
        class,
        failing_key: result.failing_partition().and_then(|p| p.key.clone()),
        findings: aborted,
        ops_checked: result.ops_checked,
        report: serde_json::to_value(&result)?,
    })
}

fn transactions(
    ops: &[Operation],
    workload: Workload,
    timeout: Duration,
) -> anyhow::Result<Checked> {
    let model = TxnModel::StrictSerializable;
    let options = TxnOptions {
        timeout: Some(timeout),
        ..TxnOptions::default()
    };
    let (_, result) = txn::check_ops(ops, Some(workload), &options)?;
    let verdict = result.verdict(model);
    let (name, class) = match verdict {
        ModelVerdict::Valid => (model.as_str().to_owned(), 0),
        ModelVerdict::Invalid => (format!("not {}", model.as_str()), 1),
        ModelVerdict::Unknown => ("unknown".to_owned(), 2),
    };
    let findings = result
        .anomalies
        .iter()
        .map(|a| a.explanation.clone())
        .collect();
    Ok(Checked {
        verdict: name,
        class,
        failing_key: None,
        findings,
        ops_checked: result.txns,
        report: serde_json::to_value(txn::TxnReport::new("history.jsonl", &result, model))?,
    })
}

fn watches(bytes: &[u8], timeout: Duration) -> anyhow::Result<Checked> {
    let options = watch::WatchOptions {
        timeout: Some(timeout),
        ..watch::WatchOptions::default()
    };
    let report = watch::check_bytes("watch.jsonl", bytes, &options)?;
    let (verdict, class) = match report.verdict {
        ModelVerdict::Valid => ("valid", 0),
        ModelVerdict::Invalid => ("invalid", 1),
        ModelVerdict::Unknown => ("unknown", 2),
    };
    Ok(Checked {
        verdict: verdict.to_owned(),
        class,
        failing_key: report.violations.first().map(|v| v.key.clone()),
        findings: report
            .violations
            .iter()
            .map(|v| v.message.clone())
            .collect(),
        ops_checked: report.events + report.writes,
        report: serde_json::to_value(&report)?,
    })
}

fn sets(ops: &[Operation]) -> anyhow::Result<Checked> {
    let result = set::check_set(ops);
    Ok(Checked {
        verdict: if result.valid { "valid" } else { "invalid" }.to_owned(),
        class: if result.valid { 0 } else { 1 },
        failing_key: result.violations.first().map(|v| v.key.clone()),
        findings: result
            .violations
            .iter()
            .map(|v| v.message.clone())
            .collect(),
        ops_checked: ops.len(),
        report: serde_json::to_value(&result)?,
    })
}

/// Reads that returned a value whose write (or cas) completed as `fail`.
/// The workload writes every value once, so such a read proves that a
/// request reported as not applied was applied: the reply broke its
/// contract. One line per case, naming the failed op and its error.
pub fn aborted_reads(ops: &[Operation]) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let written = |op: &Operation| match (&op.f[..], &op.input) {
        ("write", v) => Some(v.clone()),
        ("cas", Value::List(pair)) if pair.len() == 2 => Some(pair[1].clone()),
        _ => None,
    };
    let mut failed: HashMap<(Option<&str>, Value), &Operation> = HashMap::new();
    for op in ops.iter().filter(|op| op.status == Status::Fail) {
        if let Some(v) = written(op).filter(|v| !v.is_nil()) {
            failed.insert((op.key.as_deref(), v), op);
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for read in ops
        .iter()
        .filter(|op| op.f == "read" && op.status == Status::Ok)
    {
        let k = (read.key.as_deref(), read.output.clone());
        if let Some(w) = failed.get(&k)
            && seen.insert(w.id)
        {
            out.push(format!(
                "key {} value {} read by process {} (line {}) was written by {} {} of process {} (line {}) that failed: {}",
                read.key.as_deref().unwrap_or("-"),
                read.output,
                read.process,
                read.call_line,
                w.f,
                w.input,
                w.process,
                w.call_line,
                w.error.as_deref().unwrap_or("no error text"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_of_a_failed_write_is_an_aborted_read() {
        let text = br#"{"process":1,"type":"invoke","f":"write","key":"k","value":7}
{"process":1,"type":"fail","f":"write","key":"k","error":"SHUTTING_DOWN"}
{"process":2,"type":"invoke","f":"cas","key":"k","value":[null,8]}
{"process":2,"type":"fail","f":"cas","key":"k","error":"mismatch"}
{"process":3,"type":"invoke","f":"read","key":"k"}
{"process":3,"type":"ok","f":"read","key":"k","value":7}
{"process":3,"type":"invoke","f":"read","key":"k"}
{"process":3,"type":"ok","f":"read","key":"k","value":null}"#;
        let ops = pair(&read_jsonl(text).unwrap()).unwrap();
        let found = aborted_reads(&ops);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("value 7") && found[0].contains("SHUTTING_DOWN"));
    }
}
