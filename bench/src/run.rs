//! One target, one run directory: probe, floors, load, memory, `summary.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::floors;
use crate::output::IntervalSink;
use crate::progress::{Progress, ProgressMode};
use crate::rss;
use crate::runner::{Load, Measured, RunSpec, SinkAt, StopAt, run_load};
use crate::summary::{Floors, NodeMemory, Summary};
use crate::target::{DengineTarget, EtcdTarget, NoopTarget, Target, TargetError};
use crate::workload::{Distribution, WorkloadKind};

/// Which system to drive, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetSpec {
    Noop,
    Etcd { endpoints: Vec<String> },
    Dengine { endpoints: Vec<String> },
}

impl TargetSpec {
    /// `noop`, `etcd` or `dengine`: the summary's `target` and a compare's subdirectory.
    pub fn name(&self) -> &'static str {
        match self {
            TargetSpec::Noop => "noop",
            TargetSpec::Etcd { .. } => "etcd",
            TargetSpec::Dengine { .. } => "dengine",
        }
    }

    pub fn endpoints(&self) -> &[String] {
        match self {
            TargetSpec::Noop => &[],
            TargetSpec::Etcd { endpoints } | TargetSpec::Dengine { endpoints } => endpoints,
        }
    }
}

/// A source of per-node peak memory, called with the target's name once its run ends
/// (a local cluster launcher knows its processes). Where it returns `None`, the
/// endpoints' listeners are looked up in /proc.
pub type MemorySource = Arc<dyn Fn(&str) -> Option<Vec<NodeMemory>> + Send + Sync>;

/// Settings of a run besides the target.
#[derive(Clone)]
pub struct RunOptions {
    pub spec: RunSpec,
    /// Where to measure the fdatasync floor (the nodes' data disk); `None` skips the
    /// floors.
    pub floors_dir: Option<PathBuf>,
    pub progress: ProgressMode,
    /// Per-node memory; `None` = look the endpoints up in /proc.
    pub memory: Option<MemorySource>,
    /// Before the first round, write every key once (not measured), so reads find
    /// values of the configured size.
    pub preload: bool,
    /// d-engine only: `Batch` RPCs outstanding per node, 0 = every call alone.
    pub dengine_batch_in_flight: usize,
    /// d-engine only: every write opens a client session of its own (a fresh client
    /// id, sequence 1), as a crowd of short-lived clients would: the worst case for
    /// the replicated session table, for soaks of its memory bound.
    pub dengine_fresh_sessions: bool,
}

impl RunOptions {
    pub fn new(spec: RunSpec) -> RunOptions {
        RunOptions {
            spec,
            floors_dir: None,
            progress: ProgressMode::Auto,
            memory: None,
            preload: false,
            dengine_batch_in_flight: DENGINE_BATCH_IN_FLIGHT_DEFAULT,
            dengine_fresh_sessions: false,
        }
    }
}

/// A finished (or failed) run: its summary, already written to `dir/summary.json`.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: Summary,
}

