//! `dengine bench`: drive one target with a workload, or `dengine bench compare` to
//! drive several in alternating rounds. The load generator lives in `d_engine_bench`;
//! this module only turns flags into its settings and prints where the results are.
//!
//! Exit code: 0 when every target ran to the end, 1 when a target failed or ended early
//! (its partial results are written all the same); setup errors are `Err`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use d_engine_bench::local::{LocalClusters, parse_local};
use d_engine_bench::progress::ProgressMode;
use d_engine_bench::{
    CompareSpec, Consistency, Distribution, Load, RunOptions, RunSpec, StopAt, TargetSpec,
    WorkloadKind, WorkloadSpec,
};

/// Measure throughput and latency of d-engine, etcd, or the generator itself (noop).
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// The system to drive: etcd, dengine, or noop (in-process; the generator's ceiling).
    #[arg(long, default_value = "noop", value_parser = ["etcd", "dengine", "noop"])]
    pub target: String,
    /// The target's client endpoints, host:port, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Run the same workload against several targets, interleaved, with a comparison table.
    Compare(CompareArgs),
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Targets to compare, comma-separated (ratios are first / others).
    #[arg(long, value_delimiter = ',', required = true, value_parser = ["etcd", "dengine", "noop"])]
    pub targets: Vec<String>,
    /// The duration (or op count) per target is split into this many rounds; targets
    /// take turns each round.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Settings shared by a single run and a compare.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// etcd endpoints (for compare, or instead of --endpoints).
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// d-engine endpoints (for compare, or instead of --endpoints).
    #[arg(long, value_delimiter = ',')]
    pub dengine_endpoints: Vec<String>,
    /// Start a fresh local cluster of N nodes per target (local:N, under the run
    /// directory, stopped at the end) instead of given endpoints.
    #[arg(long)]
    pub cluster: Option<String>,
    /// write, read, mixed, cas, or rw-register (multi-key transactions of up to 4 keys,
    /// each read with probability --read-ratio or written; etcd only until d-engine has
    /// multi-key transactions).
    #[arg(long, default_value = "write", value_parser = ["write", "read", "mixed", "cas", "rw-register"])]
    pub workload: String,
    /// Fraction of reads in a mixed workload (rw-register: of each transaction's keys).
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Read consistency: linearizable, lease (d-engine only) or serializable.
    #[arg(long, default_value = "linearizable", value_parser = ["linearizable", "lease", "serializable"])]
    pub consistency: String,
    /// Concurrent clients (closed loop), or the in-flight cap with --rate.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Open loop at this many ops/s in total (latency counted from the intended send time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured duration per target (e.g. 30s, 500ms, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many measured operations instead of after --duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Warm-up before measuring (per round in a compare); excluded from the results.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Key distribution: uniform, zipfian or sequential.
    #[arg(long, default_value = "uniform", value_parser = ["uniform", "zipfian", "sequential"])]
    pub distribution: String,
    /// Exponent of the zipfian distribution.
    #[arg(long, default_value_t = 0.99)]
    pub zipf_exponent: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Run directory (default: bench-runs/<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Deadline of one call.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub op_timeout: Duration,
    /// End the run with an error when no call succeeded for this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub abort_after: Duration,
    /// Directory on the nodes' data disk for the fdatasync floor (default: the run directory).
    #[arg(long)]
    pub floors_dir: Option<PathBuf>,
    /// Write every key once before measuring (not counted), so reads find values.
    #[arg(long)]
    pub preload: bool,
    /// d-engine: `Batch` RPCs outstanding per node, shared by concurrent calls as the
    /// Rust client does by default; 0 sends every call on its own RPC.
    #[arg(long, default_value_t = d_engine_bench::run::DENGINE_BATCH_IN_FLIGHT_DEFAULT)]
    pub dengine_batch: usize,
    /// d-engine: every write opens a client session of its own (a fresh client id),
    /// as a crowd of short-lived clients would; for soaks of the session table's bound.
    #[arg(long)]
    pub dengine_fresh_sessions: bool,
    /// d-engine with `--cluster local:N`: a config key for every node, as
    /// `section.key=value` (repeatable), e.g. `snapshot.entries_since_last=25000`.
    #[arg(long = "dengine-set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub dengine_set: Vec<(String, String)>,
    /// Skip the latency floors (fdatasync loop and gRPC ping).
    #[arg(long)]
    pub no_floors: bool,
    /// Progress: auto (a bar on a terminal), plain, or quiet.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "quiet"])]
    pub progress: String,
}

