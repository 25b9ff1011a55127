//! d-engine's load generator.
//!
//! A run drives one [`Target`] with a [`WorkloadSpec`] under a closed loop (N clients,
//! each waiting for its reply) or an open loop (a fixed rate; latency counted from the
//! *intended* send time, so a stalled server shows in every request it delayed), after a
//! warm-up that is excluded, for a duration or an operation count. It writes a run
//! directory:
//!
//! ```text
//! summary.json    the figures scripts read (schema: bench/SCHEMA.md, [`Summary`])
//! timeseries.csv  one row per second: second,ops,errors,p50_us,p99_us,length_s
//! latency.hlog    HdrHistogram interval log (one histogram per second, nanoseconds)
//! ```
//!
//! The driver, in short:
//!
//! ```text
//! probe target ──► floors (fdatasync loop, gRPC ping) ──► workers ──► collector (1 s)
//!                                                          │  op    │ drains workers'
//!                                                          ▼        │ histograms into
//!                                                        Target     ▼ csv + hlog + total
//! ```
//!
//! [`compare`] runs the same workload against several targets in alternating rounds and
//! writes one subdirectory per target plus `compare.md`.

pub mod compare;
pub mod floors;
pub mod local;
pub mod output;
pub mod progress;
pub mod rng;
pub mod rss;
pub mod run;
pub mod runner;
pub mod summary;
pub mod target;
pub mod workload;
pub mod zipf;

pub use compare::{CompareSpec, compare};
pub use run::{MemorySource, RunOptions, RunOutcome, TargetSpec, run_target_to_dir, run_to_dir};
pub use runner::{Load, RunSpec, StopAt};
pub use summary::Summary;
pub use target::{
    CasResult, Consistency, DengineTarget, ErrorKind, EtcdTarget, NoopTarget, Target, TargetError,
};
pub use workload::{Distribution, WorkloadKind, WorkloadSpec};
