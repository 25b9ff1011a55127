//! The transactional checker at scale, and its bounds (deadline, memory).
//! The 1,000,000-transaction figure is in histories/RESULTS.md.

use std::time::{Duration, Instant};

use d_engine_histories::StopReason;
use d_engine_histories::txn::{
    Consistency, ModelVerdict, Mop, Seen, TxnOptions, Workload, check, synth,
};

#[test]
fn fifty_thousand_transactions_are_strict_serializable() {
    let h = synth::list_append(3, 50_000, 1_000, 10);
    let start = Instant::now();
    let result = check(Workload::ListAppend, &h, &TxnOptions::default()).unwrap();
    let elapsed = start.elapsed();
    assert!(result.counts.is_empty(), "{:#?}", result.anomalies);
    assert_eq!(
        result.verdict(Consistency::StrictSerializable),
        ModelVerdict::Valid
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn one_stale_read_among_fifty_thousand_is_found() {
    let mut h = synth::list_append(4, 50_000, 1_000, 10);
    // The last transaction that read a non-empty list now reads it empty:
    // its writers committed long before it started.
    let t = (0..h.txns.len())
        .rev()
        .find(|&t| {
            h.mops(t)
                .iter()
                .any(|m| matches!(*m, Mop::Read { seen, .. } if h.list(seen).len() > 3))
        })
        .unwrap();
    let mops: Vec<Mop> = h
        .mops(t)
        .iter()
        .map(|m| match *m {
            Mop::Read { key, seen } if h.list(seen).len() > 3 => Mop::Read {
                key,
                seen: Seen::Nil,
            },
            other => other,
        })
        .collect();
    let start = h.mops.iter().position(|m| *m == h.mops(t)[0]).unwrap();
    h.mops[start..start + mops.len()].copy_from_slice(&mops);
    let result = check(Workload::ListAppend, &h, &TxnOptions::default()).unwrap();
    assert_eq!(
        result.verdict(Consistency::StrictSerializable),
        ModelVerdict::Invalid,
        "{:#?}",
        result.counts
    );
    assert!(result.anomalies.iter().any(|a| a.txns.contains(&t)));
}

#[test]
fn a_deadline_or_memory_bound_yields_unknown_never_an_anomaly() {
    let h = synth::list_append(5, 50_000, 1_000, 10);
    let options = TxnOptions {
        timeout: Some(Duration::ZERO),
        ..TxnOptions::default()
    };
    let result = check(Workload::ListAppend, &h, &options).unwrap();
    assert_eq!(result.stopped, Some(StopReason::Deadline));
    assert!(result.counts.is_empty());
    for model in Consistency::ALL {
        assert_eq!(result.verdict(model), ModelVerdict::Unknown);
    }
    let options = TxnOptions {
        memory_limit_bytes: 1 << 20,
        ..TxnOptions::default()
    };
    let result = check(Workload::ListAppend, &h, &options).unwrap();
    assert_eq!(result.stopped, Some(StopReason::MemoryLimit));
    assert_eq!(
        result.verdict(Consistency::ReadUncommitted),
        ModelVerdict::Unknown
    );
}

/// One read in a hundred made stale puts most of 100,000 transactions in
/// one strongly connected component. Guards against the cycle search
/// exploring that whole component once per try (up to 32 times: 7.7 s for
/// 200,000 txns before the class searches were bounded; now well under a
/// second).
#[test]
fn many_stale_reads_are_found_without_searching_the_whole_component_each_time() {
    let mut h = synth::list_append(6, 100_000, 1_000, 10);
    let mut rng = d_engine_histories::synth::Rng::new(9);
    for m in h.mops.iter_mut() {
        if let Mop::Read {
            key,
            seen: Seen::List { start, len },
        } = *m
            && len > 0
            && rng.chance(1)
        {
            let len = rng.below(u64::from(len)) as u32;
            *m = Mop::Read {
                key,
                seen: Seen::List { start, len },
            };
        }
    }
    let start = Instant::now();
    let result = check(Workload::ListAppend, &h, &TxnOptions::default()).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(
        result.verdict(Consistency::Serializable),
        ModelVerdict::Invalid
    );
    assert!(result.anomalies.iter().any(|a| !a.steps.is_empty()));
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}
