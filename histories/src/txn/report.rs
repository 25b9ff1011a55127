//! The JSON report of one transactional check (`dengine check --json`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checker::StopReason;
use crate::txn::{Anomaly, Consistency, ModelVerdict, TxnResult, Workload};

/// One history's transactional verdict, for the JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct TxnReport {
    pub file: String,
    pub workload: Workload,
    pub consistency: Consistency,
    pub verdict: ModelVerdict,
    /// The classes found that rule the model out.
    pub ruled_out_by: Vec<&'static str>,
    pub txns: usize,
    pub edges: usize,
    pub elapsed_ms: f64,
    pub counts: BTreeMap<&'static str, usize>,
    pub anomalies: Vec<Anomaly>,
    pub stopped: Option<StopReason>,
}

impl TxnReport {
    pub fn new(file: &str, result: &TxnResult, consistency: Consistency) -> TxnReport {
        TxnReport {
            file: file.to_owned(),
            workload: result.workload,
            consistency,
            verdict: result.verdict(consistency),
            ruled_out_by: result
                .ruling_out(consistency)
                .iter()
                .map(|k| k.as_str())
                .collect(),
            txns: result.txns,
            edges: result.edges,
            elapsed_ms: result.elapsed.as_secs_f64() * 1e3,
            counts: result
                .counts
                .iter()
                .map(|(k, n)| (k.as_str(), *n))
                .collect(),
            anomalies: result.anomalies.clone(),
            stopped: result.stopped,
        }
    }
}
