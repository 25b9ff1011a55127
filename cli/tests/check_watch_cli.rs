//! `dengine check --model watch` end to end, on the corpus in
//! histories/testdata/watch: verdicts, explanations, exit codes, the JSON
//! report, and a file named watch.jsonl found without --model.

mod support;

use std::path::PathBuf;

use support::{TestDir, check_command as dengine, stdout};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../histories/testdata/watch")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn a_valid_history_exits_0_and_a_missed_event_exits_1() {
    let out = dengine(&["--model", "watch", &fixture("valid.jsonl")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("watch: valid (2 watchers"),
        "{}",
        stdout(&out)
    );

    let out = dengine(&["--model", "watch", &fixture("missed.jsonl")]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("watch: invalid, violates reliable ×1"),
        "{text}"
    );
    assert!(
        text.contains("reliable: watcher 2 missed put w/b = \"b1\" at revision 3"),
        "{text}"
    );
}

#[test]
fn the_json_report_lists_violations_by_guarantee() {
    let dir = TestDir::new("check-watch-json");
    let json = dir.0.join("report.json");
    let json_arg = json.display().to_string();
    let out = dengine(&[
        "--model",
        "watch",
        "--json",
        &json_arg,
        &fixture("valid.jsonl"),
        &fixture("split.jsonl"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("total: 2 histories: 1 linearizable or valid, 1 not"));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let watch = doc["watch"].as_array().unwrap();
    assert_eq!(watch[0]["verdict"], "valid");
    assert_eq!(watch[1]["verdict"], "invalid");
    assert_eq!(watch[1]["by_guarantee"]["atomic"], 1);
    let v = &watch[1]["violations"][0];
    assert_eq!(v["guarantee"], "atomic");
    assert_eq!(
        (v["watcher"].as_u64(), v["revision"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(v["line"], 9);
}

#[test]
fn the_html_page_lists_the_violations() {
    let dir = TestDir::new("check-watch-html");
    let html = dir.0.join("watch.html");
    let html_arg = html.display().to_string();
    let out = dengine(&[
        "--model",
        "watch",
        "--html",
        &html_arg,
        &fixture("split.jsonl"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let page = std::fs::read_to_string(&html).expect("the page was written");
    assert!(page.contains("<td>atomic</td><td>1</td>"), "{page}");
    assert!(page.contains("class=\"verdict bad\""));
}

#[test]
fn a_file_named_watch_jsonl_needs_no_model_and_garbage_is_unreadable() {
    let dir = TestDir::new("check-watch-auto");
    let path = dir.0.join("watch.jsonl");
    std::fs::copy(fixture("ordered.jsonl"), &path).unwrap();
    let out = dengine(&[&path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("violates ordered"),
        "{}",
        stdout(&out)
    );

    std::fs::write(&path, b"{\"kind\":\"end\",\"watcher\":1}\nnot json\n").unwrap();
    let out = dengine(&[&path.display().to_string()]);
    assert_eq!(out.status.code(), Some(65), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: bad watch record"), "{err}");
}
