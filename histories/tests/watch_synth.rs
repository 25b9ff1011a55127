//! The watch validator against the simulator: every generated history is
//! valid, each mutation is caught as the guarantee it breaks, and the
//! reader survives arbitrary bytes.

use d_engine_histories::synth::Rng;
use d_engine_histories::txn::ModelVerdict;
use d_engine_histories::watch::synth::{Mutation, history, mutate};
use d_engine_histories::watch::{
    WatchOptions, WatchRecord, WatchWriter, check, check_bytes, read_watch_jsonl,
};

const SEEDS: u64 = 1000;

fn jsonl(records: &[WatchRecord]) -> Vec<u8> {
    let mut w = WatchWriter::new(Vec::new());
    for r in records {
        w.write(r).unwrap();
    }
    w.into_inner()
}

#[test]
fn simulated_histories_are_valid() {
    let (mut events, mut segments) = (0, 0);
    for seed in 1..=SEEDS {
        let records = history(seed, 200);
        let report = check("sim", &records, &WatchOptions::default()).unwrap();
        assert_eq!(
            report.verdict,
            ModelVerdict::Valid,
            "seed {seed}: {:#?}\n{}",
            report.violations,
            String::from_utf8_lossy(&jsonl(&records))
        );
        events += report.events;
        segments += report.segments;
    }
    // The simulator exercises something: resumes and many events.
    assert!(events > 50 * SEEDS as usize, "{events} events");
    assert!(segments > 3 * SEEDS as usize, "{segments} segments");
}

/// Applies `m` to every seed's history; each must be caught as the
/// guarantee `m` breaks.
fn caught(m: Mutation) {
    let mut applied = 0;
    for seed in 1..=SEEDS {
        let mut records = history(seed, 200);
        let mut rng = Rng::new(seed ^ 0x9e37_79b9);
        if !mutate(&mut records, m, &mut rng) {
            continue;
        }
        applied += 1;
        let report = check("mutated", &records, &WatchOptions::default()).unwrap();
        let name = m.breaks().as_str();
        let found = report
            .violations
            .iter()
            .any(|v| v.guarantee == m.breaks() && v.class == m.class());
        assert!(
            report.verdict == ModelVerdict::Invalid && found,
            "seed {seed}, {m:?}: expected {name} ({}), got {:#?}\n{}",
            m.class(),
            report.violations,
            String::from_utf8_lossy(&jsonl(&records))
        );
    }
    assert!(applied > SEEDS / 2, "{m:?} applied to only {applied} seeds");
}

#[test]
fn a_dropped_event_is_missed() {
    caught(Mutation::Drop);
}

#[test]
fn a_duplicated_response_is_not_unique() {
    caught(Mutation::Duplicate);
}

#[test]
fn a_split_response_is_not_atomic() {
    caught(Mutation::Split);
}

#[test]
fn swapped_responses_are_not_ordered() {
    caught(Mutation::Swap);
}

#[test]
fn a_changed_prev_value_is_wrong() {
    caught(Mutation::PrevValue);
}

#[test]
fn a_raised_progress_is_ahead() {
    caught(Mutation::RaiseProgress);
}

#[test]
fn a_changed_value_is_a_phantom() {
    caught(Mutation::Phantom);
}

#[test]
fn a_raised_start_is_resumed_too_early() {
    caught(Mutation::RaiseStart);
}

#[test]
fn a_deadline_gives_unknown_not_a_violation() {
    let records = history(7, 2000);
    let options = WatchOptions {
        max_records: 10,
        ..WatchOptions::default()
    };
    let report = check("big", &records, &options).unwrap();
    assert_eq!(report.verdict, ModelVerdict::Unknown);
    assert!(report.violations.is_empty());
    assert!(report.verdict_line().contains("unknown (memory limit"));
}

#[test]
fn the_reader_and_checker_never_panic() {
    let mut rng = Rng::new(42);
    let samples: Vec<Vec<u8>> = (1..=20).map(|s| jsonl(&history(s, 60))).collect();
    for round in 0..3000 {
        let bytes = if round % 4 == 0 {
            (0..rng.below(300)).map(|_| rng.below(256) as u8).collect()
        } else {
            let mut b = samples[rng.below(samples.len() as u64) as usize].clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(b.len() as u64) as usize;
                match rng.below(3) {
                    0 => b[i] ^= 1 << rng.below(8),
                    1 => b.truncate(i),
                    _ => b.insert(i, b"{}[]\",:0-9en\n"[rng.below(13) as usize]),
                }
                if b.is_empty() {
                    break;
                }
            }
            b
        };
        let _ = read_watch_jsonl(&bytes);
        let _ = check_bytes("fuzz", &bytes, &WatchOptions::default());
    }
}
