//! `dengine check`: read histories, check them for linearizability (or, with
//! `--model list-append|rw-register`, for transactional anomalies against
//! `--consistency`; or, with `--model watch`, a `watch.jsonl` against the
//! guarantees of watch streams), print a verdict per file and a total,
//! optionally write a JSON report and HTML pages.
//!
//! Exit codes: 0 all linearizable (valid), 1 some history not linearizable
//! (invalid), 65 some
//! input unreadable (and none proven wrong), 2 some verdict unknown (deadline)
//! and nothing worse. A proven violation wins over everything because it is
//! the finding that must not be masked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use d_engine_histories::txn::{self, Consistency, ModelVerdict, TxnOptions, TxnReport, Workload};
use d_engine_histories::watch::{self, WatchOptions, WatchReport};
use d_engine_histories::{
    CheckOptions, CheckResult, Format, History, KvModel, ModelKind, NemesisEvent, Operation,
    RegisterModel, Report, Verdict, check, html, import, pair, read_nemesis_jsonl, report,
    verdict_line,
};

/// Exit codes of `dengine check`.
const EXIT_OK: u8 = 0;
const EXIT_ILLEGAL: u8 = 1;
const EXIT_UNKNOWN: u8 = 2;
const EXIT_UNREADABLE: u8 = 65;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit codes: 0 all linearizable (or valid), 1 some history not linearizable (or invalid), \
65 some input unreadable, 2 some verdict unknown (deadline). A violation takes precedence."
)]
pub struct CheckArgs {
    /// Sequential model: register, cas-register or kv; or a transactional
    /// workload: list-append or rw-register; or watch, for a watch.jsonl of
    /// watch streams (default: guessed from the operation names, `:f :txn`
    /// ops are transactions; a file named watch.jsonl is a watch history).
    #[arg(long, value_parser = ["register", "cas-register", "kv", "list-append", "rw-register", "watch"])]
    model: Option<String>,
    /// For transactional workloads: the consistency model to check.
    #[arg(long, default_value = "strict-serializable", value_parser = [
        "strict-serializable", "serializable", "snapshot-isolation",
        "repeatable-read", "read-committed", "read-uncommitted",
    ])]
    consistency: String,
    /// Input format (auto: from the file name, then the content).
    #[arg(long, default_value = "auto", value_parser = ["auto", "jsonl", "jepsen-edn", "jepsen-log", "porcupine-kv"])]
    format: String,
    /// Give up after this long per history (verdict unknown, exit 2), e.g. 10s, 500ms, 2m.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Write an HTML page here (with several histories: FILE-<name>.html): the
    /// timeline; for transactions, each anomaly with its cycle drawn; for watch, the
    /// violations.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write a JSON report of all histories here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Check all operations as one partition (the state is the whole store)
    /// instead of each key apart.
    #[arg(long)]
    single_partition: bool,
    /// Checker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// History files.
    #[arg(required = true, value_name = "HISTORY")]
    histories: Vec<PathBuf>,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `250us`, `1.5s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?} (try 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (use ns, us, ms, s, m, h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("bad duration {text:?}: {e}"))
}

/// What became of one history.
enum Outcome {
    Checked(Box<Report>),
    Transactions(Box<TxnReport>),
    Watch(Box<WatchReport>),
    Unreadable(String),
}

pub fn run(args: CheckArgs) -> u8 {
    let options = CheckOptions {
        timeout: args.timeout,
        threads: args.threads.unwrap_or(0),
        single_partition: args.single_partition,
        ..CheckOptions::default()
    };
    let several = args.histories.len() > 1;
    let mut reports = Vec::new();
    let mut txn_reports: Vec<TxnReport> = Vec::new();
    let mut watch_reports: Vec<WatchReport> = Vec::new();
    let mut unreadable = Vec::new();
    for path in &args.histories {
        let name = path.display().to_string();
        let html_path = args.html.as_ref().map(|h| {
            if several {
                suffixed(h, path)
            } else {
                h.clone()
            }
        });
        match check_file(path, &args, &options, html_path.as_deref()) {
            Outcome::Checked(report) => reports.push(*report),
            Outcome::Transactions(report) => txn_reports.push(*report),
            Outcome::Watch(report) => watch_reports.push(*report),
            Outcome::Unreadable(message) => {
                eprintln!("error: {name}: {message}");
                unreadable.push((name, message));
            }
        }
    }
    let count = |v: Verdict| reports.iter().filter(|r| r.verdict == v).count();
    let txn_count = |v: ModelVerdict| {
        txn_reports.iter().filter(|r| r.verdict == v).count()
            + watch_reports.iter().filter(|r| r.verdict == v).count()
    };
    let (good, bad, unknown) = (
        count(Verdict::Linearizable) + txn_count(ModelVerdict::Valid),
        count(Verdict::Illegal) + txn_count(ModelVerdict::Invalid),
        count(Verdict::Unknown) + txn_count(ModelVerdict::Unknown),
    );
    if several {
        let (yes, no) = if txn_reports.is_empty() && watch_reports.is_empty() {
            ("linearizable", "not linearizable")
        } else {
            ("linearizable or valid", "not linearizable or invalid")
        };
        println!(
            "total: {} histories: {good} {yes}, {bad} {no}, {unknown} unknown, {} unreadable",
            args.histories.len(),
            unreadable.len()
        );
    }
    if let Some(json) = &args.json
        && let Err(e) = std::fs::write(
            json,
            report::reports_json_all(&reports, &txn_reports, &watch_reports, &unreadable),
        )
    {
        eprintln!("error: writing {}: {e}", json.display());
        return EXIT_UNREADABLE;
    }
    if bad > 0 {
        EXIT_ILLEGAL
    } else if !unreadable.is_empty() {
        EXIT_UNREADABLE
    } else if unknown > 0 {
        EXIT_UNKNOWN
    } else {
        EXIT_OK
    }
}

/// `report.html` + `runs/h1.jsonl` → `report-h1.html`.
fn suffixed(html: &Path, history: &Path) -> PathBuf {
    let stem = html
        .file_stem()
        .map_or_else(|| "timeline".into(), |s| s.to_string_lossy().into_owned());
    let name = history
        .file_stem()
        .map_or_else(|| "history".into(), |s| s.to_string_lossy().into_owned());
    html.with_file_name(format!("{stem}-{name}.html"))
}

fn check_file(
    path: &Path,
    args: &CheckArgs,
    options: &CheckOptions,
    html_path: Option<&Path>,
) -> Outcome {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    let named_watch = path.file_name().is_some_and(|n| n == "watch.jsonl");
    if args.model.as_deref() == Some("watch") || (args.model.is_none() && named_watch) {
        return check_watch(&name, &bytes, args, html_path);
    }
    let format = match args.format.as_str() {
        "auto" => match Format::detect(&name, &bytes) {
            Some(f) => f,
            None => return Outcome::Unreadable("cannot tell the format; pass --format".into()),
        },
        other => Format::parse(other).expect("clap allows only known formats"),
    };
    let history = match import::read(format, &bytes) {
        Ok(h) => h,
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    if history.events.is_empty() && history.nemesis.is_empty() {
        // An empty history is almost always a broken pipeline, not a pass.
        return Outcome::Unreadable("no operations in the file".into());
    }
    let ops = match pair(&history) {
        Ok(ops) => ops,
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    let workload = args.model.as_deref().and_then(Workload::parse);
    let all_txns = !ops.is_empty() && ops.iter().all(|op| op.f == "txn");
    if workload.is_some() || (args.model.is_none() && all_txns) {
        return check_transactions(&name, &history, &ops, workload, args, html_path);
    }
    if ops.is_empty() {
        println!(
            "{name}: linearizable (only nemesis operations: {} fault events, no client operations to check)",
            history.nemesis.len()
        );
    }
    let model = match args.model.as_deref() {
        Some(m) => ModelKind::parse(m).expect("clap allows only known models"),
        None if format == Format::PorcupineKv => ModelKind::Kv,
        None => ModelKind::guess(&ops),
    };
    let checked = match model {
        ModelKind::Register => check(&RegisterModel::register(), &ops, options),
        ModelKind::CasRegister => check(&RegisterModel::cas_register(), &ops, options),
        ModelKind::Kv => check(&KvModel, &ops, options),
    };
    let result = match checked {
        Ok(r) => r,
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    if !ops.is_empty() {
        println!("{}", verdict_line(&name, &ops, &result));
    }
    if let Some(html_path) = html_path {
        let mut faults = history.nemesis.clone();
        faults.extend(nemesis_beside(path));
        write_html(html_path, &name, &ops, &faults, &result);
    }
    Outcome::Checked(Box::new(Report::new(&name, &ops, &result)))
}

/// The transactional check of one history: list-append or rw-register
/// against `--consistency`.
fn check_transactions(
    name: &str,
    history: &History,
    ops: &[Operation],
    workload: Option<Workload>,
    args: &CheckArgs,
    html_path: Option<&Path>,
) -> Outcome {
    let consistency =
        Consistency::parse(&args.consistency).expect("clap allows only known consistency models");
    let options = TxnOptions {
        timeout: args.timeout,
        ..TxnOptions::default()
    };
    let (txns, result) = match txn::check_ops(ops, workload, &options) {
        Ok(r) => r,
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    if ops.is_empty() {
        println!(
            "{name}: {}: valid (only nemesis operations: {} fault events, no transactions to check)",
            consistency.as_str(),
            history.nemesis.len()
        );
    } else {
        println!("{}", txn::verdict_line(name, &result, consistency));
    }
    for a in result
        .anomalies
        .iter()
        .filter(|a| consistency.rules_out(a.kind))
        .take(3)
    {
        println!("  {}", a.explanation);
    }
    if let Some(path) = html_path {
        let page = txn::html::render(name, &txns, &result, &[consistency]);
        if let Err(e) = std::fs::write(path, page) {
            eprintln!("error: writing {}: {e}", path.display());
        }
    }
    Outcome::Transactions(Box::new(TxnReport::new(name, &result, consistency)))
}

/// The watch check of one `watch.jsonl`.
fn check_watch(name: &str, bytes: &[u8], args: &CheckArgs, html_path: Option<&Path>) -> Outcome {
    let options = WatchOptions {
        timeout: args.timeout,
        ..WatchOptions::default()
    };
    let report = match watch::check_bytes(name, bytes, &options) {
        Ok(r) => r,
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    if report.writes == 0 && report.watchers == 0 {
        // An empty history is almost always a broken pipeline, not a pass.
        return Outcome::Unreadable("no watch records in the file".into());
    }
    println!("{}", report.verdict_line());
    for v in report.violations.iter().take(3) {
        println!("  {}: {}", v.guarantee.as_str(), v.message);
    }
    if let Some(path) = html_path
        && let Err(e) = std::fs::write(path, watch::html::render(&report))
    {
        eprintln!("error: writing {}: {e}", path.display());
    }
    Outcome::Watch(Box::new(report))
}

/// Fault events from a `nemesis.jsonl` next to the history, if there is
/// one. A broken one is reported but does not stop the check: the verdict
/// does not depend on it.
fn nemesis_beside(history: &Path) -> Vec<NemesisEvent> {
    let path = history.with_file_name("nemesis.jsonl");
    let Ok(bytes) = std::fs::read(&path) else {
        return Vec::new();
    };
    read_nemesis_jsonl(&bytes).unwrap_or_else(|e| {
        eprintln!(
            "warning: {}: {e}; the timeline has no fault lane",
            path.display()
        );
        Vec::new()
    })
}

fn write_html(
    path: &Path,
    name: &str,
    ops: &[Operation],
    faults: &[NemesisEvent],
    result: &CheckResult,
) {
    let page = html::render(name, ops, faults, result);
    if let Err(e) = std::fs::write(path, page) {
        eprintln!("error: writing {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }
}
