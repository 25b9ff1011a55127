//! The load loops and the once-a-second collector.
//!
//! Closed loop: `clients` workers, each sends an operation, waits for its reply, repeats.
//! Latency is from send to reply.
//!
//! Open loop: a pacer thread issues tickets at the target rate (ticket `i` is intended
//! for `start + i / rate`) into a queue bounded by `max_in_flight`; workers take tickets
//! and send. Latency is measured from the ticket's *intended* time, so when the target
//! stalls, every request that should have been sent during the stall shows the delay
//! (no coordinated omission). Service time (from the actual send) is kept apart.
//!
//! Every loop is bounded: workers stop at the end of the duration or after the op count,
//! or when the collector stops them (no success for `abort_after`, or `max_duration`
//! reached); each call is bounded by `op_timeout`; workers still running
//! `op_timeout + JOIN_GRACE` after the stop are aborted.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::output::{IntervalSink, new_histogram};
use crate::progress::Progress;
use crate::target::Target;
use crate::workload::{CasHints, OpGenerator, WorkloadKind, WorkloadSpec};

mod collector;
mod workers;

use collector::collect;
use workers::{closed_worker, open_worker, pace};

/// How long workers may take to wind down after the stop, beyond one op timeout.
pub const JOIN_GRACE: Duration = Duration::from_secs(2);
/// How long a closed-loop worker pauses after a failed call.
pub const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Longest single sleep of the open-loop pacer.
const PACER_STEP: Duration = Duration::from_millis(50);
/// The collector's interval (one row of the time series, one hlog histogram).
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How load is offered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// `clients` workers, each waiting for its reply before sending again.
    Closed { clients: usize },
    /// `rate` operations per second in total, at most `max_in_flight` outstanding.
    Open { rate: f64, max_in_flight: usize },
}

impl Load {
    /// The number of concurrent workers.
    pub fn workers(&self) -> usize {
        match *self {
            Load::Closed { clients } => clients,
            Load::Open { max_in_flight, .. } => max_in_flight,
        }
    }
}

/// When the measured phase ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopAt {
    Duration(Duration),
    /// After this many measured operations (successful or not) were sent.
    Ops(u64),
}

/// Everything a run needs besides the target.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub workload: WorkloadSpec,
    pub load: Load,
    pub stop: StopAt,
    /// Excluded from the results; counted apart (`warmup_ops`).
    pub warmup: Duration,
    /// Deadline of one call; past it the call counts as a `timeout` error.
    pub op_timeout: Duration,
    /// The run ends with an error when no call succeeded for this long.
    pub abort_after: Duration,
    /// Hard cap on the whole run (warm-up included), for op-count runs.
    pub max_duration: Duration,
    pub seed: u64,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            workload: WorkloadSpec::default(),
            load: Load::Closed { clients: 16 },
            stop: StopAt::Duration(Duration::from_secs(10)),
            warmup: Duration::from_secs(2),
            op_timeout: Duration::from_secs(5),
            abort_after: Duration::from_secs(5),
            max_duration: Duration::from_secs(3600),
            seed: 1,
        }
    }
}

impl RunSpec {
    pub fn validate(&self) -> Result<(), String> {
        self.workload.validate()?;
        match self.load {
            Load::Closed { clients: 0 } => return Err("clients must be at least 1".into()),
            Load::Open {
                rate,
                max_in_flight,
            } => {
                if !(rate > 0.0 && rate.is_finite()) {
                    return Err(format!("rate {rate} must be > 0"));
                }
                if max_in_flight == 0 {
                    return Err("max in flight (clients) must be at least 1".into());
                }
            }
            Load::Closed { .. } => {}
        }
        if self.op_timeout.is_zero() || self.abort_after.is_zero() {
            return Err("op_timeout and abort_after must be > 0".into());
        }
        Ok(())
    }
}

/// What one worker has recorded since the collector last drained it.
struct WorkerStats {
    latency: Histogram<u64>,
    /// Open loop only (a histogram is ~190 KB; closed-loop workers do without).
    service: Option<Histogram<u64>>,
    ops: u64,
    errors: [u64; 5],
    reads: u64,
    writes: u64,
    cas_failed: u64,
    warmup_ops: u64,
}

impl WorkerStats {
    fn new(open: bool) -> WorkerStats {
        WorkerStats {
            latency: new_histogram(),
            service: open.then(new_histogram),
            ops: 0,
            errors: [0; 5],
            reads: 0,
            writes: 0,
            cas_failed: 0,
            warmup_ops: 0,
        }
    }
}

/// State shared by the workers, the pacer and the collector.
struct Shared {
    stats: Vec<Mutex<WorkerStats>>,
    stop: AtomicBool,
    /// Measured operations sent (closed loop with an op count).
    issued: AtomicU64,
    /// Nanoseconds since `t0` of the last success.
    last_success_ns: AtomicU64,
    first_errors: Mutex<[Option<String>; 5]>,
    t0: Instant,
    measure_start: Instant,
    /// End of the measured phase (timed runs) and the hard cap.
    end: Option<Instant>,
    hard_end: Instant,
    op_target: Option<u64>,
    op_timeout: Duration,
    cas_hints: Option<Arc<CasHints>>,
    sequence: Arc<AtomicU64>,
}

