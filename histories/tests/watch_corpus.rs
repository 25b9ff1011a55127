//! The hand-written watch corpus (histories/testdata/watch, see its
//! README): the valid history passes with no violation, and each broken one
//! is found as the guarantee and class it breaks.

use std::path::PathBuf;

use d_engine_histories::txn::ModelVerdict;
use d_engine_histories::watch::{WatchOptions, WatchReport, check_bytes};

fn report(name: &str) -> WatchReport {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/watch")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    check_bytes(name, &bytes, &WatchOptions::default()).unwrap()
}

/// File, guarantee, class, and a phrase of the explanation.
const BROKEN: &[(&str, &str, &str, &str)] = &[
    (
        "ordered.jsonl",
        "ordered",
        "backwards",
        "at revision 2 (line 8) after revision 3",
    ),
    (
        "duplicate.jsonl",
        "unique",
        "duplicate",
        "at revision 2 twice: at line 9 and again at line 12",
    ),
    (
        "split.jsonl",
        "atomic",
        "split",
        "apart from the rest of revision 3 at line 8",
    ),
    (
        "missed.jsonl",
        "reliable",
        "missed",
        "watcher 2 missed put w/b = \"b1\" at revision 3",
    ),
    (
        "too-early.jsonl",
        "resumable",
        "too-early",
        "on a stream opened from revision 3 (line 10)",
    ),
    (
        "progress-ahead.jsonl",
        "bookmarkable",
        "progress-ahead",
        "process 3's write of x/d invoked later (line 23, time 150 ns) committed at revision 6",
    ),
    (
        "after-progress.jsonl",
        "bookmarkable",
        "after-progress",
        "after a progress notification for revision 5 (line 17)",
    ),
    (
        "prev-kv.jsonl",
        "prev_kv",
        "prev-value",
        "got prev_value \"a0\"",
    ),
    (
        "phantom.jsonl",
        "reliable",
        "phantom",
        "phantom event at line 17: put w/b = \"zz\" at revision 4",
    ),
    (
        "disagree.jsonl",
        "reliable",
        "disagree",
        "but watcher 1 got put w/b = \"b2\" (line 27) there",
    ),
    (
        "header.jsonl",
        "header",
        "header",
        "whose header revision is 2",
    ),
];

#[test]
fn the_valid_history_is_valid() {
    let r = report("valid.jsonl");
    assert_eq!(r.verdict, ModelVerdict::Valid, "{:#?}", r.violations);
    assert_eq!((r.watchers, r.segments, r.writes), (2, 3, 6));
    assert!(r.verdict_line().contains("watch: valid (2 watchers"));
}

#[test]
fn no_watchers_is_valid() {
    let r = report("no-watchers.jsonl");
    assert_eq!(r.verdict, ModelVerdict::Valid);
    assert!(
        r.verdict_line().contains("no watch streams"),
        "{}",
        r.verdict_line()
    );
}

#[test]
fn each_broken_history_is_found_for_what_it_breaks() {
    for (file, guarantee, class, phrase) in BROKEN {
        let r = report(file);
        assert_eq!(r.verdict, ModelVerdict::Invalid, "{file}");
        let found = r
            .violations
            .iter()
            .find(|v| v.guarantee.as_str() == *guarantee && v.class == *class);
        let Some(v) = found else {
            panic!("{file}: no {guarantee}/{class} in {:#?}", r.violations);
        };
        assert!(v.message.contains(phrase), "{file}: {}", v.message);
        assert!(r.verdict_line().contains(guarantee), "{}", r.verdict_line());
    }
}

/// Only the guarantee each file breaks, except where one fault breaks two
/// (a resume that repeats an event starts too early as well).
#[test]
fn broken_histories_break_nothing_else() {
    for (file, guarantee, _, _) in BROKEN {
        let r = report(file);
        let mut others: Vec<&str> = r
            .by_guarantee
            .keys()
            .copied()
            .filter(|g| g != guarantee)
            .collect();
        if *file == "duplicate.jsonl" {
            others.retain(|g| *g != "resumable");
        }
        assert!(
            others.is_empty(),
            "{file}: also {others:?}: {:#?}",
            r.violations
        );
    }
}
