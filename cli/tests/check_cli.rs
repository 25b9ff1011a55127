//! `dengine check` end to end: verdicts, exit codes, reports, bad input.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{check_command as dengine, stdout};

/// Porcupine's histories, copied into `testdata/porcupine-kv` (MIT, LICENSE.md there).
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/porcupine-kv")
        .join(name)
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A scratch directory unique to the test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dengine-check-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn fixture_verdicts_and_exit_codes() {
    let ok = fixture("c10-ok.txt");
    let out = dengine(&[ok.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("c10-ok.txt: linearizable"));

    let bad = fixture("c10-bad.txt");
    let out = dengine(&["--format", "porcupine-kv", bad.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).contains("not linearizable"));
    assert!(stdout(&out).contains("cannot place"));
}

#[test]
fn several_files_give_one_verdict_each_and_a_total() {
    let files: Vec<String> = ["c01-ok.txt", "c01-bad.txt", "c10-ok.txt"]
        .iter()
        .map(|f| fixture(f).display().to_string())
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let out = dengine(&args);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.contains(
        "total: 3 histories: 2 linearizable, 1 not linearizable, 0 unknown, 0 unreadable"
    ));
}

#[test]
fn single_partition_agrees() {
    let out = dengine(&[
        "--single-partition",
        fixture("c01-bad.txt").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1);
    let out = dengine(&[
        "--single-partition",
        fixture("c01-ok.txt").to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0);
}

#[test]
fn json_and_html_reports() {
    let dir = scratch("reports");
    let json = dir.join("r.json");
    let html = dir.join("t.html");
    let bad = fixture("c01-bad.txt");
    let out = dengine(&[
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 1);
    let report = std::fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"not_linearizable\": 1"));
    assert!(report.contains("\"longest_prefix\""));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<svg") && page.contains("stuck"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "self-contained"
    );
}

#[test]
fn nemesis_beside_the_history_gets_a_lane() {
    let dir = scratch("nemesis");
    let history = write(
        &dir,
        "history.jsonl",
        br#"{"index":0,"time_ns":10,"process":1,"type":"invoke","f":"write","value":1}
{"index":1,"time_ns":20,"process":1,"type":"ok","f":"write","value":1}
{"index":2,"time_ns":30,"process":2,"type":"invoke","f":"read"}
{"index":3,"time_ns":40,"process":2,"type":"ok","f":"read","value":1}
"#,
    );
    write(
        &dir,
        "nemesis.jsonl",
        br#"{"start_ns":15,"end_ns":35,"kind":"partition","targets":["n1"]}"#,
    );
    let html = dir.join("t.html");
    let out = dengine(&["--html", html.to_str().unwrap(), &history]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("class=\"fault\""));
    assert!(page.contains("partition n1"));
}

#[test]
fn deadline_gives_exit_code_2() {
    let dir = scratch("deadline");
    // 30 concurrent writes, then a read of a value never written: refuting
    // it takes about 30 * 2^29 steps.
    let mut text = String::new();
    for p in 0..30 {
        text.push_str(&format!(
            "{{\"process\":{p},\"type\":\"invoke\",\"f\":\"write\",\"value\":{p}}}\n"
        ));
    }
    for p in 0..30 {
        text.push_str(&format!(
            "{{\"process\":{p},\"type\":\"ok\",\"f\":\"write\",\"value\":{p}}}\n"
        ));
    }
    text.push_str("{\"process\":99,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":99,\"type\":\"ok\",\"f\":\"read\",\"value\":-1}\n");
    let path = write(&dir, "slow.jsonl", text.as_bytes());
    let out = dengine(&["--timeout", "300ms", "--model", "register", &path]);
    assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("unknown (deadline reached"));
}

/// Asserts exit 65 and a message naming `line` of the file.
fn assert_unreadable(name: &str, bytes: &[u8], extra: &[&str], line: usize) {
    let dir = scratch(name);
    let path = write(&dir, name, bytes);
    let mut args: Vec<&str> = extra.to_vec();
    args.push(&path);
    let out = dengine(&args);
    let err = stderr(&out);
    assert_eq!(code(&out), 65, "{name}: {err}");
    assert!(err.contains(&path), "{name}: names the file: {err}");
    assert!(
        err.contains(&format!("line {line}:")),
        "{name}: names line {line}: {err}"
    );
}

#[test]
fn bad_input_exits_65_naming_the_line() {
    let ok_line = b"{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1}\n";
    let truncated = [&ok_line[..], b"{\"process\":1,\"type\":\"ok\",\"f\":\"wri"].concat();
    assert_unreadable("truncated.jsonl", &truncated, &[], 2);

    let unknown_op = [&ok_line[..], b"{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n{\"process\":2,\"type\":\"invoke\",\"f\":\"frobnicate\"}\n"].concat();
    assert_unreadable("unknown-op.jsonl", &unknown_op, &["--model", "register"], 3);

    let orphan = [
        &ok_line[..],
        b"{\"process\":2,\"type\":\"ok\",\"f\":\"write\",\"value\":1}\n",
    ]
    .concat();
    assert_unreadable("orphan.jsonl", &orphan, &[], 2);

    let not_utf8 = [
        &ok_line[..],
        &ok_line[..],
        b"{\"process\":1,\"type\":\"ok\",\"f\":\"wr\xffite\"}\n",
    ]
    .concat();
    assert_unreadable("binary.jsonl", &not_utf8, &[], 3);

    let truncated_edn = b"[{:process 0, :type :invoke, :f :read, :value nil}\n {:process 0, :type :ok, :f :read, :val";
    assert_unreadable("truncated.edn", truncated_edn, &[], 2);

    let dir = scratch("empty");
    let path = write(&dir, "empty.jsonl", b"");
    let out = dengine(&[&path]);
    assert_eq!(code(&out), 65);
    assert!(stderr(&out).contains("no operations"));

    let unknown_type = b"{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :maybe, :f :read, :value nil}\n";
    assert_unreadable(
        "unknown-type.edn",
        unknown_type,
        &["--format", "jepsen-edn"],
        2,
    );
}

#[test]
fn missing_file_is_unreadable_and_others_still_checked() {
    let ok = fixture("c01-ok.txt");
    let out = dengine(&[ok.to_str().unwrap(), "/nonexistent/history.jsonl"]);
    assert_eq!(code(&out), 65);
    assert!(stdout(&out).contains("c01-ok.txt: linearizable"));
    assert!(stdout(&out).contains("1 unreadable"));
}

#[test]
fn jepsen_log_with_a_timed_out_read() {
    let dir = scratch("log");
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
               INFO  jepsen.util - 0\t:ok\t:write\t1\n\
               INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
               INFO  jepsen.util - 1\t:fail\t:read\t:timed-out\n\
               INFO  jepsen.util - 2\t:invoke\t:cas\t[1 4]\n\
               INFO  jepsen.util - 2\t:ok\t:cas\t[1 4]\n\
               INFO  jepsen.util - 3\t:invoke\t:read\tnil\n\
               INFO  jepsen.util - 3\t:ok\t:read\t1\n";
    let path = write(&dir, "jepsen.log", log.as_bytes());
    let out = dengine(&[&path]);
    assert_eq!(
        code(&out),
        1,
        "a read of 1 after cas 1->4 completed: {}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("cas-register"));
}