/// `section.key=value`.
fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if k.contains('.') && !v.is_empty() => Ok((k.trim().into(), v.trim().into())),
        _ => Err(format!("expected section.key=value, got {s:?}")),
    }
}

/// `30s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s, m or h)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn run_spec(a: &RunArgs) -> anyhow::Result<RunSpec> {
    let kind = match a.workload.as_str() {
        "write" => WorkloadKind::Write,
        "read" => WorkloadKind::Read,
        "mixed" => WorkloadKind::Mixed,
        "rw-register" => WorkloadKind::RwRegister,
        _ => WorkloadKind::Cas,
    };
    let consistency = match a.consistency.as_str() {
        "linearizable" => Consistency::Linearizable,
        "lease" => Consistency::Lease,
        _ => Consistency::Serializable,
    };
    let distribution = match a.distribution.as_str() {
        "uniform" => Distribution::Uniform,
        "zipfian" => Distribution::Zipfian {
            exponent: a.zipf_exponent,
        },
        _ => Distribution::Sequential,
    };
    let load = match a.rate {
        Some(rate) => Load::Open {
            rate,
            max_in_flight: a.clients,
        },
        None => Load::Closed { clients: a.clients },
    };
    let spec = RunSpec {
        workload: WorkloadSpec {
            kind,
            read_ratio: a.read_ratio,
            consistency,
            keys: a.keys,
            distribution,
            value_size: a.value_size,
        },
        load,
        stop: a.ops.map_or(StopAt::Duration(a.duration), StopAt::Ops),
        warmup: a.warmup,
        op_timeout: a.op_timeout,
        abort_after: a.abort_after,
        seed: a.seed,
        ..RunSpec::default()
    };
    spec.validate().map_err(anyhow::Error::msg)?;
    Ok(spec)
}

fn options(a: &RunArgs, out: &std::path::Path) -> anyhow::Result<RunOptions> {
    let mut o = RunOptions::new(run_spec(a)?);
    o.progress = match a.progress.as_str() {
        "plain" => ProgressMode::Plain,
        "quiet" => ProgressMode::Quiet,
        _ => ProgressMode::Auto,
    };
    o.preload = a.preload;
    o.dengine_batch_in_flight = a.dengine_batch;
    o.dengine_fresh_sessions = a.dengine_fresh_sessions;
    if !a.no_floors {
        o.floors_dir = Some(a.floors_dir.clone().unwrap_or_else(|| out.to_path_buf()));
    }
    Ok(o)
}

/// The target `name`: given endpoints, or a fresh local cluster with `--cluster local:N`.
async fn target_spec(
    name: &str,
    endpoints: &[String],
    a: &RunArgs,
    clusters: &LocalClusters,
    out: &std::path::Path,
) -> anyhow::Result<TargetSpec> {
    if name == "etcd" && a.consistency == "lease" {
        bail!("etcd has no lease reads: use --consistency linearizable or serializable");
    }
    if name == "dengine" && a.workload == "rw-register" {
        bail!(
            "the rw-register workload needs multi-key transactions, which d-engine does not \
             have yet: use --target etcd (or noop)"
        );
    }
    if name == "noop" {
        return Ok(TargetSpec::Noop);
    }
    if let Some(c) = &a.cluster {
        let nodes = parse_local(c)?;
        let extra = if name == "dengine" {
            &a.dengine_set[..]
        } else {
            &[]
        };
        return clusters.start(name, nodes, out, extra).await;
    }
    let own = if name == "etcd" {
        &a.etcd_endpoints
    } else {
        &a.dengine_endpoints
    };
    let endpoints = if endpoints.is_empty() { own } else { endpoints };
    if endpoints.is_empty() {
        bail!(
            "target {name} needs endpoints (--endpoints, --{name}-endpoints or --cluster local:N)"
        );
    }
    Ok(match name {
        "etcd" => TargetSpec::Etcd {
            endpoints: endpoints.to_vec(),
        },
        _ => TargetSpec::Dengine {
            endpoints: endpoints.to_vec(),
        },
    })
}

fn default_out() -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from("bench-runs").join(secs.to_string())
}

/// Runs `dengine bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: BenchArgs) -> anyhow::Result<u8> {
    let clusters = LocalClusters::default();
    let result = run_with(args, &clusters).await;
    // Whatever happened, no node process outlives the command.
    clusters.stop().await;
    result
}