impl RunOutcome {
    /// The reason the run failed or ended early, if it did.
    pub fn error(&self) -> Option<&str> {
        self.summary.error.as_deref()
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs `opts.spec` against `target` and writes `dir` (created if needed). Returns
/// `Err` only when the directory cannot be written; a target that fails is an `Ok`
/// outcome whose summary says `status: "error"`.
pub async fn run_to_dir(
    target: &TargetSpec,
    opts: &RunOptions,
    dir: &Path,
) -> anyhow::Result<RunOutcome> {
    opts.spec
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid run settings: {e}"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let floors = measure_floors(opts).await;
    let mut state = TargetRun::create(target, dir, &opts.spec, floors)?;
    let result = match target {
        TargetSpec::Noop => {
            state
                .round(&Arc::new(NoopTarget), opts, opts.spec.stop)
                .await
        }
        TargetSpec::Etcd { endpoints } => match EtcdTarget::new(endpoints) {
            Ok(t) => state.round(&Arc::new(t), opts, opts.spec.stop).await,
            Err(e) => state.fail(e),
        },
        TargetSpec::Dengine { endpoints } => {
            match DengineTarget::new(endpoints, opts.dengine_batch_in_flight) {
                Ok(t) => {
                    let t = t.with_fresh_sessions(opts.dengine_fresh_sessions);
                    state.round(&Arc::new(t), opts, opts.spec.stop).await
                }
                Err(e) => state.fail(e),
            }
        }
    };
    // A failure is recorded in the state and lands in the summary.
    let _ = result;
    state.finish(opts)
}

/// The floors, if asked for; a failure to measure them is a warning, not a failed run.
pub(crate) async fn measure_floors(opts: &RunOptions) -> Option<Floors> {
    let dir = opts.floors_dir.as_ref()?;
    match floors::measure(dir, opts.spec.workload.value_size + 64).await {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("warning: latency floors not measured: {e}");
            None
        }
    }
}

/// Runs `opts.spec` against any [`Target`] (a custom or embedded one) and writes `dir`;
/// `name` is the summary's `target`. Same contract as [`run_to_dir`].
pub async fn run_target_to_dir<T: Target>(
    name: &str,
    target: Arc<T>,
    opts: &RunOptions,
    dir: &Path,
) -> anyhow::Result<RunOutcome> {
    opts.spec
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid run settings: {e}"))?;
    let floors = measure_floors(opts).await;
    let mut state = TargetRun::create(&TargetSpec::Noop, dir, &opts.spec, floors)?;
    state.label = name.to_string();
    let _ = state.round(&target, opts, opts.spec.stop).await;
    state.finish(opts)
}

/// The state of one target across the rounds of a run or a compare.
pub(crate) struct TargetRun {
    pub(crate) spec: TargetSpec,
    /// The name in outputs (the target kind's name unless set).
    pub(crate) label: String,
    pub(crate) dir: PathBuf,
    sink: IntervalSink,
    base: SystemTime,
    pub(crate) measured: Measured,
    pub(crate) rounds: u32,
    floors: Option<Floors>,
    /// Set once a round failed; later rounds are skipped.
    pub(crate) failed: Option<String>,
    batching: Option<crate::target::BatchingStats>,
}

impl TargetRun {
    pub(crate) fn create(
        spec: &TargetSpec,
        dir: &Path,
        run: &RunSpec,
        floors: Option<Floors>,
    ) -> anyhow::Result<TargetRun> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let base = SystemTime::now();
        let sink = IntervalSink::create(dir, base, spec.name())
            .with_context(|| format!("create the interval outputs in {}", dir.display()))?;
        Ok(TargetRun {
            label: spec.name().to_string(),
            spec: spec.clone(),
            dir: dir.to_path_buf(),
            sink,
            base,
            measured: Measured::empty(matches!(run.load, Load::Open { .. })),
            rounds: 0,
            floors,
            failed: None,
            batching: None,
        })
    }

    fn fail(&mut self, e: TargetError) -> Result<(), String> {
        let msg = format!("{}: {e}", self.label);
        self.failed = Some(msg.clone());
        Err(msg)
    }

