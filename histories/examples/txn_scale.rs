//! The transactional checker on a generated list-append history, for the
//! figure in histories/RESULTS.md:
//!
//! ```text
//! cargo build --release -p d-engine-histories --example txn_scale
//! /usr/bin/time -v target/release/examples/txn_scale 1000000 10000 10
//! ```
//!
//! Arguments: transactions, keys, clients (defaults 1,000,000 10,000 10).

use std::time::Instant;

use d_engine_histories::txn::{Consistency, TxnOptions, Workload, check, synth, verdict_line};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are numbers"))
        .collect();
    let txns = args.first().copied().unwrap_or(1_000_000);
    let keys = args.get(1).copied().unwrap_or(10_000);
    let clients = args.get(2).copied().unwrap_or(10);
    let start = Instant::now();
    let history = synth::list_append(1, txns, keys, clients);
    let generated = start.elapsed();
    let start = Instant::now();
    let result = check(Workload::ListAppend, &history, &TxnOptions::default()).expect("checks");
    let checked = start.elapsed();
    println!(
        "{}",
        verdict_line("generated", &result, Consistency::StrictSerializable)
    );
    println!(
        "{txns} txns, {} micro-ops, {} read values over {keys} keys, {clients} clients: generated in {:.2} s, checked in {:.2} s = {:.0} txn/s",
        history.mops.len(),
        history.values.len(),
        generated.as_secs_f64(),
        checked.as_secs_f64(),
        txns as f64 / checked.as_secs_f64()
    );
}
