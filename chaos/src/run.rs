//! One chaos run, end to end:
//!
//! ```text
//! start cluster ─▶ workload ∥ nemesis (duration) ─▶ heal ─▶ recovery check
//!   ─▶ final reads ─▶ check history per key (deadline) ─▶ run directory
//! ```
//!
//! The run directory holds `history.jsonl`, `nemesis.jsonl`, `schedule.json`
//! (the planned faults), `check.json` (the checker's result), `nodes/nodeI/
//! node.log` and `summary.json`. Exit code: 0 when linearizable and
//! recovered, 1 when not linearizable or not recovered, 2 when the checker
//! could not decide in time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use std::collections::{HashMap, HashSet};

use d_engine_histories::{
    CheckOptions, Operation, RegisterModel, Status, Value, Verdict, check, pair, read_jsonl,
};
use serde::Serialize;

use crate::client::{Consistency, KvClient};
use crate::cluster::{ClusterSpec, LocalCluster, TargetKind};
use crate::nemesis::{Executor, Family, MembershipDriver, Schedule, Timing, membership};
use crate::workload::{self, Recorder, WorkloadConfig};

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
    /// `linearizable`, `not linearizable` or `unknown`.
    pub verdict: String,
    /// The first key found not linearizable, if any.
    pub failing_key: Option<String>,
    /// Values read although the write that wrote them was reported `fail`
    /// (did not take effect): each is a violation on its own, found without
    /// a search because every written value is unique.
    pub aborted_reads: Vec<String>,
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
    let mut executor = Executor::new(schedule, t0, &cfg.out.join("nemesis.jsonl"))?;
    if let Some(driver) = membership {
        executor = executor.with_membership(driver);
    }
    let deadline = t0 + cfg.duration;
    let (_, nemesis) = tokio::join!(
        workload::run(&recorder, &cfg.workload, &clients, deadline),
        executor.run(cluster)
    );
    nemesis?;

    executor.heal(cluster).await?;
    let healed = Instant::now();
    let recovery = recovery_check(&clients, healed + cfg.recovery_timeout).await;
    let recovered = recovery.is_some();
    let recovery_ms = recovery.map(|t| t.duration_since(healed).as_millis() as u64);
    eprintln!("chaos: healed; recovered: {recovered} ({recovery_ms:?} ms)");
    let final_reads = workload::final_reads(
        &recorder,
        &cfg.workload,
        &clients,
        Instant::now() + cfg.recovery_timeout,
    )
    .await;
    let end_ns = recorder.now_ns();
    recorder.flush()?;
    let (gap_ns, gap_at_ns) = recorder.longest_gap_ns(0, end_ns);
    let windows: Vec<(u64, u64)> = recorder
        .gaps_ns(0, end_ns, 1_000_000_000)
        .into_iter()
        .map(|(at, len)| (at / 1_000_000, len / 1_000_000))
        .collect();

    let check_started = Instant::now();
    let bytes = std::fs::read(cfg.out.join("history.jsonl"))?;
    let check_timeout = cfg.check_timeout;
    let (result, aborted) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let history = read_jsonl(&bytes)?;
        let ops = pair(&history)?;
        let aborted = aborted_reads(&ops);
        let options = CheckOptions {
            timeout: Some(check_timeout),
            ..CheckOptions::default()
        };
        Ok((
            check(&RegisterModel::cas_register(), &ops, &options)?,
            aborted,
        ))
    })
    .await??;
    for a in &aborted {
        eprintln!("chaos: aborted read: {a}");
    }
    let check_ms = check_started.elapsed().as_secs_f64() * 1e3;
    std::fs::write(
        cfg.out.join("check.json"),
        serde_json::to_vec_pretty(&result)?,
    )?;

    // An aborted read is a certain violation even when the search gives up.
    let exit_code = match (result.verdict, recovered, aborted.is_empty()) {
        (Verdict::Linearizable, true, true) => 0,
        (Verdict::Unknown, true, true) => 2,
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
        consistency: cfg.workload.consistency,
        keys: cfg.workload.keys,
        clients: cfg.workload.keys * cfg.workload.clients_per_key,
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
        verdict: result.verdict.as_str().to_owned(),
        failing_key: result.failing_partition().and_then(|p| p.key.clone()),
        aborted_reads: aborted,
        ops_checked: result.ops_checked,
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

/// Reads that returned a value whose write (or cas) completed as `fail`.
/// The workload writes every value once, so such a read proves that a
/// request reported as not applied was applied: the reply broke its
/// contract. One line per case, naming the failed op and its error.
pub fn aborted_reads(ops: &[Operation]) -> Vec<String> {
    let written = |op: &Operation| match (&op.f[..], &op.input) {
        ("write", v) => Some(v.clone()),
        ("cas", Value::List(pair)) if pair.len() == 2 => Some(pair[1].clone()),
        _ => None,
    };
    let mut failed: HashMap<(Option<&str>, Value), &Operation> = HashMap::new();
    for op in ops.iter().filter(|op| op.status == Status::Fail) {
        if let Some(v) = written(op).filter(|v| !v.is_nil()) {
            failed.insert((op.key.as_deref(), v), op);
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for read in ops
        .iter()
        .filter(|op| op.f == "read" && op.status == Status::Ok)
    {
        let k = (read.key.as_deref(), read.output.clone());
        if let Some(w) = failed.get(&k)
            && seen.insert(w.id)
        {
            out.push(format!(
                "key {} value {} read by process {} (line {}) was written by {} {} of process {} (line {}) that failed: {}",
                read.key.as_deref().unwrap_or("-"),
                read.output,
                read.process,
                read.call_line,
                w.f,
                w.input,
                w.process,
                w.call_line,
                w.error.as_deref().unwrap_or("no error text"),
            ));
        }
    }
    out
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
    fn a_read_of_a_failed_write_is_an_aborted_read() {
        let text = br#"{"process":1,"type":"invoke","f":"write","key":"k","value":7}
{"process":1,"type":"fail","f":"write","key":"k","error":"SHUTTING_DOWN"}
{"process":2,"type":"invoke","f":"cas","key":"k","value":[null,8]}
{"process":2,"type":"fail","f":"cas","key":"k","error":"mismatch"}
{"process":3,"type":"invoke","f":"read","key":"k"}
{"process":3,"type":"ok","f":"read","key":"k","value":7}
{"process":3,"type":"invoke","f":"read","key":"k"}
{"process":3,"type":"ok","f":"read","key":"k","value":null}"#;
        let ops = pair(&read_jsonl(text).unwrap()).unwrap();
        let found = aborted_reads(&ops);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("value 7") && found[0].contains("SHUTTING_DOWN"));
    }

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
