//! Reports of d-engine runs: from a chaos run directory, a bench run directory
//! or a bench compare directory, render plots (PNG and SVG, drawn with
//! plotters and the bundled DejaVu Sans font, no system font libraries) and a
//! static `index.html` that opens from disk.
//!
//! Everything is written into the run directory: `plots/*.png|svg`,
//! `index.html`, and for chaos runs `timeline.html` (the checker's timeline)
//! when it is not there yet.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use d_engine_histories::{
    CheckOptions, NemesisEvent, Operation, RegisterModel, Status, check, html, pair, read_jsonl,
    read_nemesis_jsonl,
};
use serde_json::Value as Json;

pub mod plot;

use plot::{Bars, Line, PALETTE, PercentileCurves, TimePlot, Window, fmt_num};

/// What kind of run directory was rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Chaos,
    Bench,
    Compare,
}

/// The files a report consists of.
#[derive(Debug, Clone)]
pub struct ReportPaths {
    pub kind: RunKind,
    pub index: PathBuf,
    /// Every plot file written (PNG and SVG).
    pub plots: Vec<PathBuf>,
    /// The checker's timeline (chaos runs), if present or rendered.
    pub timeline: Option<PathBuf>,
}

/// Detects the kind of run in `run_dir` and renders its report.
pub fn render(run_dir: &Path) -> anyhow::Result<ReportPaths> {
    anyhow::ensure!(run_dir.is_dir(), "{} is not a directory", run_dir.display());
    if run_dir.join("history.jsonl").is_file() {
        render_chaos(run_dir)
    } else if run_dir.join("summary.json").is_file() {
        render_bench(run_dir)
    } else if !compare_targets(run_dir)?.is_empty() {
        render_compare(run_dir)
    } else {
        anyhow::bail!(
            "{}: neither a chaos run (history.jsonl), a bench run (summary.json) nor a bench compare (<target>/summary.json)",
            run_dir.display()
        )
    }
}

