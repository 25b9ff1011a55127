//! `summary.json`: the figures of one target in one run. Scripts rely on this schema;
//! it is described field by field in `bench/SCHEMA.md`. Fields are only ever added
//! (bumping [`SCHEMA_VERSION`] if a meaning changes), never renamed or removed.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::runner::{Load, Measured, RunSpec};
use crate::target::ErrorKind;
use crate::workload::{Distribution, WorkloadKind};

/// Version of the `summary.json` schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Latency percentiles in microseconds (`samples` = how many values they summarize).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub samples: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencyStats {
    pub fn from_histogram(h: &Histogram<u64>) -> LatencyStats {
        if h.is_empty() {
            return LatencyStats::default();
        }
        LatencyStats {
            samples: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// Failed measured calls, by kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    pub timeout: u64,
    pub unavailable: u64,
    pub not_leader: u64,
    pub too_large: u64,
    pub other: u64,
    pub total: u64,
}

impl Errors {
    fn from_counts(c: &[u64; 5]) -> Errors {
        Errors {
            timeout: c[ErrorKind::Timeout.index()],
            unavailable: c[ErrorKind::Unavailable.index()],
            not_leader: c[ErrorKind::NotLeader.index()],
            too_large: c[ErrorKind::TooLarge.index()],
            other: c[ErrorKind::Other.index()],
            total: c.iter().sum(),
        }
    }
}

/// Peak memory of one node of the cluster under test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeMemory {
    pub endpoint: String,
    /// `VmHWM` of the serving process, KiB; null when it could not be read.
    pub peak_rss_kib: Option<u64>,
}

/// The latency floors measured on this machine in the same run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Floors {
    /// Where the fdatasync loop wrote (the data disk).
    pub disk_dir: String,
    /// Bytes written before each fdatasync.
    pub fdatasync_bytes: usize,
    /// `write` + `fdatasync` of one small record, appended to one file.
    pub fdatasync_us: LatencyStats,
    /// A unary no-op gRPC call to an in-process tonic server on 127.0.0.1.
    pub grpc_ping_us: LatencyStats,
    /// `fdatasync_us.p50 + grpc_ping_us.p50`: what one replicated write cannot beat
    /// on this machine even before any follower round trip.
    pub write_floor_p50_us: u64,
    /// `fdatasync_us.p50 + 2 * grpc_ping_us.p50`: the floor of a write replicated to a
    /// follower (the client's call, then the leader's call to a follower, whose
    /// fdatasync overlaps the leader's own).
    #[serde(default)]
    pub replicated_write_floor_p50_us: u64,
}

/// The summary of one target in one run (or all rounds of one target in a compare).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    /// `noop`, `etcd`, `dengine`.
    pub target: String,
    pub endpoints: Vec<String>,
    /// `ok`, or `error` when the run ended early or never started (see `error`).
    pub status: String,
    pub error: Option<String>,
    /// `write`, `read`, `mixed`, `cas`.
    pub workload: String,
    /// Fraction of reads; set for `mixed` only.
    pub read_ratio: Option<f64>,
    /// Read consistency; set for workloads that read.
    pub consistency: Option<String>,
    /// `closed` or `open`.
    pub mode: String,
    /// Concurrent clients (closed loop) or the in-flight cap (open loop).
    pub clients: usize,
    /// Target rate, ops/s (open loop only).
    pub rate: Option<f64>,
    pub keys: u64,
    /// `uniform`, `zipfian`, `sequential`.
    pub distribution: String,
    pub zipf_exponent: Option<f64>,
    pub value_size: usize,
    pub warmup_s: f64,
    /// Length of the measured phase (all rounds), seconds.
    pub duration_s: f64,
    /// Rounds this summary merges (1 outside a compare).
    pub rounds: u32,
    /// Successful measured operations.
    pub ops: u64,
    pub ops_per_sec: f64,
    pub reads: u64,
    pub writes: u64,
    /// CAS calls that completed but did not swap (included in `ops`).
    pub cas_failed: u64,
    /// Operations during the warm-up (excluded from everything else).
    pub warmup_ops: u64,
    pub errors: Errors,
    /// The first error message of each kind that occurred.
    pub error_samples: BTreeMap<String, String>,
    /// Latency of successful measured operations. Open loop: from the intended send
    /// time (includes queueing behind a stalled server).
    pub latency_us: LatencyStats,
    /// Open loop only: from the actual send.
    pub service_us: Option<LatencyStats>,
    /// Open loop only: operations due before the end that were never sent.
    pub unsent: Option<u64>,
    /// Peak RSS per node, when the nodes run on this machine.
    pub nodes: Vec<NodeMemory>,
    pub floors: Option<Floors>,
    /// d-engine only: the client's sharing of `Batch` RPCs among calls (absent when
    /// every call went alone).
    #[serde(default)]
    pub client_batching: Option<crate::target::BatchingStats>,
    pub seed: u64,
    pub started_at_unix_ms: u64,
    pub bench_version: String,
}

impl Summary {
    /// Builds a summary from a run's settings and measurements.
    pub fn new(
        target: &str,
        endpoints: &[String],
        spec: &RunSpec,
        m: &Measured,
        rounds: u32,
        started_at_unix_ms: u64,
    ) -> Summary {
        let w = &spec.workload;
        let reads = matches!(w.kind, WorkloadKind::Read | WorkloadKind::Mixed);
        let (mode, rate) = match spec.load {
            Load::Closed { .. } => ("closed", None),
            Load::Open { rate, .. } => ("open", Some(rate)),
        };
        let secs = m.elapsed.as_secs_f64();
        let error_samples = ErrorKind::ALL
            .iter()
            .filter_map(|k| {
                m.first_errors[k.index()]
                    .as_ref()
                    .map(|e| (k.as_str().to_string(), e.clone()))
            })
            .collect();
        Summary {
            schema_version: SCHEMA_VERSION,
            target: target.to_string(),
            endpoints: endpoints.to_vec(),
            status: if m.aborted.is_some() { "error" } else { "ok" }.to_string(),
            error: m.aborted.clone(),
            workload: w.kind.as_str().to_string(),
            read_ratio: matches!(w.kind, WorkloadKind::Mixed | WorkloadKind::RwRegister)
                .then_some(w.read_ratio),
            consistency: reads.then(|| w.consistency.as_str().to_string()),
            mode: mode.to_string(),
            clients: spec.load.workers(),
            rate,
            keys: w.keys,
            distribution: w.distribution.name().to_string(),
            zipf_exponent: match w.distribution {
                Distribution::Zipfian { exponent } => Some(exponent),
                _ => None,
            },
            value_size: w.value_size,
            warmup_s: spec.warmup.as_secs_f64(),
            duration_s: (secs * 1000.0).round() / 1000.0,
            rounds,
            ops: m.ops,
            ops_per_sec: if secs > 0.0 {
                (m.ops as f64 / secs * 10.0).round() / 10.0
            } else {
                0.0
            },
            reads: m.reads,
            writes: m.writes,
            cas_failed: m.cas_failed,
            warmup_ops: m.warmup_ops,
            errors: Errors::from_counts(&m.errors),
            error_samples,
            latency_us: LatencyStats::from_histogram(&m.latency),
            service_us: m.service.as_ref().map(LatencyStats::from_histogram),
            unsent: m.unsent,
            nodes: Vec::new(),
            floors: None,
            client_batching: None,
            seed: spec.seed,
            started_at_unix_ms,
            bench_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}