    /// Probes the target, then runs one round of load against it.
    pub(crate) async fn round<T: Target>(
        &mut self,
        target: &Arc<T>,
        opts: &RunOptions,
        stop: StopAt,
    ) -> Result<(), String> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        let probe = tokio::time::timeout(opts.spec.op_timeout, target.probe()).await;
        let probe = probe.unwrap_or_else(|_| {
            Err(TargetError::new(
                crate::target::ErrorKind::Timeout,
                format!("no reply within {:?}", opts.spec.op_timeout),
            ))
        });
        if let Err(e) = probe {
            let endpoints = self.spec.endpoints().join(",");
            let msg = format!("cannot reach {} at [{endpoints}]: {e}", self.label);
            self.failed = Some(msg.clone());
            return Err(msg);
        }
        if opts.preload && self.rounds == 0 {
            self.preload(target, opts).await?;
        }
        let mut spec = opts.spec.clone();
        spec.stop = stop;
        spec.seed = spec.seed.wrapping_add(u64::from(self.rounds));
        let length = match stop {
            StopAt::Duration(d) => Some(d.as_secs()),
            StopAt::Ops(_) => None,
        };
        let progress = Progress::new(opts.progress, &self.label, length);
        let sink = SinkAt {
            sink: &mut self.sink,
            base: self.base,
            first_second: self.measured.seconds,
        };
        let m = run_load(target.clone(), &spec, sink, &progress).await;
        progress.finish(&format!(
            "{} ops in {:.1}s ({:.0} ops/s), {} errors{}",
            m.ops,
            m.elapsed.as_secs_f64(),
            m.ops as f64 / m.elapsed.as_secs_f64().max(1e-9),
            m.error_total(),
            m.aborted
                .as_ref()
                .map_or(String::new(), |a| format!("; stopped: {a}"))
        ));
        self.rounds += 1;
        self.batching = target.batching();
        let aborted = m.aborted.clone();
        self.measured.merge(&m);
        if let Some(a) = aborted {
            let msg = format!("{} failed during the run: {a}", self.label);
            self.failed = Some(msg.clone());
            return Err(msg);
        }
        Ok(())
    }

    /// Writes every key once, sequentially, with the run's clients; outputs go to
    /// `preload/` and do not count.
    async fn preload<T: Target>(
        &mut self,
        target: &Arc<T>,
        opts: &RunOptions,
    ) -> Result<(), String> {
        let mut spec = opts.spec.clone();
        spec.workload.kind = WorkloadKind::Write;
        spec.workload.distribution = Distribution::Sequential;
        spec.stop = StopAt::Ops(spec.workload.keys);
        spec.warmup = Duration::ZERO;
        if let Load::Open { max_in_flight, .. } = spec.load {
            spec.load = Load::Closed {
                clients: max_in_flight,
            };
        }
        let dir = self.dir.join("preload");
        let fail = |e: String| format!("{}: preload: {e}", self.label);
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        let mut sink = IntervalSink::create(&dir, SystemTime::now(), "preload")
            .map_err(|e| fail(e.to_string()))?;
        let progress = Progress::new(opts.progress, &format!("{} preload", self.label), None);
        let sink = SinkAt {
            sink: &mut sink,
            base: SystemTime::now(),
            first_second: 0,
        };
        let m = run_load(target.clone(), &spec, sink, &progress).await;
        progress.finish(&format!(
            "preloaded {} keys, {} errors",
            m.ops,
            m.error_total()
        ));
        if let Some(a) = m.aborted {
            let msg = fail(a);
            self.failed = Some(msg.clone());
            return Err(msg);
        }
        Ok(())
    }

    /// Writes `summary.json` and returns the outcome.
    pub(crate) fn finish(mut self, opts: &RunOptions) -> anyhow::Result<RunOutcome> {
        let mut summary = Summary::new(
            &self.label,
            self.spec.endpoints(),
            &opts.spec,
            &self.measured,
            self.rounds,
            unix_ms(self.base),
        );
        if let Some(f) = self.failed.take() {
            summary.status = "error".into();
            summary.error = Some(f);
        }
        summary.floors = self.floors.clone();
        summary.client_batching = self.batching;
        summary.nodes = match opts.memory.as_ref().and_then(|m| m(self.spec.name())) {
            Some(nodes) => nodes,
            None => self
                .spec
                .endpoints()
                .iter()
                .map(|e| NodeMemory {
                    endpoint: e.clone(),
                    peak_rss_kib: rss::peak_rss_kib_of_endpoint(e),
                })
                .collect(),
        };
        write_json(&self.dir.join("summary.json"), &summary)?;
        Ok(RunOutcome {
            dir: self.dir,
            summary,
        })
    }
}

/// Writes JSON through a temporary file and a rename, so a reader never sees half.
pub(crate) fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&tmp, text + "\n").with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

/// The Rust client's default (`ClientConfig::batch_in_flight`).
pub const DENGINE_BATCH_IN_FLIGHT_DEFAULT: usize = 4;

/// Default op deadline used by the CLI.
pub const OP_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