async fn run_with(args: BenchArgs, clusters: &LocalClusters) -> anyhow::Result<u8> {
    match args.command {
        Some(BenchCommand::Compare(c)) => {
            let out = c.run.out.clone().unwrap_or_else(default_out);
            let mut targets = Vec::new();
            for t in &c.targets {
                targets.push(target_spec(t, &[], &c.run, clusters, &out).await?);
            }
            let mut options = options(&c.run, &out)?;
            options.memory = Some(clusters.memory());
            let spec = CompareSpec {
                targets,
                options,
                rounds: c.rounds,
            };
            let (outcomes, table) = d_engine_bench::compare(&spec, &out).await?;
            println!("{table}");
            println!("results: {}", out.display());
            Ok(report_errors(outcomes.iter().filter_map(|o| o.error())))
        }
        None => {
            let out = args.run.out.clone().unwrap_or_else(default_out);
            let target =
                target_spec(&args.target, &args.endpoints, &args.run, clusters, &out).await?;
            let mut opts = options(&args.run, &out)?;
            opts.memory = Some(clusters.memory());
            let outcome = d_engine_bench::run_to_dir(&target, &opts, &out).await?;
            let s = &outcome.summary;
            println!(
                "{}: {} ops/s, p50 {} us, p99 {} us, p999 {} us, max {} us, {} errors",
                s.target,
                s.ops_per_sec,
                s.latency_us.p50,
                s.latency_us.p99,
                s.latency_us.p999,
                s.latency_us.max,
                s.errors.total
            );
            println!("results: {}", out.display());
            Ok(report_errors(outcome.error()))
        }
    }
}

fn report_errors<'a>(errors: impl IntoIterator<Item = &'a str>) -> u8 {
    let mut code = 0;
    for e in errors {
        eprintln!("error: {e} (partial results were written)");
        code = 1;
    }
    code
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        Bench(BenchArgs),
    }

    fn parse(args: &[&str]) -> BenchArgs {
        let Cmd::Bench(a) =
            Cli::try_parse_from(std::iter::once("dengine").chain(args.iter().copied()))
                .expect("parses")
                .cmd;
        a
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_single_run_and_a_compare_parse_into_settings() {
        let a = parse(&[
            "bench",
            "--target",
            "etcd",
            "--endpoints",
            "127.0.0.1:1,127.0.0.1:2",
            "--workload",
            "mixed",
            "--read-ratio",
            "0.5",
            "--rate",
            "1000",
            "--clients",
            "8",
            "--ops",
            "100",
        ]);
        assert_eq!(a.endpoints.len(), 2);
        let spec = run_spec(&a.run).unwrap();
        assert_eq!(spec.workload.kind, WorkloadKind::Mixed);
        assert_eq!(
            spec.load,
            Load::Open {
                rate: 1000.0,
                max_in_flight: 8
            }
        );
        assert_eq!(spec.stop, StopAt::Ops(100));

        let a = parse(&[
            "bench",
            "compare",
            "--targets",
            "dengine,etcd",
            "--rounds",
            "3",
        ]);
        let Some(BenchCommand::Compare(c)) = a.command else {
            panic!("expected compare");
        };
        assert_eq!(c.targets, vec!["dengine", "etcd"]);
        assert_eq!(c.rounds, 3);
        assert_eq!(
            run_spec(&c.run).unwrap().stop,
            StopAt::Duration(Duration::from_secs(30))
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let a = parse(&["bench", "--workload", "cas", "--value-size", "4"]);
        let e = run_spec(&a.run).unwrap_err().to_string();
        assert!(e.contains("value_size"), "{e}");
        let a = parse(&["bench", "--clients", "0"]);
        assert!(
            run_spec(&a.run)
                .unwrap_err()
                .to_string()
                .contains("clients")
        );
    }

    #[test]
    fn d_engine_refuses_the_transaction_workload_before_starting_anything() {
        let a = parse(&["bench", "--workload", "rw-register", "--cluster", "local:3"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let clusters = LocalClusters::default();
        let out = std::env::temp_dir().join("bench-refuse-txn");
        let Err(e) = rt.block_on(target_spec("dengine", &[], &a.run, &clusters, &out)) else {
            panic!("the workload was accepted");
        };
        assert!(e.to_string().contains("multi-key transactions"), "{e}");
        assert!(!out.exists(), "no cluster was started");
    }
}
