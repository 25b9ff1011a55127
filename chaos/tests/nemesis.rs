//! The fault schedule is a pure function of its seed.

use std::time::Duration;

use d_engine_chaos::nemesis::{Family, Schedule, Timing};

#[test]
fn same_seed_same_schedule_other_seed_other_schedule() {
    let families = Family::parse_list("all").unwrap();
    let total = Duration::from_secs(60);
    let timing = Timing::for_duration(total);
    let a = Schedule::generate(42, 5, &families, total, &timing);
    let b = Schedule::generate(42, 5, &families, total, &timing);
    assert_eq!(a, b);
    // Byte-identical when serialised, which is what a replay compares.
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let c = Schedule::generate(43, 5, &families, total, &timing);
    assert_ne!(a.steps, c.steps);
    assert!(
        a.steps.len() >= 4,
        "a 60 s run has several faults: {}",
        a.steps.len()
    );
}

#[test]
fn windows_are_sequential_inside_the_run_and_use_only_enabled_families() {
    let families = Family::parse_list("kill,partition").unwrap();
    let total = Duration::from_secs(30);
    for seed in 0..50 {
        let s = Schedule::generate(seed, 3, &families, total, &Timing::for_duration(total));
        let mut end = 0;
        for step in &s.steps {
            assert!(step.at_ms > end, "seed {seed}: overlapping windows");
            end = step.at_ms + step.duration_ms;
            assert!(families.contains(&step.fault.family()));
        }
        assert!(end <= 30_000);
    }
    let none = Schedule::generate(1, 3, &[], total, &Timing::for_duration(total));
    assert!(none.steps.is_empty());
}

/// Membership steps are part of the seeded schedule: the same seed gives the
/// same replacements (same slots) and transfers; both kinds occur.
#[test]
fn membership_churn_is_seeded_and_has_replacements_and_transfers() {
    use d_engine_chaos::nemesis::{Fault, MembershipOp};
    let families = Family::parse_list("membership").unwrap();
    let total = Duration::from_secs(60);
    let timing = Timing::for_duration(total);
    let (mut replaces, mut transfers) = (0, 0);
    for seed in 0..20 {
        let a = Schedule::generate(seed, 3, &families, total, &timing);
        assert_eq!(a, Schedule::generate(seed, 3, &families, total, &timing));
        for step in &a.steps {
            match &step.fault {
                Fault::Membership(MembershipOp::Replace { slot }) => {
                    assert!(*slot < 3);
                    replaces += 1;
                }
                Fault::Membership(MembershipOp::TransferLeader(_)) => transfers += 1,
                other => panic!("not a membership step: {other:?}"),
            }
        }
    }
    assert!(replaces > 0 && transfers > 0, "{replaces} {transfers}");
}
