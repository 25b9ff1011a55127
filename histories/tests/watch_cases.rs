//! Small watch histories for the edges where a checker could report what is
//! not there: deletes of absent keys, writes of unknown outcome, filters,
//! watches from "now", and histories that make no sense.

use std::time::Duration;

use d_engine_histories::txn::ModelVerdict;
use d_engine_histories::watch::synth::history;
use d_engine_histories::watch::{WatchOptions, WatchReport, check, check_bytes};

fn run(lines: &[&str]) -> WatchReport {
    let text = lines.join("\n");
    check_bytes("case", text.as_bytes(), &WatchOptions::default()).unwrap()
}

fn classes(r: &WatchReport) -> Vec<&'static str> {
    r.violations.iter().map(|v| v.class).collect()
}

const PUT_A1: &str = r#"[{"op":"put","key":"w/a","value":"a1"}]"#;

fn write(process: u64, kind: &str, ops: &str, extra: &str, time: u64) -> String {
    format!(
        r#"{{"kind":"write","process":{process},"type":"{kind}","ops":{ops}{extra},"time_ns":{time}}}"#
    )
}

#[test]
fn a_delete_of_an_absent_key_is_no_event() {
    let del = r#"[{"op":"delete","key":"w/b"}]"#;
    let r = run(&[
        r#"{"kind":"watch","watcher":1,"prefix":"w/","start_revision":1,"prev_kv":true,"time_ns":1}"#,
        &write(1, "invoke", PUT_A1, "", 2),
        &write(1, "ok", PUT_A1, r#","revision":2"#, 3),
        // Deletes nothing, so it reports the revision of the put.
        &write(2, "invoke", del, "", 4),
        &write(2, "ok", del, r#","revision":2"#, 5),
        r#"{"kind":"events","watcher":1,"revision":2,"events":[{"type":"put","key":"w/a","value":"a1","mod_revision":2,"prev_value":null}],"time_ns":6}"#,
        r#"{"kind":"progress","watcher":1,"revision":2,"time_ns":7}"#,
    ]);
    assert_eq!(r.verdict, ModelVerdict::Valid, "{:#?}", r.violations);
}

/// An `info` put on w/a that no watcher saw may sit below revision 3, so
/// the prev_value `x` at 3 is not provably wrong; invoked after the event
/// arrived, it cannot, and the prev_value is wrong.
#[test]
fn prev_kv_is_checked_only_where_the_history_is_complete() {
    let put_a2 = r#"[{"op":"put","key":"w/a","value":"a2"}]"#;
    let put_x = r#"[{"op":"put","key":"w/a","value":"x"}]"#;
    let case = |info_time: u64| {
        run(&[
            r#"{"kind":"watch","watcher":1,"prefix":"w/","start_revision":3,"prev_kv":true,"time_ns":1}"#,
            &write(1, "invoke", PUT_A1, "", 2),
            &write(1, "ok", PUT_A1, r#","revision":2"#, 3),
            &write(3, "invoke", put_x, "", info_time),
            &write(3, "info", put_x, "", info_time + 1),
            &write(2, "invoke", put_a2, "", 10),
            &write(2, "ok", put_a2, r#","revision":3"#, 11),
            r#"{"kind":"events","watcher":1,"revision":3,"events":[{"type":"put","key":"w/a","value":"a2","mod_revision":3,"prev_value":"x"}],"time_ns":20}"#,
        ])
    };
    assert_eq!(
        case(4).verdict,
        ModelVerdict::Valid,
        "{:#?}",
        case(4).violations
    );
    let late = case(30);
    assert_eq!(classes(&late), ["prev-value"], "{:#?}", late.violations);
    assert!(
        late.violations[0]
            .message
            .contains("the value just before was \"a1\"")
    );
}

/// Watcher 1 sees an `info` write apply (its put on w/a at 4), so its put
/// on w/b at 4 happened too, and watcher 2, past 4, missed it.
#[test]
fn a_write_seen_to_apply_is_committed_whole() {
    let ops = r#"[{"op":"put","key":"w/a","value":"a1"},{"op":"put","key":"w/b","value":"b1"}]"#;
    let r = run(&[
        r#"{"kind":"watch","watcher":1,"prefix":"w/a","start_revision":1,"time_ns":1}"#,
        r#"{"kind":"watch","watcher":2,"prefix":"w/","start_revision":1,"time_ns":1}"#,
        &write(1, "invoke", ops, "", 2),
        &write(1, "info", ops, r#","error":"timeout""#, 3),
        r#"{"kind":"events","watcher":1,"revision":4,"events":[{"type":"put","key":"w/a","value":"a1","mod_revision":4}],"time_ns":6}"#,
        r#"{"kind":"events","watcher":2,"revision":4,"events":[{"type":"put","key":"w/a","value":"a1","mod_revision":4}],"time_ns":6}"#,
    ]);
    assert_eq!(classes(&r), ["missed"], "{:#?}", r.violations);
    assert_eq!(
        (r.violations[0].watcher, r.violations[0].key.as_str()),
        (2, "w/b")
    );
}

#[test]
fn filters_and_a_watch_from_now() {
    let del = r#"[{"op":"delete","key":"w/a"}]"#;
    let r = run(&[
        &write(1, "invoke", PUT_A1, "", 2),
        &write(1, "ok", PUT_A1, r#","revision":2"#, 3),
        r#"{"kind":"watch","watcher":1,"prefix":"w/","start_revision":1,"filters":["noput"],"time_ns":4}"#,
        r#"{"kind":"watch","watcher":2,"prefix":"w/","start_revision":0,"time_ns":4}"#,
        &write(1, "invoke", del, "", 5),
        &write(1, "ok", del, r#","revision":3"#, 6),
        r#"{"kind":"events","watcher":1,"revision":3,"events":[{"type":"delete","key":"w/a","mod_revision":3}],"time_ns":7}"#,
        r#"{"kind":"events","watcher":2,"revision":3,"events":[{"type":"delete","key":"w/a","mod_revision":3}],"time_ns":7}"#,
        r#"{"kind":"progress","watcher":1,"revision":3,"time_ns":8}"#,
        r#"{"kind":"progress","watcher":2,"revision":3,"time_ns":8}"#,
    ]);
    assert_eq!(r.verdict, ModelVerdict::Valid, "{:#?}", r.violations);
}

#[test]
fn histories_that_make_no_sense_are_errors_naming_the_line() {
    let bad = |lines: &[&str]| {
        check_bytes("bad", lines.join("\n").as_bytes(), &WatchOptions::default()).unwrap_err()
    };
    let e = bad(&["", &write(1, "ok", PUT_A1, r#","revision":2"#, 3)]);
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("never invoked"), "{e}");
    let e = bad(&[r#"{"kind":"progress","watcher":4,"revision":2}"#]);
    assert!(
        e.to_string()
            .contains("line 1: watcher 4 receives on a stream that is not open")
    );
    let e = bad(&[
        &write(1, "invoke", PUT_A1, "", 1),
        &write(1, "invoke", PUT_A1, "", 2),
    ]);
    assert!(e.message.contains("outstanding"), "{e}");
    let e = bad(&[
        &write(1, "invoke", PUT_A1, "", 1),
        &write(1, "ok", PUT_A1, "", 2),
    ]);
    assert!(e.message.contains("without a revision"), "{e}");
}

#[test]
fn a_deadline_gives_unknown_never_a_violation() {
    let records = history(3, 20_000);
    let options = WatchOptions {
        timeout: Some(Duration::ZERO),
        ..WatchOptions::default()
    };
    let r = check("long", &records, &options).unwrap();
    assert_eq!(r.verdict, ModelVerdict::Unknown, "{}", r.verdict_line());
    assert!(
        r.verdict_line().contains("unknown (deadline reached"),
        "{}",
        r.verdict_line()
    );
    let full = check("long", &records, &WatchOptions::default()).unwrap();
    assert_eq!(full.verdict, ModelVerdict::Valid, "{:#?}", full.violations);
}

#[test]
fn an_event_the_stream_does_not_watch_is_reported() {
    let r = run(&[
        &write(1, "invoke", PUT_A1, "", 2),
        &write(1, "ok", PUT_A1, r#","revision":2"#, 3),
        r#"{"kind":"watch","watcher":1,"prefix":"w/b","start_revision":1,"time_ns":4}"#,
        r#"{"kind":"watch","watcher":2,"prefix":"w/","start_revision":1,"filters":["noput"],"time_ns":4}"#,
        r#"{"kind":"events","watcher":1,"revision":2,"events":[{"type":"put","key":"w/a","value":"a1","mod_revision":2}],"time_ns":6}"#,
        r#"{"kind":"events","watcher":2,"revision":2,"events":[{"type":"put","key":"w/a","value":"a1","mod_revision":2}],"time_ns":6}"#,
    ]);
    assert_eq!(
        classes(&r),
        ["unwatched", "unwatched"],
        "{:#?}",
        r.violations
    );
    assert!(
        r.violations[1]
            .message
            .contains("(prefix \"w/\", noput) does not watch"),
        "{}",
        r.violations[1].message
    );
}

#[test]
fn extreme_revisions_and_timeouts_do_not_panic() {
    let r = check_bytes(
        "extreme",
        br#"{"kind":"watch","watcher":1,"prefix":"","start_revision":-9223372036854775808}
{"kind":"progress","watcher":1,"revision":9223372036854775807}
{"kind":"events","watcher":1,"revision":-9223372036854775808,"events":[{"type":"delete","key":"","mod_revision":9223372036854775807}]}
{"kind":"progress","watcher":1,"revision":9223372036854775807}"#,
        &WatchOptions {
            timeout: Some(Duration::MAX),
            ..WatchOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.verdict, ModelVerdict::Invalid);
}
