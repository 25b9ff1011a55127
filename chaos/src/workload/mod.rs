//! Clients that record a history, one module per workload:
//!
//! - [`register`]: per-key CAS registers (`read`, `write`, `cas`), checked for
//!   linearizability; every target.
//! - [`txn`]: multi-key transactions, Elle's `list-append` and `rw-register`,
//!   checked for strict serializability; etcd (its `Txn`), and d-engine once
//!   it has multi-key transactions.
//! - [`set`]: `add` of unique elements and `read` of the whole set; every
//!   element acknowledged must be in every read that follows.
//! - [`watch`]: writers and watchers (etcd), recorded in `watch.jsonl` for
//!   the watch validator.
//!
//! All of them write `history.jsonl` through one [`Recorder`] (for the
//! watch workload only its writes, for the report and the summary; what the
//! watch validator checks is `watch.jsonl`).

pub mod recorder;
pub mod register;
pub mod set;
pub mod txn;
pub mod watch;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use recorder::Recorder;

use crate::client::{Consistency, KvClient};
use crate::prng::Rng;
use crate::util::join_all;

/// Which workload the clients run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    #[default]
    Register,
    ListAppend,
    RwRegister,
    Set,
    Watch,
}

impl WorkloadKind {
    pub const NAMES: [&'static str; 5] = ["register", "list-append", "rw-register", "set", "watch"];

    pub fn parse(s: &str) -> Option<WorkloadKind> {
        match s {
            "register" => Some(WorkloadKind::Register),
            "list-append" => Some(WorkloadKind::ListAppend),
            "rw-register" => Some(WorkloadKind::RwRegister),
            "set" => Some(WorkloadKind::Set),
            "watch" => Some(WorkloadKind::Watch),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::ListAppend => "list-append",
            WorkloadKind::RwRegister => "rw-register",
            WorkloadKind::Set => "set",
            WorkloadKind::Watch => "watch",
        }
    }

    /// Why `target` cannot run this workload, if it cannot.
    pub fn unsupported_on(self, target: crate::cluster::TargetKind) -> Option<String> {
        let etcd_only = match self {
            WorkloadKind::ListAppend | WorkloadKind::RwRegister => "multi-key transactions",
            WorkloadKind::Watch => "watch",
            _ => return None,
        };
        (target == crate::cluster::TargetKind::Dengine).then(|| {
            format!(
                "the {} workload needs {etcd_only}, which d-engine does not have yet; \
                 use --target etcd, or --workload register or set",
                self.name()
            )
        })
    }

    /// Transactional workloads (checked by the Elle-style checker).
    pub fn is_txn(self) -> bool {
        matches!(self, WorkloadKind::ListAppend | WorkloadKind::RwRegister)
    }
}

/// What the clients do.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadConfig {
    pub kind: WorkloadKind,
    /// Registers (register), keys in use at once (list-append, rw-register).
    pub keys: usize,
    /// Clients per key (register); the txn and set workloads run
    /// `keys × clients_per_key` clients too, on no key in particular.
    pub clients_per_key: usize,
    pub consistency: Consistency,
    /// Share of reads (register, set), of read-only transactions (txn);
    /// writes and cas split the rest evenly (register).
    pub read_fraction: f64,
    /// Micro-ops per transaction, at most (txn workloads; at least 1).
    pub txn_ops_max: usize,
    /// A key takes this many writes (appends) before the workload moves to a
    /// fresh one, so lists stay short (txn workloads).
    pub writes_per_key: u64,
    /// Watch workload: how often a watcher asks for a progress notification,
    /// ms (0: never).
    pub watch_progress_ms: u64,
    /// Watch workload, a planted bug for testing the suite: every watcher
    /// drops every Nth event it receives before recording it, as a lossy
    /// server would (0: off).
    pub watch_drop_every: u64,
    #[serde(serialize_with = "ser_ms")]
    pub op_timeout: Duration,
    /// Pause between two ops of one client, ms (inclusive range).
    pub think_ms: (u64, u64),
    /// Pause after an op that failed, ms: keeps a dead node from being
    /// hammered (and the history from filling with open ops).
    pub backoff_ms: u64,
    /// Stop after this many ops in total.
    pub ops_max: u64,
    pub seed: u64,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            kind: WorkloadKind::Register,
            keys: 4,
            clients_per_key: 5,
            consistency: Consistency::Linearizable,
            read_fraction: 0.5,
            txn_ops_max: 4,
            writes_per_key: 32,
            watch_progress_ms: 1000,
            watch_drop_every: 0,
            op_timeout: Duration::from_millis(1000),
            think_ms: (5, 40),
            backoff_ms: 100,
            ops_max: 1_000_000,
            seed: 0,
        }
    }
}

impl WorkloadConfig {
    /// The number of logical clients.
    pub fn clients(&self) -> usize {
        self.keys * self.clients_per_key
    }
}

/// What a workload keeps from its run to its final reads.
pub struct WorkloadState {
    /// The keys (txn workloads) or sets (set) the run used.
    keys: txn::KeyPool,
    /// The watch workload's file and watchers.
    watch: Option<(Arc<watch::WatchLog>, Arc<watch::WatchShared>)>,
}