fn plots_dir(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = run_dir.join("plots");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn read_json(path: &Path) -> Option<Json> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

// ---------------------------------------------------------------- chaos

fn render_chaos(run_dir: &Path) -> anyhow::Result<ReportPaths> {
    let bytes = std::fs::read(run_dir.join("history.jsonl"))?;
    let history = read_jsonl(&bytes).context("reading history.jsonl")?;
    let ops = pair(&history).context("pairing history.jsonl")?;
    let nemesis: Vec<NemesisEvent> = match std::fs::read(run_dir.join("nemesis.jsonl")) {
        Ok(b) => read_nemesis_jsonl(&b).context("reading nemesis.jsonl")?,
        Err(_) => Vec::new(),
    };
    let summary = read_json(&run_dir.join("summary.json")).unwrap_or(Json::Null);
    let check_json = read_json(&run_dir.join("check.json")).unwrap_or(Json::Null);

    let ns = |t: u64| t as f64 / 1e9;
    let mut end_s = summary["duration_s"].as_f64().unwrap_or(0.0);
    for op in &ops {
        for t in [op.call_time_ns, op.ret_time_ns].into_iter().flatten() {
            end_s = end_s.max(ns(t));
        }
    }
    for n in &nemesis {
        end_s = end_s.max(ns(n.end_ns.unwrap_or(n.start_ns)));
    }
    let windows: Vec<Window> = nemesis
        .iter()
        .map(|n| {
            let mut label = n.kind.clone();
            if !n.targets.is_empty() {
                let _ = write!(label, " {}", n.targets.join(","));
            }
            // The detail's first word: "leader", "isolate-one", ...
            if let Some(word) = n
                .detail
                .as_deref()
                .and_then(|d| d.split_whitespace().next())
            {
                let _ = write!(label, " ({word})");
            }
            Window {
                start_s: ns(n.start_ns),
                end_s: n.end_ns.map(ns).unwrap_or(end_s),
                label,
            }
        })
        .collect();

    // Latencies of successful operations: (completion s, invocation s, ms).
    let lat: Vec<(f64, f64, f64)> = ops
        .iter()
        .filter(|o| o.status == Status::Ok)
        .filter_map(|o| {
            let (c, r) = (o.call_time_ns?, o.ret_time_ns?);
            Some((ns(r), ns(c), r.saturating_sub(c) as f64 / 1e6))
        })
        .collect();
    let seconds = end_s.ceil().max(1.0) as usize;
    let mut ok_per_s = vec![0u64; seconds + 1];
    let mut bad_per_s = vec![0u64; seconds + 1];
    let mut per_s: Vec<Vec<f64>> = vec![Vec::new(); seconds + 1];
    for op in &ops {
        let t = op.ret_time_ns.or(op.call_time_ns).map(ns).unwrap_or(0.0);
        let s = (t as usize).min(seconds);
        if op.status == Status::Ok {
            ok_per_s[s] += 1;
        } else {
            bad_per_s[s] += 1;
        }
    }
    for &(done, _, ms) in &lat {
        per_s[(done as usize).min(seconds)].push(ms);
    }
    // The last bucket is partial: leave it out rather than show a false drop.
    let full = (end_s.floor() as usize).max(1);
    ok_per_s.truncate(full);
    bad_per_s.truncate(full);
    per_s.truncate(full);
    let mid = |s: usize| s as f64 + 0.5;
    let dir = plots_dir(run_dir)?;
    let mut plots = Vec::new();
    plots.extend(plot::time_plot(
        &dir,
        "throughput",
        &TimePlot {
            title: "Throughput over time (shaded: faults)",
            y_label: "operations per second (ops/s)",
            log_y: false,
            x_max: end_s,
            lines: vec![
                Line {
                    name: "ok ops/s".into(),
                    points: ok_per_s
                        .iter()
                        .enumerate()
                        .map(|(s, &n)| (mid(s), n as f64))
                        .collect(),
                    color: PALETTE[0],
                },
                Line {
                    name: "failed (incl. cas mismatch) or indeterminate ops/s".into(),
                    points: bad_per_s
                        .iter()
                        .enumerate()
                        .map(|(s, &n)| (mid(s), n as f64))
                        .collect(),
                    color: PALETTE[1],
                },
            ],
            scatter: Vec::new(),
            scatter_name: "",
            windows: &windows,
        },
    )?);
    let (p50s, p99s) = per_second_percentiles(&mut per_s);
    plots.extend(plot::time_plot(
        &dir,
        "latency",
        &TimePlot {
            title: "Latency over time (shaded: faults)",
            y_label: "latency (ms, log scale)",
            log_y: true,
            x_max: end_s,
            lines: vec![
                Line {
                    name: "p50 per second".into(),
                    points: p50s,
                    color: PALETTE[0],
                },
                Line {
                    name: "p99 per second".into(),
                    points: p99s,
                    color: PALETTE[1],
                },
            ],
            scatter: lat.iter().map(|&(_, call, ms)| (call, ms)).collect(),
            scatter_name: "one ok operation",
            windows: &windows,
        },
    )?);
    let mut all: Vec<f64> = lat.iter().map(|l| l.2).collect();
    all.sort_by(f64::total_cmp);
    plots.extend(plot::percentiles(
        &dir,
        "percentiles",
        &PercentileCurves {
            title: "Latency percentiles (ok operations)",
            curves: vec![("all ok operations".into(), curve(&all))],
        },
    )?);

    let timeline = timeline(run_dir, &ops, &nemesis);

    // Summary table.
    let count = |st: Status| ops.iter().filter(|o| o.status == st).count();
    let duration = summary["duration_s"].as_f64().unwrap_or(end_s).max(1e-9);
    let mut faults = BTreeMap::<String, usize>::new();
    for n in &nemesis {
        *faults.entry(n.kind.clone()).or_default() += 1;
    }
    let faults_text = faults
        .iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let verdict = summary["verdict"]
        .as_str()
        .or(check_json["verdict"].as_str())
        .unwrap_or("unknown")
        .to_owned();
    let config = format!(
        "{} nodes, {} keys, {} clients, {} reads, seed {}",
        jtext(&summary["nodes"]),
        jtext(&summary["keys"]),
        jtext(&summary["clients"]),
        jtext(&summary["consistency"]),
        jtext(&summary["seed"]),
    );
    let rows = vec![vec![
        jtext(&summary["target"]),
        config,
        ops.len().to_string(),
        format!("{:.1} ops/s", count(Status::Ok) as f64 / duration),
        format!(
            "p50 {} / p90 {} / p99 {} / max {} ms",
            fmt_num(quantile(&all, 0.5)),
            fmt_num(quantile(&all, 0.9)),
            fmt_num(quantile(&all, 0.99)),
            fmt_num(all.last().copied().unwrap_or(0.0))
        ),
        errors_text(&ops),
        if faults_text.is_empty() {
            "none".into()
        } else {
            faults_text
        },
        format!(
            "{verdict}{}",
            match summary["recovered"].as_bool() {
                Some(true) => ", recovered",
                Some(false) => ", NOT recovered",
                None => "",
            }
        ),
    ]];
    let mut extra = String::new();
    if let Some(ms) = summary["longest_unavailability_ms"].as_u64() {
        let _ = write!(
            extra,
            "<p>Longest unavailability: {ms} ms (at {} ms).</p>",
            jtext(&summary["longest_unavailability_at_ms"])
        );
    }
    let mut links = Vec::new();
    if let Some(t) = &timeline {
        links.push(rel(run_dir, t));
    }
    for f in [
        "summary.json",
        "check.json",
        "history.jsonl",
        "nemesis.jsonl",
        "schedule.json",
    ] {
        if run_dir.join(f).is_file() {
            links.push(f.to_owned());
        }
    }
    links.extend(node_logs(run_dir));
    let title = format!("Chaos run: {}", run_dir.display());
    let index = write_index(run_dir, &title, &rows, &plots, &links, &extra)?;
    Ok(ReportPaths {
        kind: RunKind::Chaos,
        index,
        plots,
        timeline,
    })
}

/// Failed and indeterminate operations per function (a failed cas is
/// usually a value mismatch, not an error of the system).
fn errors_text(ops: &[Operation]) -> String {
    let mut by_f = BTreeMap::<&str, (usize, usize)>::new();
    for o in ops {
        let e = by_f.entry(o.f.as_str()).or_default();
        match o.status {
            Status::Fail => e.0 += 1,
            Status::Info => e.1 += 1,
            Status::Ok => {}
        }
    }
    by_f.iter()
        .filter(|(_, (f, i))| f + i > 0)
        .map(|(f, (fail, info))| format!("{f}: {fail} failed, {info} indeterminate"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The checker's timeline: kept when present, else rendered (re-checking the
/// history with a short deadline). None when that fails.
fn timeline(run_dir: &Path, ops: &[Operation], nemesis: &[NemesisEvent]) -> Option<PathBuf> {
    for name in ["timeline.html", "check.html"] {
        let p = run_dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    let options = CheckOptions {
        timeout: Some(Duration::from_secs(20)),
        ..CheckOptions::default()
    };
    let result = check(&RegisterModel::cas_register(), ops, &options).ok()?;
    let page = html::render("chaos run timeline", ops, nemesis, &result);
    let p = run_dir.join("timeline.html");
    std::fs::write(&p, page).ok()?;
    Some(p)
}

fn node_logs(run_dir: &Path) -> Vec<String> {
    let mut logs = Vec::new();
    for base in [run_dir.join("nodes"), run_dir.to_path_buf()] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("node"))
            })
            .collect();
        dirs.sort();
        for d in dirs {
            if let Ok(files) = std::fs::read_dir(&d) {
                let mut fs: Vec<PathBuf> = files
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "log"))
                    .collect();
                fs.sort();
                logs.extend(fs.iter().map(|f| rel(run_dir, f)));
            }
        }
    }
    logs
}

