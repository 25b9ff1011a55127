//! The six key-value histories from Porcupine's test data, whose verdicts are
//! known (see testdata/porcupine-kv/README.md; MIT, LICENSE.md there).

use std::path::PathBuf;
use std::time::Duration;

use d_engine_histories::{CheckOptions, Format, KvModel, Operation, Verdict, check, import, pair};

fn fixture(name: &str) -> Vec<Operation> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/porcupine-kv")
        .join(format!("{name}.txt"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pair(&import::read(Format::PorcupineKv, &bytes).unwrap()).unwrap()
}

fn verdict(name: &str, single_partition: bool) -> Verdict {
    let options = CheckOptions {
        single_partition,
        timeout: Some(Duration::from_secs(600)),
        ..CheckOptions::default()
    };
    let result = check(&KvModel, &fixture(name), &options).unwrap();
    if result.verdict == Verdict::Illegal {
        let p = result.failing_partition().unwrap();
        assert!(
            !p.unplaceable.is_empty(),
            "{name}: an Illegal verdict names ops that cannot be placed"
        );
        assert!(p.longest_prefix.iter().all(|op| p.ops.contains(op)));
    }
    result.verdict
}

#[test]
fn per_key_verdicts_match_the_readme() {
    for (name, expected) in [
        ("c01-ok", Verdict::Linearizable),
        ("c01-bad", Verdict::Illegal),
        ("c10-ok", Verdict::Linearizable),
        ("c10-bad", Verdict::Illegal),
        ("c50-ok", Verdict::Linearizable),
        ("c50-bad", Verdict::Illegal),
    ] {
        assert_eq!(verdict(name, false), expected, "{name}");
    }
}

#[test]
fn single_partition_verdicts_match_the_readme() {
    assert_eq!(verdict("c01-ok", true), Verdict::Linearizable);
    assert_eq!(verdict("c01-bad", true), Verdict::Illegal);
    assert_eq!(verdict("c10-ok", true), Verdict::Linearizable);
    assert_eq!(verdict("c10-bad", true), Verdict::Illegal);
}

#[test]
fn fixture_sizes_match_the_readme() {
    for (name, invocations) in [
        ("c01-ok", 58),
        ("c01-bad", 38),
        ("c10-ok", 337),
        ("c10-bad", 405),
        ("c50-ok", 1712),
        ("c50-bad", 2024),
    ] {
        assert_eq!(fixture(name).len(), invocations, "{name}");
    }
}
