//! Renders reports from small synthetic run directories and checks the files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use d_engine_reports::{RunKind, render};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "d-engine-reports-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One process per key writes then reads its own value, 10 s long, with a
/// partition from 3 to 5 s and a kill from 6 to 7 s.
fn chaos_fixture(dir: &Path) {
    let mut h = String::new();
    let mut index = 0;
    let mut event = |h: &mut String, t: u64, p: u64, ty: &str, f: &str, v: &str| {
        let _ = writeln!(
            h,
            r#"{{"index":{index},"time_ns":{t},"process":{p},"type":"{ty}","f":"{f}","key":"k{p}","value":{v}}}"#
        );
        index += 1;
    };
    // Interleave the two processes in time order.
    let mut t = 0u64;
    for i in 0..100u64 {
        for p in 0..2u64 {
            let lat = if (30..50).contains(&i) {
                40_000_000
            } else {
                2_000_000 + p * 500_000
            };
            event(&mut h, t, p, "invoke", "write", &i.to_string());
            event(&mut h, t + lat, p, "ok", "write", &i.to_string());
            t += lat + 1_000_000;
            event(&mut h, t, p, "invoke", "read", "null");
            let (ty, v) = if i % 17 == 0 {
                ("fail", "null")
            } else {
                ("ok", "")
            };
            let v = if v.is_empty() {
                i.to_string()
            } else {
                v.to_owned()
            };
            event(&mut h, t + 3_000_000, p, ty, "read", &v);
            t += 4_000_000;
        }
        t = t.max(i * 100_000_000);
    }
    std::fs::write(dir.join("history.jsonl"), h).unwrap();
    std::fs::write(
        dir.join("nemesis.jsonl"),
        concat!(
            r#"{"start_ns":3000000000,"end_ns":5000000000,"kind":"partition","targets":["n1"],"detail":"n1 | n2,n3"}"#,
            "\n",
            r#"{"start_ns":6000000000,"end_ns":7000000000,"kind":"kill","targets":["n2"]}"#,
            "\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("summary.json"),
        r#"{"target":"dengine","nodes":3,"seed":7,"duration_s":10.0,"keys":2,"clients":2,
            "consistency":"linearizable","verdict":"linearizable","recovered":true,
            "longest_unavailability_ms":1200,"longest_unavailability_at_ms":3100}"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("nodes/node1")).unwrap();
    std::fs::write(dir.join("nodes/node1/node.log"), "hello\n").unwrap();
}

fn bench_fixture(dir: &Path, target: &str, ops: u64, p50: u64) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("summary.json"),
        format!(
            r#"{{"schema_version":1,"target":"{target}","endpoints":["a","b","c"],"status":"ok","error":null,
               "workload":"write","mode":"closed","clients":8,"keys":100,"value_size":64,
               "duration_s":5.0,"ops":{},"ops_per_sec":{ops},"errors":{{"total":0}},
               "latency_us":{{"samples":10,"p50":{p50},"p90":{},"p99":{},"p999":{},"max":{},"mean":1.0}}}}"#,
            ops * 5,
            p50 * 2,
            p50 * 3,
            p50 * 4,
            p50 * 5
        ),
    )
    .unwrap();
    let mut csv = String::from("second,ops,errors,p50_us,p99_us\n");
    for s in 0..5 {
        let _ = writeln!(csv, "{s},{ops},0,{p50},{}", p50 * 3);
    }
    std::fs::write(dir.join("timeseries.csv"), csv).unwrap();
    // latency.hlog: one interval histogram per second, microseconds.
    let mut hlog = Vec::new();
    let mut serializer = hdrhistogram::serialization::V2DeflateSerializer::new();
    let mut w = hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder::new()
        .begin_log_with(&mut hlog, &mut serializer)
        .unwrap();
    for s in 0..5u64 {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for i in 0..1000u64 {
            h.record(p50 / 2 + i * p50 / 1000).unwrap();
        }
        h.record(p50 * 50).unwrap();
        w.write_histogram(
            &h,
            std::time::Duration::from_secs(s),
            std::time::Duration::from_secs(1),
            None,
        )
        .unwrap();
    }
    drop(w);
    std::fs::write(dir.join("latency.hlog"), hlog).unwrap();
}