/// (x, y) points of a line.
type Points = Vec<(f64, f64)>;

fn per_second_percentiles(per_s: &mut [Vec<f64>]) -> (Points, Points) {
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for (s, v) in per_s.iter_mut().enumerate() {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        p50.push((s as f64 + 0.5, quantile(v, 0.5)));
        p99.push((s as f64 + 0.5, quantile(v, 0.99)));
    }
    (p50, p99)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Quantiles from 0 to 99.99% (evenly spaced in -log10(1-q)) and the max.
fn curve(sorted: &[f64]) -> Vec<(f64, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let top = (sorted.len() as f64).log10().min(5.0);
    let mut x = 0.0;
    while x <= top {
        let q = 1.0 - 10f64.powf(-x);
        out.push((q, quantile(sorted, q)));
        x += 0.05;
    }
    out.push((1.0 - 10f64.powf(-top), *sorted.last().unwrap_or(&0.0)));
    out
}

// ---------------------------------------------------------------- bench

struct BenchRun {
    name: String,
    summary: Json,
    /// second, ops, errors, p50 ms, p99 ms
    series: Vec<(f64, f64, f64, f64, f64)>,
}

fn load_bench(dir: &Path, name: String) -> anyhow::Result<BenchRun> {
    let summary = read_json(&dir.join("summary.json"))
        .with_context(|| format!("reading {}/summary.json", dir.display()))?;
    let mut series = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("timeseries.csv")) {
        for line in text.lines().skip(1) {
            let f: Vec<f64> = line
                .split(',')
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            if f.len() >= 5 {
                series.push((f[0], f[1], f[2], f[3] / 1e3, f[4] / 1e3));
            }
        }
    }
    Ok(BenchRun {
        name,
        summary,
        series,
    })
}