/// The merged result of a run (or of one round of a compare).
#[derive(Clone, Debug)]
pub struct Measured {
    /// Latency of successful measured calls, microseconds (open loop: from intended time).
    pub latency: Histogram<u64>,
    /// Open loop only: from the actual send.
    pub service: Option<Histogram<u64>>,
    pub ops: u64,
    pub errors: [u64; 5],
    pub reads: u64,
    pub writes: u64,
    pub cas_failed: u64,
    pub warmup_ops: u64,
    /// Length of the measured phase.
    pub elapsed: Duration,
    /// Open loop: tickets intended before the end that were never sent.
    pub unsent: Option<u64>,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
    /// The first error message of each kind.
    pub first_errors: [Option<String>; 5],
    /// Measured seconds written to the sink.
    pub seconds: u64,
    /// Ops/s and p99 of the last interval, for progress.
    pub last_ops: u64,
    pub last_p99_us: f64,
}

impl Measured {
    pub fn empty(open: bool) -> Measured {
        Measured {
            latency: new_histogram(),
            service: open.then(new_histogram),
            ops: 0,
            errors: [0; 5],
            reads: 0,
            writes: 0,
            cas_failed: 0,
            warmup_ops: 0,
            elapsed: Duration::ZERO,
            unsent: None,
            aborted: None,
            first_errors: Default::default(),
            seconds: 0,
            last_ops: 0,
            last_p99_us: 0.0,
        }
    }

    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Folds another round into this one.
    pub fn merge(&mut self, o: &Measured) {
        self.latency.add(&o.latency).expect("same histogram bounds");
        if let (Some(a), Some(b)) = (&mut self.service, &o.service) {
            a.add(b).expect("same histogram bounds");
        }
        self.ops += o.ops;
        for k in 0..5 {
            self.errors[k] += o.errors[k];
            if self.first_errors[k].is_none() {
                self.first_errors[k] = o.first_errors[k].clone();
            }
        }
        self.reads += o.reads;
        self.writes += o.writes;
        self.cas_failed += o.cas_failed;
        self.warmup_ops += o.warmup_ops;
        self.elapsed += o.elapsed;
        self.seconds += o.seconds;
        self.unsent = match (self.unsent, o.unsent) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        if self.aborted.is_none() {
            self.aborted = o.aborted.clone();
        }
    }
}

/// Where the collector writes each second, and where those seconds sit in the log.
pub struct SinkAt<'a> {
    pub sink: &'a mut IntervalSink,
    /// The sink's base time (its hlog's BaseTime).
    pub base: SystemTime,
    /// The row label of this run's first measured second.
    pub first_second: u64,
}

/// Runs `spec` against `target`, writing each measured second to `sink`.
pub async fn run_load<T: Target>(
    target: Arc<T>,
    spec: &RunSpec,
    sink: SinkAt<'_>,
    progress: &Progress,
) -> Measured {
    let t0 = Instant::now();
    let measure_start = t0 + spec.warmup;
    let hard_end = t0 + spec.max_duration;
    let (end, op_target) = match spec.stop {
        StopAt::Duration(d) => (Some((measure_start + d).min(hard_end)), None),
        StopAt::Ops(n) => (None, Some(n)),
    };
    let workers = spec.load.workers();
    let shared = Arc::new(Shared {
        stats: (0..workers)
            .map(|_| Mutex::new(WorkerStats::new(matches!(spec.load, Load::Open { .. }))))
            .collect(),
        stop: AtomicBool::new(false),
        issued: AtomicU64::new(0),
        last_success_ns: AtomicU64::new(0),
        first_errors: Mutex::new(Default::default()),
        t0,
        measure_start,
        end,
        hard_end,
        op_target,
        op_timeout: spec.op_timeout,
        cas_hints: (spec.workload.kind == WorkloadKind::Cas)
            .then(|| CasHints::new(spec.workload.keys)),
        sequence: Arc::new(AtomicU64::new(0)),
    });
    let mut set = JoinSet::new();
    let mut pacer = None;
    match spec.load {
        Load::Closed { clients } => {
            for w in 0..clients {
                let generator = generator(spec, &shared, w);
                set.spawn(closed_worker(target.clone(), shared.clone(), w, generator));
            }
        }
        Load::Open {
            rate,
            max_in_flight,
        } => {
            let (tx, rx) = tokio::sync::mpsc::channel(max_in_flight);
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for w in 0..max_in_flight {
                let generator = generator(spec, &shared, w);
                let rx = rx.clone();
                set.spawn(open_worker(
                    target.clone(),
                    shared.clone(),
                    w,
                    generator,
                    rx,
                ));
            }
            let sh = shared.clone();
            let warmup = spec.warmup;
            pacer = Some(std::thread::spawn(move || pace(sh, tx, rate, warmup)));
        }
    }
    let mut measured = collect(&shared, &mut set, spec, sink, progress).await;
    if let Some(p) = pacer {
        // The pacer stops once the stop flag is set or every worker has gone (within
        // one PACER_STEP); join it off the async threads all the same.
        let joined = tokio::task::spawn_blocking(move || p.join().ok()).await;
        measured.unsent = joined.ok().flatten();
    }
    measured.first_errors = shared.first_errors.lock().expect("errors lock").clone();
    measured
}

fn generator(spec: &RunSpec, shared: &Shared, w: usize) -> OpGenerator {
    OpGenerator::new(
        &spec.workload,
        spec.seed,
        w as u64,
        spec.load.workers() as u64,
        shared.cas_hints.clone(),
    )
    .with_shared_sequence(shared.sequence.clone())
}
