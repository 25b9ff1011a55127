//! Transactional checker speed on generated list-append histories:
//!
//! ```text
//! cargo bench -p d-engine-histories --bench txn
//! ```
//!
//! The 1,000,000-transaction figure (with peak memory) comes from the
//! `txn_scale` example; see histories/RESULTS.md.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use d_engine_histories::txn::{Consistency, ModelVerdict, TxnOptions, Workload, check, synth};

fn list_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("list-append");
    for (txns, keys) in [(10_000, 100), (100_000, 1_000)] {
        let h = synth::list_append(1, txns, keys, 10);
        group.throughput(Throughput::Elements(txns as u64));
        group.bench_function(format!("{txns}-txns-{keys}-keys"), |b| {
            b.iter(|| {
                let result = check(Workload::ListAppend, &h, &TxnOptions::default()).unwrap();
                assert_eq!(
                    result.verdict(Consistency::StrictSerializable),
                    ModelVerdict::Valid
                );
                result
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = list_append
}
criterion_main!(benches);
