//! Deterministic simulation harness shared by `tests/sim.rs` (randomized runs) and
//! `tests/scenarios.rs` (scripted scenarios with golden output).
//!
//! One [`cluster::Cluster`] owns every node's core, simulated storage (writes become
//! durable later; a crash loses the unsynced ones), simulated state machine, and a
//! simulated network (delay, loss, duplication, reordering, partitions). Every choice
//! comes from one seeded RNG, so a seed replays exactly. The invariant checker runs
//! after every step.
#![allow(dead_code)]

pub mod cluster;
pub mod driver;
pub mod invariants;
pub mod network;
pub mod storage;