impl WorkloadState {
    /// `out` is the run directory (`watch.jsonl` goes there), `t0` the run's
    /// time zero.
    pub fn new(cfg: &WorkloadConfig, out: &Path, t0: Instant) -> anyhow::Result<WorkloadState> {
        let per_key = match cfg.kind {
            WorkloadKind::Set => set::SET_ADDS_MAX,
            _ => cfg.writes_per_key,
        };
        let watch = match cfg.kind {
            WorkloadKind::Watch => Some((
                Arc::new(watch::WatchLog::create(&out.join("watch.jsonl"), t0)?),
                Arc::default(),
            )),
            _ => None,
        };
        Ok(WorkloadState {
            keys: txn::KeyPool::new(cfg.keys, per_key),
            watch,
        })
    }

    /// Writes out what is buffered.
    pub fn flush(&self) -> anyhow::Result<()> {
        if let Some((log, _)) = &self.watch {
            log.flush()?;
        }
        Ok(())
    }
}

impl Drop for WorkloadState {
    /// A run that stops early leaves no watcher running.
    fn drop(&mut self) {
        if let Some((log, shared)) = &self.watch {
            shared.abort();
            let _ = log.flush();
        }
    }
}

/// Runs `cfg.kind`'s clients until `deadline` or `cfg.ops_max` ops in all.
/// `clients[i]` is a client bound to node i.
pub async fn run(
    rec: &Recorder,
    cfg: &WorkloadConfig,
    state: &WorkloadState,
    clients: &[KvClient],
    deadline: Instant,
) {
    match cfg.kind {
        WorkloadKind::Register => register::run(rec, cfg, clients, deadline).await,
        WorkloadKind::ListAppend | WorkloadKind::RwRegister => {
            txn::run(rec, cfg, &state.keys, clients, deadline).await
        }
        WorkloadKind::Set => set::run(rec, cfg, &state.keys, clients, deadline).await,
        WorkloadKind::Watch => {
            let (log, shared) = state.watch.as_ref().expect("the watch state exists");
            watch::run(rec, log, shared, cfg, clients, deadline).await
        }
    }
}

/// After the heal: reads that end the history (each retried until it
/// succeeds or `deadline` passes), so that whatever was acknowledged is
/// looked for once more. Returns how many succeeded.
pub async fn final_reads_of(
    rec: &Recorder,
    cfg: &WorkloadConfig,
    state: &WorkloadState,
    clients: &[KvClient],
    deadline: Instant,
) -> usize {
    match cfg.kind {
        WorkloadKind::Register => register::final_reads(rec, cfg, clients, deadline).await,
        WorkloadKind::ListAppend | WorkloadKind::RwRegister => {
            txn::final_reads(rec, cfg, &state.keys, clients, deadline).await
        }
        WorkloadKind::Set => set::final_reads(rec, cfg, &state.keys, clients, deadline).await,
        WorkloadKind::Watch => {
            let (log, shared) = state.watch.as_ref().expect("the watch state exists");
            watch::finish(rec, log, shared, clients, deadline).await
        }
    }
}

/// One logical client of a workload: what it does each time its turn comes.
pub(crate) trait Step {
    /// Runs one op; true when it succeeded.
    fn step(&mut self, rng: &mut Rng) -> impl Future<Output = bool>;
}

/// Runs `make(g)` for each of the `cfg.clients()` logical clients, each with
/// a generator of its own seeded from `cfg.seed ^ salt`, one op at a time,
/// until `deadline` or `cfg.ops_max` ops in all; between two ops a think
/// time, or a back-off after a failure.
pub(crate) async fn drive<C: Step>(
    cfg: &WorkloadConfig,
    deadline: Instant,
    salt: u64,
    mut make: impl FnMut(usize) -> C,
) {
    let ops = AtomicU64::new(0);
    let mut seed_rng = Rng::new(cfg.seed ^ salt);
    let tasks = (0..cfg.clients()).map(|g| {
        let mut client = make(g);
        let mut rng = Rng::new(seed_rng.next_u64());
        let ops = &ops;
        async move {
            while Instant::now() < deadline && ops.fetch_add(1, Ordering::Relaxed) < cfg.ops_max {
                let ok = client.step(&mut rng).await;
                let pause = pause_ms(cfg, ok, &mut rng);
                let wake = (Instant::now() + Duration::from_millis(pause)).min(deadline);
                tokio::time::sleep_until(wake.into()).await;
            }
        }
    });
    join_all(tasks).await;
}

/// Process ids of the ops after the heal (final reads, the watch fence):
/// beyond every client's.
pub(crate) const FINAL_PROCESS_BASE: u64 = 1_000_000_000;

/// Tries `op(kv, process)` on each node in turn, `backoff_ms` apart, until
/// it succeeds (true) or `deadline` passes (false). `tries` counts attempts
/// across calls: it picks the node and the process id
/// (`FINAL_PROCESS_BASE + tries`), so no process id is ever reused.
pub(crate) async fn on_each_node_until<F, Fut>(
    clients: &[KvClient],
    deadline: Instant,
    backoff_ms: u64,
    tries: &mut u64,
    mut op: F,
) -> bool
where
    F: FnMut(KvClient, u64) -> Fut,
    Fut: Future<Output = bool>,
{
    while Instant::now() < deadline {
        let kv = clients[*tries as usize % clients.len()].clone();
        let process = FINAL_PROCESS_BASE + *tries;
        *tries += 1;
        if op(kv, process).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
    }
    false
}

/// The pause after an op: a think time after success, a back-off after a
/// failure.
fn pause_ms(cfg: &WorkloadConfig, ok: bool, rng: &mut Rng) -> u64 {
    if ok {
        rng.range(cfg.think_ms.0, cfg.think_ms.1)
    } else {
        cfg.backoff_ms + rng.range(0, cfg.backoff_ms)
    }
}
