//! What a check tells people: a one-line verdict and a JSON report.

use serde::Serialize;

use crate::checker::{CheckResult, PartitionResult, StopReason, Verdict};
use crate::history::{Operation, Status};
use crate::txn::TxnReport;
use crate::value::Value;
use crate::watch::WatchReport;

/// An operation as shown in reports.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    pub id: usize,
    pub process: u64,
    pub f: String,
    pub key: Option<String>,
    pub input: Value,
    pub output: Value,
    pub status: Status,
    pub call_line: usize,
    pub ret_line: Option<usize>,
}

impl OpSummary {
    pub fn of(op: &Operation) -> Self {
        OpSummary {
            id: op.id,
            process: op.process,
            f: op.f.clone(),
            key: op.key.clone(),
            input: op.input.clone(),
            output: op.output.clone(),
            status: op.status,
            call_line: op.call_line,
            ret_line: op.ret_line,
        }
    }
}

/// Short text of an op: `process 4 get "3" -> "x 1 y" (line 35)`.
pub fn describe_op(op: &Operation) -> String {
    let mut s = format!("process {} {}", op.process, op.f);
    if let Some(k) = &op.key {
        s.push_str(&format!(" {k:?}"));
    }
    if !op.input.is_nil() {
        s.push_str(&format!(" {}", op.input));
    }
    match op.status {
        Status::Ok if !op.output.is_nil() && op.output != op.input => {
            s.push_str(&format!(" -> {}", op.output))
        }
        Status::Ok => {}
        Status::Fail => s.push_str(" (fail)"),
        Status::Info => s.push_str(" (unknown outcome)"),
    }
    s.push_str(&format!(" (line {})", op.call_line));
    s
}

/// The failing partition, described.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub key: Option<String>,
    pub ops: usize,
    /// Longest linearizable prefix, in linearization order.
    pub longest_prefix: Vec<OpSummary>,
    pub unplaceable: Vec<OpSummary>,
}

/// A partition that was not decided, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Undecided {
    pub key: Option<String>,
    pub ops: usize,
    pub reason: Option<StopReason>,
}

/// The JSON report of one history.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub file: String,
    pub model: String,
    pub verdict: Verdict,
    pub operations: usize,
    pub ops_checked: usize,
    pub partitions: usize,
    pub elapsed_ms: f64,
    pub failure: Option<Failure>,
    pub undecided: Vec<Undecided>,
}

impl Report {
    pub fn new(file: &str, ops: &[Operation], result: &CheckResult) -> Self {
        let summaries = |ids: &[usize]| ids.iter().map(|&i| OpSummary::of(&ops[i])).collect();
        Report {
            file: file.to_owned(),
            model: result.model.clone(),
            verdict: result.verdict,
            operations: ops.len(),
            ops_checked: result.ops_checked,
            partitions: result.partitions.len(),
            elapsed_ms: result.elapsed.as_secs_f64() * 1e3,
            failure: result.failing_partition().map(|p| Failure {
                key: p.key.clone(),
                ops: p.ops.len(),
                longest_prefix: summaries(&p.longest_prefix),
                unplaceable: summaries(&p.unplaceable),
            }),
            undecided: result
                .partitions
                .iter()
                .filter(|p| {
                    p.verdict == Verdict::Unknown
                        && p.reason != Some(StopReason::OtherPartitionIllegal)
                })
                .map(|p| Undecided {
                    key: p.key.clone(),
                    ops: p.ops.len(),
                    reason: p.reason,
                })
                .collect(),
        }
    }
}

fn partition_name(p: &PartitionResult) -> String {
    match &p.key {
        Some(k) => format!("key {k:?}"),
        None => "the history".to_owned(),
    }
}

/// The one-line verdict, e.g.
/// `h.jsonl: not linearizable (kv, key "3": 45 of 52 ops linearizable; cannot place process 4 get "3" -> "x" (line 35))`.
pub fn verdict_line(file: &str, ops: &[Operation], result: &CheckResult) -> String {
    let ms = result.elapsed.as_secs_f64() * 1e3;
    let sizes = format!(
        "{} ops, {} partitions, {ms:.1} ms",
        result.ops_checked,
        result.partitions.len()
    );
    match result.verdict {
        Verdict::Linearizable => format!("{file}: linearizable ({}, {sizes})", result.model),
        Verdict::Illegal => {
            let p = result
                .failing_partition()
                .expect("an illegal result has a failing partition");
            let stuck: Vec<String> = p
                .unplaceable
                .iter()
                .take(3)
                .map(|&i| describe_op(&ops[i]))
                .collect();
            let more = if p.unplaceable.len() > 3 {
                format!(" and {} more", p.unplaceable.len() - 3)
            } else {
                String::new()
            };
            format!(
                "{file}: not linearizable ({}, {}: longest linearizable prefix {} of {} ops; cannot place {}{more}; {sizes})",
                result.model,
                partition_name(p),
                p.longest_prefix.len(),
                p.ops.len(),
                stuck.join(", ")
            )
        }
        Verdict::Unknown => {
            let open: Vec<&PartitionResult> = result
                .partitions
                .iter()
                .filter(|p| p.verdict == Verdict::Unknown)
                .collect();
            let reason = open
                .first()
                .and_then(|p| p.reason)
                .map_or("undecided", StopReason::describe);
            format!(
                "{file}: unknown ({reason}; {} of {} partitions undecided; {sizes})",
                open.len(),
                result.partitions.len()
            )
        }
    }
}

/// The JSON document `dengine check --json` writes: every history's report
/// and the totals.
pub fn reports_json(reports: &[Report], unreadable: &[(String, String)]) -> String {
    reports_json_with_txns(reports, &[], unreadable)
}

/// As [`reports_json`], with the transactional checks (`transactions`,
/// present only when there are some).
pub fn reports_json_with_txns(
    reports: &[Report],
    txns: &[TxnReport],
    unreadable: &[(String, String)],
) -> String {
    reports_json_all(reports, txns, &[], unreadable)
}

/// The JSON document of linearizability, transactional and watch checks
/// (`watch` left out when there are none).
pub fn reports_json_all(
    reports: &[Report],
    txns: &[TxnReport],
    watches: &[WatchReport],
    unreadable: &[(String, String)],
) -> String {
    #[derive(Serialize)]
    struct Unreadable<'a> {
        file: &'a str,
        error: &'a str,
    }
    #[derive(Serialize)]
    struct Doc<'a> {
        histories: &'a [Report],
        #[serde(skip_serializing_if = "<[TxnReport]>::is_empty")]
        transactions: &'a [TxnReport],
        #[serde(skip_serializing_if = "<[WatchReport]>::is_empty")]
        watch: &'a [WatchReport],
        unreadable: Vec<Unreadable<'a>>,
        linearizable: usize,
        not_linearizable: usize,
        unknown: usize,
    }
    let count = |v: Verdict| reports.iter().filter(|r| r.verdict == v).count();
    let doc = Doc {
        histories: reports,
        transactions: txns,
        watch: watches,
        unreadable: unreadable
            .iter()
            .map(|(file, error)| Unreadable { file, error })
            .collect(),
        linearizable: count(Verdict::Linearizable),
        not_linearizable: count(Verdict::Illegal),
        unknown: count(Verdict::Unknown),
    };
    serde_json::to_string_pretty(&doc).expect("reports serialize")
}
