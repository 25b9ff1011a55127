//! `dengine chaos`: one chaos run against a local cluster of real processes
//! (d-engine or etcd), with faults on a seeded schedule, a recorded history
//! and the verdict of the workload's checker (linearizability, strict
//! serializability, or no lost set element). The machinery lives in
//! `d_engine_chaos`; this module turns flags into a `RunConfig`.
//!
//! Exit code: 0 when the history is correct and the cluster recovered
//! after the heal, 1 when it is not correct or did not recover, 2 when
//! the checker could not decide in time (or on a setup error, from main),
//! 130 when interrupted (the cluster is stopped first).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use d_engine_chaos::client::Consistency;
use d_engine_chaos::cluster::TargetKind;
use d_engine_chaos::nemesis::{Family, membership};
use d_engine_chaos::prng::Rng;
use d_engine_chaos::run::{NetBackend, RunConfig, parse_duration, run_interruptible};
use d_engine_chaos::workload::WorkloadKind;

/// Inject faults into a local cluster under load and check the recorded history.
#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// The system under test.
    #[arg(long, default_value = "dengine", value_parser = ["dengine", "etcd"])]
    pub target: String,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long the workload and the faults run (e.g. 60s, 2m).
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// Fault families, comma-separated: kill, restart, pause, partition, delay, loss,
    /// membership (d-engine: add a learner with a fresh id, promote it, remove another
    /// node; and leadership transfer), or all (every family the target supports), or none.
    #[arg(long, default_value = "all")]
    pub nemesis: String,
    /// Seed of the fault schedule and the workload (random if absent; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run directory (default: chaos-runs/<target>-<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What the clients do: register (per-key CAS registers, checked for
    /// linearizability), list-append or rw-register (multi-key transactions, etcd
    /// only for now, checked for strict serializability), set (unique elements added,
    /// whole sets read: nothing acknowledged may be lost), watch (writers and watchers
    /// with resumes and progress notifications, etcd only for now, checked by the watch
    /// validator).
    #[arg(long, default_value = "register", value_parser = WorkloadKind::NAMES)]
    pub workload: String,
    /// Watch workload: how often each watcher asks for a progress notification, in ms
    /// (0: never).
    #[arg(long, default_value_t = 1000)]
    pub watch_progress_ms: u64,
    /// Read consistency of the workload: linearizable, lease (d-engine: served by the
    /// leader within its lease) or serializable (for the transactional workloads: of the
    /// read-only transactions).
    #[arg(long, default_value = "linearizable", value_parser = ["linearizable", "lease", "serializable"])]
    pub consistency: String,
    /// Number of registers (register), keys in use at once (list-append, rw-register)
    /// or sets in use at once (set).
    #[arg(long, default_value_t = 4)]
    pub keys: usize,
    /// Clients per key (5–10 is the intended range).
    #[arg(long, default_value_t = 5)]
    pub clients_per_key: usize,
    /// Share of reads in the workload (register: writes and cas split the rest;
    /// list-append and rw-register: read-only transactions).
    #[arg(long, default_value_t = 0.5)]
    pub read_fraction: f64,
    /// The node binary (d-engine: default $DENGINE_BIN or the dengine next to this one;
    /// etcd: default $ETCD_BIN or etcd on the PATH).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Extra node config, repeatable: KEY=VALUE (d-engine: dotted config keys such as
    /// raft.election_timeout_ms_min=300; etcd: flags such as heartbeat-interval=50).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub extra: Vec<String>,
    /// After the heal, a write must commit within this bound.
    #[arg(long, default_value = "30s")]
    pub recovery_timeout: String,
    /// The checker's deadline (verdict unknown beyond it).
    #[arg(long, default_value = "60s")]
    pub check_timeout: String,
    /// Keep the nodes' data directories (deleted by default; logs are kept).
    #[arg(long)]
    pub keep_data: bool,
    /// How network faults are injected: proxy (a TCP proxy on every peer link, no root)
    /// or netns (root, d-engine only: a network namespace per node, partitions and loss
    /// by nftables; no delay, as this kernel has no netem).
    #[arg(long, default_value = "proxy", value_parser = ["proxy", "netns"])]
    pub net: String,
}

fn config(args: &ChaosArgs) -> anyhow::Result<RunConfig> {
    let target = TargetKind::parse(&args.target).context("unknown target")?;
    let seed = args.seed.unwrap_or_else(Rng::seed_from_time);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("chaos-runs/{}-{seed}", target.name())));
    let mut cfg = RunConfig::new(
        target,
        args.nodes,
        parse_duration(&args.duration)?,
        seed,
        out,
    );
    let has_membership = membership::driver_for(target).is_some();
    cfg.families = Family::parse_list_with(&args.nemesis, has_membership)?;
    cfg.workload.kind = WorkloadKind::parse(&args.workload).context("unknown workload")?;
    cfg.workload.watch_progress_ms = args.watch_progress_ms;
    if let Some(why) = cfg.workload.kind.unsupported_on(target) {
        anyhow::bail!(why);
    }
    cfg.workload.consistency =
        Consistency::parse(&args.consistency).context("unknown consistency")?;
    cfg.workload.keys = args.keys.max(1);
    cfg.workload.clients_per_key = args.clients_per_key.max(1);
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.read_fraction),
        "--read-fraction must be in [0, 1]"
    );
    cfg.workload.read_fraction = args.read_fraction;
    cfg.binary = args.binary.clone();
    cfg.extra = args
        .extra
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .context("--set needs KEY=VALUE")
        })
        .collect::<anyhow::Result<_>>()?;
    cfg.recovery_timeout = parse_duration(&args.recovery_timeout)?;
    cfg.check_timeout = parse_duration(&args.check_timeout)?;
    cfg.keep_data = args.keep_data;
    cfg.net = NetBackend::parse(&args.net).context("unknown --net")?;
    anyhow::ensure!(cfg.nodes >= 1, "--nodes must be at least 1");
    Ok(cfg)
}

pub fn run(args: ChaosArgs) -> anyhow::Result<u8> {
    let cfg = config(&args)?;
    println!(
        "chaos: seed {} (replay: dengine chaos --target {} --workload {} --nodes {} --duration {} --nemesis {} --seed {} --consistency {} --net {})",
        cfg.seed,
        args.target,
        args.workload,
        cfg.nodes,
        args.duration,
        args.nemesis,
        cfg.seed,
        args.consistency,
        args.net
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run_interruptible(&cfg));
    match result {
        Ok(summary) => {
            println!(
                "chaos: {} — {} ops, {} faults, longest unavailability {} ms, recovered {}; run dir {}",
                summary.verdict,
                summary.ops_total,
                summary.faults_total,
                summary.longest_unavailability_ms,
                summary.recovered,
                cfg.out.display()
            );
            Ok(summary.exit_code)
        }
        Err(e)
            if format!("{e}").starts_with("interrupted")
                || format!("{e}").starts_with("terminated") =>
        {
            eprintln!("chaos: {e}");
            Ok(130)
        }
        Err(e) => Err(e),
    }
}
