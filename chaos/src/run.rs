//! One chaos run, end to end:
//!
//! ```text
//! start cluster ─▶ workload ∥ nemesis (duration) ─▶ heal ─▶ recovery check
//!   ─▶ final reads ─▶ check the history (deadline) ─▶ run directory
//! ```
//!
//! The run directory holds `history.jsonl`, `nemesis.jsonl`, `schedule.json`
//! (the planned faults), `check.json` (the checker's result), `nodes/nodeI/
//! node.log` and `summary.json`. The check is the workload's
//! ([`crate::verdict`]). Exit code: 0 when the history is correct
//! (linearizable, strict serializable, no element lost) and the cluster
//! recovered, 1 when not correct or not recovered, 2 when the checker could
//! not decide in time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use serde::Serialize;

use crate::client::{Consistency, KvClient};
use crate::cluster::{ClusterSpec, LocalCluster, TargetKind};
use crate::nemesis::{Executor, Family, MembershipDriver, Schedule, Timing, membership};
use crate::verdict;
use crate::workload::{self, Recorder, WorkloadConfig, WorkloadKind, WorkloadState};

/// How network faults are injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetBackend {
    /// A fault-injecting TCP proxy on every peer link (no root needed).
    Proxy,
    /// Root only, d-engine: a network namespace per node, nftables rules
    /// ([`crate::cluster::netns`]); no added delay.
    Netns,
}

impl NetBackend {
    pub fn parse(s: &str) -> Option<NetBackend> {
        match s {
            "proxy" => Some(NetBackend::Proxy),
            "netns" => Some(NetBackend::Netns),
            _ => None,
        }
    }
}

/// The d-engine config key that turns lease reads on.
const LEASE_KEY: &str = "read.lease_enabled";

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: TargetKind,
    pub nodes: usize,
    pub duration: Duration,
    pub families: Vec<Family>,
    pub seed: u64,
    pub out: PathBuf,
    pub workload: WorkloadConfig,
    /// Fault windows; `None` = [`Timing::for_duration`].
    pub timing: Option<Timing>,
    /// An explicit schedule instead of the generated one (its own seed is
    /// kept in `schedule.json`; `families` is then only reported).
    pub schedule: Option<Schedule>,
    /// The node binary (see [`ClusterSpec::binary`]).
    pub binary: Option<PathBuf>,
    pub extra: Vec<(String, String)>,
    /// After the heal, a write must commit within this bound.
    pub recovery_timeout: Duration,
    /// The checker's deadline.
    pub check_timeout: Duration,
    /// Keep the nodes' data dirs (they are deleted by default; logs stay).
    pub keep_data: bool,
    pub net: NetBackend,
}

impl RunConfig {
    pub fn new(
        target: TargetKind,
        nodes: usize,
        duration: Duration,
        seed: u64,
        out: PathBuf,
    ) -> Self {
        RunConfig {
            target,
            nodes,
            duration,
            families: Family::parse_list_with("all", membership::driver_for(target).is_some())
                .expect("all parses"),
            seed,
            out,
            workload: WorkloadConfig {
                seed,
                ..WorkloadConfig::default()
            },
            timing: None,
            schedule: None,
            binary: None,
            extra: Vec::new(),
            recovery_timeout: Duration::from_secs(30),
            check_timeout: Duration::from_secs(60),
            keep_data: false,
            net: NetBackend::Proxy,
        }
    }
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub target: TargetKind,
    pub nodes: usize,
    pub seed: u64,
    pub duration_s: f64,
    pub net: NetBackend,
    /// Families the run actually used (a backend may leave one out; see `notes`).
    pub nemesis: Vec<Family>,
    /// What the run left out or changed, and why.
    pub notes: Vec<String>,
    pub workload: WorkloadKind,
    pub consistency: Consistency,
    pub keys: usize,
    pub clients: usize,
    /// Ops by name and outcome (final reads included).
    pub ops: BTreeMap<String, BTreeMap<&'static str, u64>>,
    pub ops_total: u64,
    /// Fault windows by kind.
    pub faults: BTreeMap<String, usize>,
    pub faults_total: usize,
    /// Longest stretch with no successful op, from the start of the workload
    /// to the end of the recovery check.
    pub longest_unavailability_ms: u64,
    pub longest_unavailability_at_ms: u64,
    /// Every stretch of at least a second with no successful op:
    /// `[start_ms, length_ms]`.
    pub unavailability_windows_ms: Vec<(u64, u64)>,
    pub recovered: bool,
    /// Time from the heal to the first committed write.
    pub recovery_ms: Option<u64>,
    pub final_reads: usize,
    /// Register: `linearizable`, `not linearizable`; list-append and
    /// rw-register: `strict-serializable`, `not strict-serializable`; set:
    /// `valid`, `invalid`; or `unknown`.
    pub verdict: String,
    /// The first key found not linearizable, if any.
    pub failing_key: Option<String>,
    /// Each violation the checker named, in a sentence: for the register
    /// workload, values read although the write that wrote them was reported
    /// `fail` (each a violation on its own, found without a search because
    /// every written value is unique); for the txn workloads, the anomalies
    /// with their cycles; for sets, the lost and unexpected elements.
    pub findings: Vec<String>,
    pub ops_checked: usize,
    pub check_ms: f64,
    pub peak_rss_kib: Vec<u64>,
    /// Ids of the nodes in the cluster at the end, by slot (membership churn
    /// replaces nodes with new ids).
    pub final_node_ids: Vec<u64>,
    /// d-engine: operations the workload sent in shared `Batch` RPCs, and alone.
    pub client_batching: Option<crate::client::ClientBatching>,
    pub exit_code: u8,
}

