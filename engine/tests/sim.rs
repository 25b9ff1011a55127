//! Deterministic simulation of the Raft core.
//!
//! `cargo test -p d-engine --release --test sim` runs the default seed count;
//! `SIM_SEEDS=N` runs N seeds, `SIM_SEED=S` replays one seed. Every failure prints its
//! seed and the one-line command that replays it.

#[path = "sim/mod.rs"]
mod simlib;

use d_engine::core::Bugs;
use simlib::driver::{replay_command, run_seed};

const DEFAULT_SEEDS: u64 = 300;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn simulation() {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut acked = 0;
    for &seed in &seeds {
        let r = std::panic::catch_unwind(|| run_seed(seed, Bugs::default()))
            .unwrap_or_else(|p| Err(format!("panic: {}", panic_text(&p))));
        match r {
            Ok(o) => acked += o.acked,
            Err(e) => {
                eprintln!(
                    "seed {seed} FAILED: {e}\n  replay: {}",
                    replay_command(seed)
                );
                failures.push(seed);
            }
        }
    }
    eprintln!(
        "simulated {} seeds in {:.1?}: {} acknowledged writes, {} failures",
        seeds.len(),
        started.elapsed(),
        acked,
        failures.len()
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}