/// The whole run's percentile curve (ms) from `latency.hlog`: every
/// interval histogram merged. None when the log is missing or unreadable.
fn hlog_curve(path: &Path) -> Option<Points> {
    use base64::Engine as _;
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    let bytes = std::fs::read(path).ok()?;
    let mut merged: Option<Histogram<u64>> = None;
    let mut de = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.ok()?;
        let LogEntry::Interval(interval) = entry else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .ok()?;
        let h: Histogram<u64> = de.deserialize(&mut raw.as_slice()).ok()?;
        match &mut merged {
            Some(m) => m.add(&h).ok()?,
            None => merged = Some(h),
        }
    }
    let h = merged?;
    if h.is_empty() {
        return None;
    }
    let top = (h.len() as f64).log10().min(5.0);
    let mut out = Vec::new();
    let mut x = 0.0;
    while x <= top {
        let q = 1.0 - 10f64.powf(-x);
        out.push((q, h.value_at_quantile(q) as f64 / 1e3));
        x += 0.05;
    }
    out.push((1.0 - 10f64.powf(-top), h.max() as f64 / 1e3));
    Some(out)
}

/// The run's percentile curve: from `latency.hlog` (HDR) when readable, else
/// the few percentiles of `summary.json`.
fn bench_curve(dir: &Path, s: &Json) -> (Points, &'static str) {
    match hlog_curve(&dir.join("latency.hlog")) {
        Some(c) => (c, "HDR, latency.hlog"),
        None => (summary_curve(s), "summary.json percentiles"),
    }
}

/// The percentile curve from `summary.json`'s latency object (ms).
fn summary_curve(s: &Json) -> Vec<(f64, f64)> {
    let l = &s["latency_us"];
    [
        (0.5, "p50"),
        (0.9, "p90"),
        (0.99, "p99"),
        (0.999, "p999"),
        (0.9999, "max"),
    ]
    .iter()
    .filter_map(|&(q, k)| Some((q, l[k].as_f64()? / 1e3)))
    .collect()
}

fn bench_row(r: &BenchRun) -> Vec<String> {
    let s = &r.summary;
    let l = &s["latency_us"];
    let ms = |k: &str| fmt_num(l[k].as_f64().unwrap_or(0.0) / 1e3);
    vec![
        r.name.clone(),
        format!(
            "{} {} workload, {} clients, {} keys, {} B values, {} endpoints",
            jtext(&s["mode"]),
            jtext(&s["workload"]),
            jtext(&s["clients"]),
            jtext(&s["keys"]),
            jtext(&s["value_size"]),
            s["endpoints"].as_array().map(|a| a.len()).unwrap_or(0),
        ),
        jtext(&s["ops"]),
        format!(
            "{} ops/s",
            fmt_num(s["ops_per_sec"].as_f64().unwrap_or(0.0))
        ),
        format!(
            "p50 {} / p90 {} / p99 {} / p99.9 {} / max {} ms",
            ms("p50"),
            ms("p90"),
            ms("p99"),
            ms("p999"),
            ms("max")
        ),
        jtext(&s["errors"]["total"]),
        "none (bench)".into(),
        jtext(&s["status"]),
    ]
}

