//! Chaos testing for d-engine and etcd: real node processes, faults on a seeded
//! schedule, clients that record a history, and the checker's verdict.
//!
//! ```text
//!            ┌──────────── run::run(RunConfig) ─────────────┐
//!            │                                              │
//! cluster::LocalCluster ◀── nemesis::Executor ◀── nemesis::Schedule (seed)
//!   N processes, logs      kill / pause / restart        │
//!   proxy per peer link ◀─ partitions, delay, loss       └─▶ nemesis.jsonl
//!            ▲
//!            │ client endpoints (direct, never proxied)
//! workload::Workload ──▶ history.jsonl ──▶ d_engine_histories::check ──▶ summary.json
//! ```
//!
//! - [`cluster`]: the local cluster launcher (also used by the bench crate).
//! - [`proxy`]: the fault-injecting TCP proxy on peer links.
//! - [`nemesis`]: the seeded fault schedule and its executor.
//! - [`client`]: one key-value client interface over etcd and d-engine.
//! - [`workload`]: clients that record a history: CAS registers,
//!   list-append and rw-register transactions, sets.
//! - [`verdict`]: the workload's checker, run on the history.
//! - [`run`]: one chaos run end to end, writing a run directory.

pub mod client;
pub mod cluster;
pub mod nemesis;
pub mod prng;
pub mod proxy;
pub mod run;
mod util;
pub mod verdict;
pub mod workload;
