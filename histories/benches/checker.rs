//! Checker speed on Porcupine's key-value test histories, for comparison with
//! Porcupine's own timings in testdata/porcupine-kv/README.md:
//!
//! ```text
//! cargo bench -p d-engine-histories --bench checker
//! ```

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use d_engine_histories::{CheckOptions, Format, KvModel, Operation, Verdict, check, import, pair};

fn fixture(name: &str) -> Vec<Operation> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/porcupine-kv")
        .join(format!("{name}.txt"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pair(&import::read(Format::PorcupineKv, &bytes).unwrap()).unwrap()
}

fn bench_fixture(c: &mut Criterion, name: &str, single_partition: bool, expected: Verdict) {
    let ops = fixture(name);
    let options = CheckOptions {
        single_partition,
        ..CheckOptions::default()
    };
    let label = format!(
        "{name}/{}",
        if single_partition {
            "single-partition"
        } else {
            "per-key"
        }
    );
    c.bench_function(&label, |b| {
        b.iter(|| {
            let result = check(&KvModel, &ops, &options).unwrap();
            assert_eq!(result.verdict, expected, "{label}");
            result
        })
    });
}

fn per_key(c: &mut Criterion) {
    bench_fixture(c, "c10-ok", false, Verdict::Linearizable);
    bench_fixture(c, "c10-bad", false, Verdict::Illegal);
    bench_fixture(c, "c50-ok", false, Verdict::Linearizable);
    bench_fixture(c, "c50-bad", false, Verdict::Illegal);
}

fn single_partition(c: &mut Criterion) {
    bench_fixture(c, "c10-ok", true, Verdict::Linearizable);
    bench_fixture(c, "c10-bad", true, Verdict::Illegal);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = per_key, single_partition
}
criterion_main!(benches);