fn render_bench(run_dir: &Path) -> anyhow::Result<ReportPaths> {
    let name = read_json(&run_dir.join("summary.json"))
        .and_then(|s| s["target"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "run".into());
    let run = load_bench(run_dir, name)?;
    let dir = plots_dir(run_dir)?;
    let mut plots = Vec::new();
    let x_max = run.series.iter().map(|p| p.0 + 1.0).fold(1.0, f64::max);
    plots.extend(plot::time_plot(
        &dir,
        "throughput",
        &TimePlot {
            title: &format!("{}: throughput over time", run.name),
            y_label: "operations per second (ops/s)",
            log_y: false,
            x_max,
            lines: vec![
                Line {
                    name: "ok ops/s".into(),
                    points: run.series.iter().map(|p| (p.0 + 0.5, p.1)).collect(),
                    color: PALETTE[0],
                },
                Line {
                    name: "errors/s".into(),
                    points: run.series.iter().map(|p| (p.0 + 0.5, p.2)).collect(),
                    color: PALETTE[1],
                },
            ],
            scatter: Vec::new(),
            scatter_name: "",
            windows: &[],
        },
    )?);
    plots.extend(plot::time_plot(
        &dir,
        "latency",
        &TimePlot {
            title: &format!("{}: latency over time", run.name),
            y_label: "latency (ms, log scale)",
            log_y: true,
            x_max,
            lines: vec![
                Line {
                    name: "p50 per second".into(),
                    points: run.series.iter().map(|p| (p.0 + 0.5, p.3)).collect(),
                    color: PALETTE[0],
                },
                Line {
                    name: "p99 per second".into(),
                    points: run.series.iter().map(|p| (p.0 + 0.5, p.4)).collect(),
                    color: PALETTE[1],
                },
            ],
            scatter: Vec::new(),
            scatter_name: "",
            windows: &[],
        },
    )?);
    let (curve, source) = bench_curve(run_dir, &run.summary);
    plots.extend(plot::percentiles(
        &dir,
        "percentiles",
        &PercentileCurves {
            title: &format!("{}: latency percentiles ({source})", run.name),
            curves: vec![(run.name.clone(), curve)],
        },
    )?);
    let mut links = Vec::new();
    for f in ["summary.json", "timeseries.csv", "latency.hlog"] {
        if run_dir.join(f).is_file() {
            links.push(f.to_owned());
        }
    }
    links.extend(node_logs(run_dir));
    let extra = error_note(&run);
    let index = write_index(
        run_dir,
        &format!("Bench run: {}", run_dir.display()),
        &[bench_row(&run)],
        &plots,
        &links,
        &extra,
    )?;
    Ok(ReportPaths {
        kind: RunKind::Bench,
        index,
        plots,
        timeline: None,
    })
}

fn error_note(r: &BenchRun) -> String {
    match r.summary["error"].as_str() {
        Some(e) => format!("<p><b>{}</b>: {}</p>", esc(&r.name), esc(e)),
        None => String::new(),
    }
}

fn compare_targets(run_dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(run_dir)?.flatten() {
        let p = e.path();
        if p.join("summary.json").is_file()
            && let Some(n) = p.file_name().and_then(|n| n.to_str())
        {
            out.push((n.to_owned(), p));
        }
    }
    out.sort();
    Ok(out)
}

fn render_compare(run_dir: &Path) -> anyhow::Result<ReportPaths> {
    let runs: Vec<BenchRun> = compare_targets(run_dir)?
        .into_iter()
        .map(|(n, p)| load_bench(&p, n))
        .collect::<anyhow::Result<_>>()?;
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    let get = |r: &BenchRun, k: &str| r.summary["latency_us"][k].as_f64().unwrap_or(0.0) / 1e3;
    let dir = plots_dir(run_dir)?;
    let mut plots = Vec::new();
    plots.extend(plot::bars(
        &dir,
        "compare",
        &Bars {
            title: "Targets side by side",
            groups: vec![
                (
                    "throughput (ops/s)".into(),
                    runs.iter()
                        .map(|r| r.summary["ops_per_sec"].as_f64().unwrap_or(0.0))
                        .collect(),
                ),
                (
                    "p50 latency (ms)".into(),
                    runs.iter().map(|r| get(r, "p50")).collect(),
                ),
                (
                    "p99 latency (ms)".into(),
                    runs.iter().map(|r| get(r, "p99")).collect(),
                ),
            ],
            targets: &names,
        },
    )?);
    let mut curves = Vec::new();
    let mut sources: Vec<&str> = Vec::new();
    for r in &runs {
        let (curve, source) = bench_curve(&run_dir.join(&r.name), &r.summary);
        curves.push((r.name.clone(), curve));
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    plots.extend(plot::percentiles(
        &dir,
        "percentiles",
        &PercentileCurves {
            title: &format!("Latency percentiles per target ({})", sources.join("; ")),
            curves,
        },
    )?);
    let x_max = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|p| p.0 + 1.0))
        .fold(1.0, f64::max);
    plots.extend(plot::time_plot(
        &dir,
        "throughput",
        &TimePlot {
            title: "Throughput over time per target",
            y_label: "operations per second (ops/s)",
            log_y: false,
            x_max,
            lines: runs
                .iter()
                .enumerate()
                .map(|(i, r)| Line {
                    name: format!("{} ok ops/s", r.name),
                    points: r.series.iter().map(|p| (p.0 + 0.5, p.1)).collect(),
                    color: PALETTE[i % PALETTE.len()],
                })
                .collect(),
            scatter: Vec::new(),
            scatter_name: "",
            windows: &[],
        },
    )?);
    let mut links = Vec::new();
    if run_dir.join("compare.md").is_file() {
        links.push("compare.md".to_owned());
    }
    for r in &runs {
        for f in ["summary.json", "timeseries.csv", "latency.hlog"] {
            if run_dir.join(&r.name).join(f).is_file() {
                links.push(format!("{}/{f}", r.name));
            }
        }
    }
    links.extend(node_logs(run_dir));
    for e in std::fs::read_dir(run_dir)?.flatten() {
        let p = e.path();
        if p.is_dir()
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("cluster-"))
        {
            links.extend(node_logs(&p).into_iter().map(|l| rel(run_dir, &p.join(l))));
        }
    }
    let extra: String = runs.iter().map(error_note).collect();
    let rows: Vec<Vec<String>> = runs.iter().map(bench_row).collect();
    let index = write_index(
        run_dir,
        &format!("Bench compare: {}", run_dir.display()),
        &rows,
        &plots,
        &links,
        &extra,
    )?;
    Ok(ReportPaths {
        kind: RunKind::Compare,
        index,
        plots,
        timeline: None,
    })
}

