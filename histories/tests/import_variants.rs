//! The importers on the variants Jepsen users hand us (testdata/import).

use std::path::PathBuf;

use d_engine_histories::txn::{AnomalyKind, Consistency, ModelVerdict, TxnOptions, check_ops};
use d_engine_histories::{
    CheckOptions, EventType, Format, History, RegisterModel, Value, Verdict, check, import, pair,
};

fn read(name: &str) -> History {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/import")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let format = Format::detect(name, &bytes).unwrap_or_else(|| panic!("{name}: no format"));
    let content_only = Format::detect("history", &bytes);
    assert_eq!(content_only, Some(format), "{name}: detected from content");
    import::read(format, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn log_fields_separated_by_runs_of_spaces() {
    let h = read("spaced.log");
    let kinds: Vec<(u64, EventType, &str)> = h
        .events
        .iter()
        .map(|e| (e.process, e.kind, e.f.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (3, EventType::Invoke, "cas"),
            (3, EventType::Fail, "cas"),
            (4, EventType::Invoke, "read"),
            (4, EventType::Info, "read"),
            (5, EventType::Invoke, "write"),
            (5, EventType::Ok, "write"),
        ]
    );
    assert_eq!(h.events[0].value, Value::List(vec![1.into(), 4.into()]));
    assert_eq!(h.lines, vec![2, 4, 5, 6, 7, 8]);
    assert_eq!(h.nemesis.len(), 1);
    assert_eq!(h.nemesis[0].kind, "start");
    assert!(h.nemesis[0].detail.as_deref().unwrap().contains("Cut off"));
}

#[test]
fn a_top_level_list_reads_like_a_vector() {
    let h = read("list.edn");
    assert_eq!(h.events.len(), 4);
    assert_eq!(h.lines, vec![1, 2, 3, 4]);
    let ops = pair(&h).unwrap();
    let result = check(&RegisterModel::register(), &ops, &CheckOptions::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Linearizable);
}

#[test]
fn comments_and_discards_anywhere() {
    let h = read("comments.edn");
    assert_eq!(h.events.len(), 4);
    assert_eq!(h.lines, vec![2, 4, 6, 7]);
    assert!(h.events.iter().all(|e| e.process != 9));
}

#[test]
fn a_nemesis_only_history_is_valid() {
    let h = read("nemesis-only.edn");
    assert!(h.events.is_empty());
    assert_eq!(h.nemesis.len(), 2);
    assert_eq!(h.nemesis[0].kind, "start-partition");
    assert_eq!(
        (h.nemesis[0].start_ns, h.nemesis[0].end_ns),
        (100, Some(200))
    );
    let ops = pair(&h).unwrap();
    let result = check(&RegisterModel::register(), &ops, &CheckOptions::default()).unwrap();
    assert_eq!(result.verdict, Verdict::Linearizable);
    let (_, result) = check_ops(&ops, None, &TxnOptions::default()).unwrap();
    assert_eq!(
        result.verdict(Consistency::StrictSerializable),
        ModelVerdict::Valid
    );
}

#[test]
fn json_lines_carry_transactions() {
    let h = read("txn.jsonl");
    let ops = pair(&h).unwrap();
    let (txns, result) = check_ops(&ops, None, &TxnOptions::default()).unwrap();
    assert_eq!(txns.keys, vec!["x".to_string(), "y".to_string()]);
    assert_eq!(txns.mops_text(0), "[[:append x 1] [:r y [1]]]");
    assert_eq!(
        result.counts.keys().copied().collect::<Vec<_>>(),
        vec![AnomalyKind::G1c]
    );
}
