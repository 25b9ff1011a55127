//! The transactional checker on a generated list-append history with a
//! share of reads made stale (shortened to a random prefix), to see how
//! long cycle search takes when the graph has large components:
//!
//! ```text
//! cargo run --release -p d-engine-histories --example txn_broken -- 200000 1000 10 1
//! ```
//!
//! Arguments: transactions, keys, clients, percent of reads made stale.

use std::time::Instant;

use d_engine_histories::synth::Rng;
use d_engine_histories::txn::{
    Consistency, Mop, Seen, TxnOptions, Workload, check, synth, verdict_line,
};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are numbers"))
        .collect();
    let txns = args.first().copied().unwrap_or(200_000);
    let keys = args.get(1).copied().unwrap_or(1_000);
    let clients = args.get(2).copied().unwrap_or(10);
    let percent = args.get(3).copied().unwrap_or(1) as u64;
    let mut h = synth::list_append(1, txns, keys, clients);
    let mut rng = Rng::new(9);
    for m in h.mops.iter_mut() {
        if let Mop::Read {
            key,
            seen: Seen::List { start, len },
        } = *m
            && len > 0
            && rng.chance(percent)
        {
            let len = rng.below(u64::from(len)) as u32;
            *m = Mop::Read {
                key,
                seen: Seen::List { start, len },
            };
        }
    }
    let start = Instant::now();
    let result = check(Workload::ListAppend, &h, &TxnOptions::default()).expect("checks");
    for model in [
        Consistency::StrictSerializable,
        Consistency::Serializable,
        Consistency::SnapshotIsolation,
    ] {
        println!("{}", verdict_line("broken", &result, model));
    }
    println!("checked in {:.2} s", start.elapsed().as_secs_f64());
}