fn check_png(p: &Path) {
    let b = std::fs::read(p).unwrap();
    assert!(
        b.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        p.display()
    );
    assert!(b.len() > 5_000, "{} is suspiciously small", p.display());
}

/// Well-formed enough: one root `<svg>`, every tag closed in order.
fn check_svg(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text.as_str();
    let mut roots = 0;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("unterminated tag") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "{}", p.display());
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap().to_owned();
            if stack.is_empty() {
                roots += 1;
                assert_eq!(name, "svg");
            }
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "{}: unclosed {stack:?}", p.display());
    assert_eq!(roots, 1);
    text
}

#[test]
fn chaos_report() {
    let dir = temp_dir("chaos");
    chaos_fixture(&dir);
    let paths = render(&dir).unwrap();
    assert_eq!(paths.kind, RunKind::Chaos);
    let index = std::fs::read_to_string(&paths.index).unwrap();
    assert_eq!(paths.plots.len(), 6);
    for p in &paths.plots {
        let rel = p.strip_prefix(&dir).unwrap().to_str().unwrap();
        assert!(index.contains(rel), "index.html does not link {rel}");
        match p.extension().unwrap().to_str().unwrap() {
            "png" => check_png(p),
            _ => {
                check_svg(p);
            }
        }
    }
    let lat = check_svg(&dir.join("plots/latency.svg"));
    for needle in [
        "time since start (s)",
        "latency (ms, log scale)",
        "p50 per second",
        "p99 per second",
        "partition n1",
        "kill n2",
    ] {
        assert!(lat.contains(needle), "latency.svg lacks {needle:?}");
    }
    let tput = check_svg(&dir.join("plots/throughput.svg"));
    for needle in ["operations per second (ops/s)", "ok ops/s", "partition n1"] {
        assert!(tput.contains(needle), "throughput.svg lacks {needle:?}");
    }
    let pct = check_svg(&dir.join("plots/percentiles.svg"));
    assert!(pct.contains("latency (ms, log)") && pct.contains("p99"));
    assert!(index.contains("timeline.html"));
    assert!(dir.join("timeline.html").is_file());
    assert!(index.contains("nodes/node1/node.log"));
    assert!(index.contains("linearizable, recovered"));
    assert!(index.contains("partition ×1"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_report() {
    let dir = temp_dir("compare");
    bench_fixture(&dir.join("dengine"), "dengine", 5000, 2000);
    bench_fixture(&dir.join("etcd"), "etcd", 3000, 4000);
    std::fs::write(dir.join("compare.md"), "# compare\n").unwrap();
    let paths = render(&dir).unwrap();
    assert_eq!(paths.kind, RunKind::Compare);
    let index = std::fs::read_to_string(&paths.index).unwrap();
    for p in &paths.plots {
        let rel = p.strip_prefix(&dir).unwrap().to_str().unwrap();
        assert!(index.contains(rel), "index.html does not link {rel}");
        if p.extension().unwrap() == "png" {
            check_png(p);
        } else {
            check_svg(p);
        }
    }
    let bars = check_svg(&dir.join("plots/compare.svg"));
    for needle in [
        "throughput (ops/s)",
        "p50 latency (ms)",
        "p99 latency (ms)",
        "dengine",
        "etcd",
    ] {
        assert!(bars.contains(needle), "compare.svg lacks {needle:?}");
    }
    let pct = check_svg(&dir.join("plots/percentiles.svg"));
    assert!(pct.contains("(HDR, latency.hlog)") && pct.contains("p99.9"));
    let _ = std::fs::remove_dir_all(&dir);

    let single = temp_dir("bench");
    bench_fixture(&single, "dengine", 5000, 2000);
    let paths = render(&single).unwrap();
    assert_eq!(paths.kind, RunKind::Bench);
    let lat = check_svg(&single.join("plots/latency.svg"));
    assert!(lat.contains("p99 per second") && lat.contains("time since start (s)"));
    let _ = std::fs::remove_dir_all(&single);
}