/// Runs the whole thing; returns the summary (also written to disk).
pub async fn run(cfg: &RunConfig) -> anyhow::Result<Summary> {
    if let Some(why) = cfg.workload.kind.unsupported_on(cfg.target) {
        bail!(why);
    }
    if cfg.target == TargetKind::Etcd && cfg.workload.consistency == Consistency::Lease {
        bail!("etcd has no lease reads: use --consistency linearizable or serializable");
    }
    let membership = membership::driver_for(cfg.target);
    if cfg.families.contains(&Family::Membership) && membership.is_none() {
        bail!(
            "the membership nemesis needs a membership driver; target {} has none",
            cfg.target.name()
        );
    }
    let mut notes = Vec::new();
    let mut families = cfg.families.clone();
    if cfg.net == NetBackend::Netns {
        if let Some(why) = crate::cluster::netns::unavailable() {
            bail!(why);
        }
        if cfg.target != TargetKind::Dengine {
            bail!("--net netns is not supported for {} yet", cfg.target.name());
        }
        if families.contains(&Family::Delay) {
            families.retain(|f| *f != Family::Delay);
            let note = format!("delay family left out: {}", crate::nemesis::NO_DELAY);
            eprintln!("chaos: {note}");
            notes.push(note);
        }
    }
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("cannot create {}", cfg.out.display()))?;
    let timing = cfg
        .timing
        .clone()
        .unwrap_or_else(|| Timing::for_duration(cfg.duration));
    let schedule = match &cfg.schedule {
        Some(s) => s.clone(),
        None => Schedule::generate(cfg.seed, cfg.nodes, &families, cfg.duration, &timing),
    };
    std::fs::write(
        cfg.out.join("schedule.json"),
        serde_json::to_vec_pretty(&schedule)?,
    )?;
    eprintln!(
        "chaos: target {} nodes {} seed {} duration {:?}, {} faults planned",
        cfg.target.name(),
        cfg.nodes,
        cfg.seed,
        cfg.duration,
        schedule.steps.len()
    );

    let mut spec = ClusterSpec::new(cfg.target, cfg.nodes, cfg.out.join("nodes"));
    spec.proxied = cfg.net == NetBackend::Proxy;
    spec.netns = cfg.net == NetBackend::Netns;
    spec.binary = cfg.binary.clone();
    spec.extra = cfg.extra.clone();
    // Lease reads are off by default on a d-engine node (they are then served as
    // linearizable): a run that asks for them turns them on, unless told otherwise.
    if cfg.workload.consistency == Consistency::Lease
        && !spec.extra.iter().any(|(k, _)| k == LEASE_KEY)
    {
        spec.extra.push((LEASE_KEY.to_owned(), "true".to_owned()));
        let note = format!("{LEASE_KEY}=true set on every node for the lease reads");
        eprintln!("chaos: {note}");
        notes.push(note);
    }
    let mut cluster = LocalCluster::start(spec).await?;
    let result = drive(cfg, schedule, membership, &mut cluster).await;
    let result = result.map(|mut s| {
        s.nemesis = families;
        s.notes = notes;
        s
    });
    let rss: Vec<u64> = (0..cluster.len())
        .map(|i| cluster.peak_rss_kib(i))
        .collect();
    let final_ids: Vec<u64> = (0..cluster.len()).map(|i| cluster.node_id(i)).collect();
    let batching = cluster.client_batching();
    cluster.stop().await;
    if !cfg.keep_data {
        for dir in cluster.node_dirs() {
            let _ = std::fs::remove_dir_all(dir.join("data"));
        }
    }
    let mut summary = result?;
    summary.peak_rss_kib = rss;
    summary.final_node_ids = final_ids;
    summary.client_batching = batching;
    std::fs::write(
        cfg.out.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

async fn drive(
    cfg: &RunConfig,
    schedule: Schedule,
    membership: Option<Box<dyn MembershipDriver>>,
    cluster: &mut LocalCluster,
) -> anyhow::Result<Summary> {
    let clients: Vec<KvClient> = (0..cluster.len())
        .map(|i| cluster.client(i))
        .collect::<Result<_, _>>()?;
    let t0 = Instant::now();
    let recorder = Recorder::create(&cfg.out.join("history.jsonl"), t0)?;
    let state = WorkloadState::new(&cfg.workload, &cfg.out, t0)?;
    let mut executor = Executor::new(schedule, t0, &cfg.out.join("nemesis.jsonl"))?;
    if let Some(driver) = membership {
        executor = executor.with_membership(driver);
    }
    let deadline = t0 + cfg.duration;
    let (_, nemesis) = tokio::join!(
        workload::run(&recorder, &cfg.workload, &state, &clients, deadline),
        executor.run(cluster)
    );
    nemesis?;

    executor.heal(cluster).await?;
    let healed = Instant::now();
    let recovery = recovery_check(&clients, healed + cfg.recovery_timeout).await;
    let recovered = recovery.is_some();
    let recovery_ms = recovery.map(|t| t.duration_since(healed).as_millis() as u64);
    eprintln!("chaos: healed; recovered: {recovered} ({recovery_ms:?} ms)");
    let final_reads = workload::final_reads_of(
        &recorder,
        &cfg.workload,
        &state,
        &clients,
        Instant::now() + cfg.recovery_timeout,
    )
    .await;
    let end_ns = recorder.now_ns();
    recorder.flush()?;
    state.flush()?;
    let (gap_ns, gap_at_ns) = recorder.longest_gap_ns(0, end_ns);
    let windows: Vec<(u64, u64)> = recorder
        .gaps_ns(0, end_ns, 1_000_000_000)
        .into_iter()
        .map(|(at, len)| (at / 1_000_000, len / 1_000_000))
        .collect();

    let check_started = Instant::now();
    let (kind, check_timeout, out) = (cfg.workload.kind, cfg.check_timeout, cfg.out.clone());
    let checked =
        tokio::task::spawn_blocking(move || verdict::check_run(kind, &out, check_timeout))
            .await??;
    for f in &checked.findings {
        eprintln!("chaos: {f}");
    }
    let check_ms = check_started.elapsed().as_secs_f64() * 1e3;
    std::fs::write(
        cfg.out.join("check.json"),
        serde_json::to_vec_pretty(&checked.report)?,
    )?;
    let exit_code = match (checked.class, recovered) {
        (0, true) => 0,
        (2, true) => 2,
        _ => 1,
    };
    let ops = recorder.counts();
    let faults =
        executor
            .events()
            .iter()
            .filter(|e| e.kind != "heal")
            .fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e.kind.clone()).or_default() += 1;
                m
            });
    let summary = Summary {
        target: cfg.target,
        nodes: cfg.nodes,
        seed: cfg.seed,
        duration_s: cfg.duration.as_secs_f64(),
        net: cfg.net,
        nemesis: cfg.families.clone(),
        notes: Vec::new(),
        workload: cfg.workload.kind,
        consistency: cfg.workload.consistency,
        keys: cfg.workload.keys,
        clients: cfg.workload.clients(),
        ops_total: ops.values().flat_map(|m| m.values()).sum(),
        ops,
        faults_total: faults.values().sum(),
        faults,
        longest_unavailability_ms: gap_ns / 1_000_000,
        longest_unavailability_at_ms: gap_at_ns / 1_000_000,
        unavailability_windows_ms: windows,
        recovered,
        recovery_ms,
        final_reads,
        verdict: checked.verdict,
        failing_key: checked.failing_key,
        findings: checked.findings,
        ops_checked: checked.ops_checked,
        check_ms,
        peak_rss_kib: Vec::new(),
        final_node_ids: Vec::new(),
        client_batching: None,
        exit_code,
    };
    eprintln!(
        "chaos: {} ops, {} faults, longest unavailability {} ms, verdict {} (checked in {:.0} ms), exit {}",
        summary.ops_total,
        summary.faults_total,
        summary.longest_unavailability_ms,
        summary.verdict,
        summary.check_ms,
        summary.exit_code
    );
    Ok(summary)
}

/// The first time a write commits through any node, trying every node in
/// turn until `deadline`.
async fn recovery_check(clients: &[KvClient], deadline: Instant) -> Option<Instant> {
    let mut i = 0;
    while Instant::now() < deadline {
        let client = &clients[i % clients.len()];
        i += 1;
        if client
            .put(
                b"__chaos_recovery",
                i.to_string().as_bytes(),
                Duration::from_secs(1),
            )
            .await
            .is_ok()
        {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// [`run`], but a Ctrl-C (SIGINT) or SIGTERM stops it: the run's future is
/// dropped, which kills every node ([`LocalCluster`]'s `Drop`), and the error
/// says so. For command lines.
pub async fn run_interruptible(cfg: &RunConfig) -> anyhow::Result<Summary> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = run(cfg) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted (Ctrl-C); the cluster was stopped"),
        _ = term.recv() => bail!("terminated (SIGTERM); the cluster was stopped"),
    }
}

/// Parses `60s`, `1500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (num, unit) = t.split_at(
        t.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len()),
    );
    let n: f64 = num
        .parse()
        .with_context(|| format!("bad duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("bad duration unit in {text:?} (ms, s, m, h)"),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
