//! The hand-written corpus in testdata/txn: one minimal history per anomaly
//! class, and each model's verdict at the class boundary.

use std::path::PathBuf;

use d_engine_histories::txn::{
    AnomalyKind, Consistency, ModelVerdict, TxnHistory, TxnOptions, TxnResult, Workload, check_ops,
};
use d_engine_histories::{Format, import, pair};

use AnomalyKind::*;
use Consistency::*;

fn check_fixture(name: &str, workload: Workload) -> (TxnHistory, TxnResult) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/txn")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ops = pair(&import::read(Format::JepsenEdn, &bytes).unwrap()).unwrap();
    check_ops(&ops, Some(workload), &TxnOptions::default()).unwrap()
}

/// The strongest model that holds for each fixture: every weaker one holds
/// too and every stronger one fails.
const ORDER: [Consistency; 6] = [
    ReadUncommitted,
    ReadCommitted,
    SnapshotIsolation,
    Serializable,
    StrictSerializable,
    RepeatableRead,
];

fn expect(name: &str, workload: Workload, kind: Option<AnomalyKind>, valid: &[Consistency]) {
    let (h, result) = check_fixture(name, workload);
    let found: Vec<AnomalyKind> = result.counts.keys().copied().collect();
    match kind {
        Some(k) => assert_eq!(found, vec![k], "{name}: {:#?}", result.anomalies),
        None => assert!(found.is_empty(), "{name}: {:#?}", result.anomalies),
    }
    for model in ORDER {
        let want = if valid.contains(&model) {
            ModelVerdict::Valid
        } else {
            ModelVerdict::Invalid
        };
        assert_eq!(result.verdict(model), want, "{name}: {}", model.as_str());
    }
    for a in &result.anomalies {
        assert!(!a.explanation.is_empty());
        for s in &a.steps {
            assert!(
                !s.why.contains(" -> "),
                "{name}: edge without reason: {}",
                s.why
            );
        }
        assert!(a.txns.iter().all(|&t| t < h.txns.len()));
    }
}

#[test]
fn g0_rules_out_even_read_uncommitted() {
    expect("g0.edn", Workload::ListAppend, Some(G0), &[]);
}

#[test]
fn aborted_intermediate_and_circular_reads_rule_out_read_committed() {
    let ru = &[ReadUncommitted];
    expect("g1a.edn", Workload::ListAppend, Some(G1a), ru);
    expect("g1b.edn", Workload::ListAppend, Some(G1b), ru);
    expect("g1c.edn", Workload::ListAppend, Some(G1c), ru);
    expect("register-g1b.edn", Workload::RwRegister, Some(G1b), ru);
}

#[test]
fn read_skew_is_read_committed_but_not_snapshot_isolation() {
    let rc = &[ReadUncommitted, ReadCommitted];
    expect("g-single.edn", Workload::ListAppend, Some(GSingle), rc);
    expect(
        "register-g-single.edn",
        Workload::RwRegister,
        Some(GSingle),
        rc,
    );
}

#[test]
fn write_skew_is_snapshot_isolation_but_not_serializable() {
    let si = &[ReadUncommitted, ReadCommitted, SnapshotIsolation];
    expect("g2-item.edn", Workload::ListAppend, Some(G2Item), si);
    expect(
        "register-g2-item.edn",
        Workload::RwRegister,
        Some(G2Item),
        si,
    );
}

#[test]
fn a_stale_read_is_serializable_but_not_strict() {
    let ser = &[
        ReadUncommitted,
        ReadCommitted,
        SnapshotIsolation,
        RepeatableRead,
        Serializable,
    ];
    expect(
        "g-single-realtime.edn",
        Workload::ListAppend,
        Some(GSingleRealtime),
        ser,
    );
}

#[test]
fn internal_inconsistency_rules_out_everything() {
    expect("internal.edn", Workload::ListAppend, Some(Internal), &[]);
}

#[test]
fn reads_no_order_can_explain_rule_out_everything() {
    expect(
        "incompatible-order.edn",
        Workload::ListAppend,
        Some(IncompatibleOrder),
        &[],
    );
    expect("garbage.edn", Workload::ListAppend, Some(GarbageRead), &[]);
    expect(
        "duplicate.edn",
        Workload::ListAppend,
        Some(DuplicateElements),
        &[],
    );
}

#[test]
fn a_serial_history_is_strict_serializable() {
    expect("valid.edn", Workload::ListAppend, None, &Consistency::ALL);
}

#[test]
fn cycle_explanations_name_keys_and_values() {
    let (_, result) = check_fixture("g2-item.edn", Workload::ListAppend);
    let a = &result.anomalies[0];
    assert_eq!(a.steps.len(), 2);
    assert!(a.steps.iter().all(|s| s.kind.as_str() == "rw"));
    assert!(
        a.explanation.contains("read key x as []"),
        "{}",
        a.explanation
    );
    assert!(a.explanation.contains("write skew"), "{}", a.explanation);
}