// ---------------------------------------------------------------- html

fn jtext(v: &Json) -> String {
    match v {
        Json::Null => "?".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HEADERS: [&str; 8] = [
    "target",
    "nodes / config",
    "ops",
    "throughput",
    "latency percentiles",
    "errors",
    "faults injected",
    "verdict / status",
];

fn write_index(
    run_dir: &Path,
    title: &str,
    rows: &[Vec<String>],
    plots: &[PathBuf],
    links: &[String],
    extra: &str,
) -> anyhow::Result<PathBuf> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:1200px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #aaa;padding:4px 8px;text-align:left}}\
         th{{background:#eee}}img{{max-width:100%;border:1px solid #ddd;margin:8px 0}}\
         </style></head><body><h1>{t}</h1><table><tr>",
        t = esc(title)
    );
    for head in HEADERS {
        let _ = write!(h, "<th>{head}</th>");
    }
    h.push_str("</tr>");
    for row in rows {
        h.push_str("<tr>");
        for cell in row {
            let _ = write!(h, "<td>{}</td>", esc(cell));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h.push_str(extra);
    h.push_str("<h2>Plots</h2>");
    for png in plots
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
    {
        let png_rel = rel(run_dir, png);
        let svg_rel = rel(run_dir, &png.with_extension("svg"));
        let _ = write!(
            h,
            "<p><a href=\"{s}\"><img src=\"{p}\" alt=\"{p}\"></a><br>\
             <a href=\"{p}\">PNG</a> · <a href=\"{s}\">SVG</a></p>",
            p = esc(&png_rel),
            s = esc(&svg_rel)
        );
    }
    if !links.is_empty() {
        h.push_str("<h2>Files</h2><ul>");
        for l in links {
            let label = if l.ends_with("timeline.html") || l.ends_with("check.html") {
                format!("{l} (the checker's timeline)")
            } else {
                l.clone()
            };
            let _ = write!(h, "<li><a href=\"{}\">{}</a></li>", esc(l), esc(&label));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    let index = run_dir.join("index.html");
    std::fs::write(&index, h).with_context(|| format!("writing {}", index.display()))?;
    Ok(index)
}
