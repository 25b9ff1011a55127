//! Size and time bounds: large generated histories, and deadlines.

use std::time::{Duration, Instant};

use d_engine_histories::{
    CancelToken, CheckOptions, KvModel, RegisterModel, StopReason, Verdict, check, pair, synth,
};

fn check_generated(ops: usize, keys: usize, clients: usize) -> Duration {
    let history = synth::linearizable_kv(7, ops, keys, clients);
    let ops = pair(&history).unwrap();
    let start = Instant::now();
    let result = check(&KvModel, &ops, &CheckOptions::default()).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(result.verdict, Verdict::Linearizable);
    assert_eq!(result.partitions.len(), keys);
    elapsed
}

#[test]
fn ten_thousand_ops_over_a_hundred_keys() {
    let elapsed = check_generated(10_000, 100, 50);
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

/// The scale target; run in release: `cargo test --release -p
/// d-engine-histories --test scale -- --ignored`.
#[test]
#[ignore = "run in release mode"]
fn hundred_thousand_ops_over_a_thousand_keys_in_seconds() {
    let elapsed = check_generated(100_000, 1_000, 50);
    println!("100,000 ops / 1,000 keys / 50 clients: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

/// One hot key: a single partition of 20,000 ops. Caught the seen-set
/// storing the whole linearized bitset per configuration (n/8 bytes each).
#[test]
fn one_long_partition_stays_small() {
    let history = synth::linearizable_kv(5, 20_000, 1, 3);
    let ops = pair(&history).unwrap();
    let options = CheckOptions {
        memory_limit_bytes: 32 << 20,
        ..CheckOptions::default()
    };
    let result = check(&KvModel, &ops, &options).unwrap();
    assert_eq!(
        result.verdict,
        Verdict::Linearizable,
        "{:?}",
        result.partitions[0].reason
    );
}

#[test]
fn a_corrupted_read_in_a_big_history_is_found() {
    let mut history = synth::linearizable_kv(11, 5_000, 50, 20);
    let read = history
        .events
        .iter()
        .rposition(|e| e.f == "get" && e.kind == d_engine_histories::EventType::Ok)
        .unwrap();
    history.events[read].value = "never written".into();
    let ops = pair(&history).unwrap();
    let result = check(&KvModel, &ops, &CheckOptions::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Illegal);
}

#[test]
fn deadline_gives_unknown_never_illegal() {
    let ops = pair(&synth::pathological_register(40)).unwrap();
    let options = CheckOptions {
        timeout: Some(Duration::from_millis(200)),
        ..CheckOptions::default()
    };
    let start = Instant::now();
    let result = check(&RegisterModel::register(), &ops, &options).unwrap();
    assert_eq!(result.verdict, Verdict::Unknown);
    assert_eq!(result.partitions[0].reason, Some(StopReason::Deadline));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the deadline is honoured promptly"
    );
}

#[test]
fn cancel_token_gives_unknown() {
    let ops = pair(&synth::pathological_register(40)).unwrap();
    let token = CancelToken::new();
    let options = CheckOptions {
        cancel: Some(token.clone()),
        ..CheckOptions::default()
    };
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        token.cancel();
    });
    let result = check(&RegisterModel::register(), &ops, &options).unwrap();
    canceller.join().unwrap();
    assert_eq!(result.verdict, Verdict::Unknown);
    assert_eq!(result.partitions[0].reason, Some(StopReason::Cancelled));
}

#[test]
fn memory_limit_gives_unknown() {
    let ops = pair(&synth::pathological_register(40)).unwrap();
    let options = CheckOptions {
        memory_limit_bytes: 8 << 20,
        ..CheckOptions::default()
    };
    let result = check(&RegisterModel::register(), &ops, &options).unwrap();
    assert_eq!(result.verdict, Verdict::Unknown);
    assert_eq!(result.partitions[0].reason, Some(StopReason::MemoryLimit));
}

#[test]
fn small_pathological_history_is_decided() {
    // The same shape, small enough to finish: it must be refuted.
    let ops = pair(&synth::pathological_register(8)).unwrap();
    let result = check(&RegisterModel::register(), &ops, &CheckOptions::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Illegal);
    let failing = result.failing_partition().unwrap();
    assert_eq!(
        failing.longest_prefix.len(),
        8,
        "all writes linearize, the read cannot"
    );
    assert_eq!(failing.unplaceable, vec![8]);
}
