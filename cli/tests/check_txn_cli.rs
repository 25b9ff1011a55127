//! `dengine check --model list-append|rw-register --consistency ...` end to
//! end, on the hand-written corpus in histories/testdata/txn.

mod support;

use std::path::PathBuf;

use support::{check_command as dengine, stdout};

fn fixture(dir: &str, name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../histories/testdata")
        .join(dir)
        .join(name)
        .display()
        .to_string()
}

#[test]
fn write_skew_is_snapshot_isolation_but_not_serializable() {
    let skew = fixture("txn", "g2-item.edn");
    let out = dengine(&[
        "--model",
        "list-append",
        "--consistency",
        "snapshot-isolation",
        &skew,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("snapshot-isolation: valid"));

    let out = dengine(&[
        "--model",
        "list-append",
        "--consistency",
        "serializable",
        &skew,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("serializable: invalid, ruled out by G2-item"),
        "{text}"
    );
    assert!(text.contains("read key x as []"), "{text}");
}

#[test]
fn transactions_are_recognised_without_model_and_report_to_json_and_html() {
    let dir = std::env::temp_dir().join(format!("dengine-check-txn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let html = dir.join("report.html");
    let stale = fixture("txn", "g-single-realtime.edn");
    let register = fixture("txn", "register-g-single.edn");
    let out = dengine(&[
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        &stale,
        &register,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("strict-serializable: invalid, ruled out by G-single-realtime"),
        "{text}"
    );
    assert!(text.contains("(rw-register"), "{text}");
    assert!(
        text.contains("total: 2 histories: 0 linearizable or valid, 2 not linearizable or invalid"),
        "{text}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let txns = doc["transactions"].as_array().unwrap();
    assert_eq!(txns.len(), 2);
    assert_eq!(txns[0]["verdict"], "invalid");
    assert_eq!(txns[0]["ruled_out_by"][0], "G-single-realtime");
    let page = std::fs::read_to_string(dir.join("report-g-single-realtime.html")).unwrap();
    assert!(page.contains("<h3>G-single-realtime</h3>"));
}

#[test]
fn a_nemesis_only_history_is_valid() {
    let only_faults = fixture("import", "nemesis-only.edn");
    let out = dengine(&[&only_faults]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("only nemesis operations: 2 fault events"));
    let out = dengine(&["--model", "list-append", &only_faults]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("strict-serializable: valid"));
}
