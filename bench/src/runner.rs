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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::output::{IntervalSink, new_histogram};
use crate::progress::{Progress, Tick};
use crate::target::{ErrorKind, Target, TargetError};
use crate::workload::{CasHints, Op, OpGenerator, WorkloadKind, WorkloadSpec};

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
    /// Ops and p99 of the last interval, for progress.
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

/// Closed loop: send, wait, repeat until told or timed out.
async fn closed_worker<T: Target>(
    target: Arc<T>,
    shared: Arc<Shared>,
    w: usize,
    mut generator: OpGenerator,
) {
    loop {
        let now = Instant::now();
        if shared.stop.load(Ordering::Relaxed)
            || now >= shared.hard_end
            || shared.end.is_some_and(|e| now >= e)
        {
            break;
        }
        let measured = now >= shared.measure_start;
        if measured
            && let Some(n) = shared.op_target
            && shared.issued.fetch_add(1, Ordering::Relaxed) >= n
        {
            break;
        }
        let op = generator.next_op();
        let sent = Instant::now();
        let result = execute(&*target, &shared, op).await;
        let failed = result.is_err();
        record(&shared, w, measured, sent, sent, result);
        if failed {
            // Do not hammer a node that refuses connections: pause before retrying.
            tokio::time::sleep(ERROR_PAUSE).await;
        }
        // A target that answers without ever waiting (noop) would otherwise keep this
        // task on its thread forever and starve the collector.
        tokio::task::consume_budget().await;
    }
}

/// Open loop: take the next ticket, wait for its intended time, send.
async fn open_worker<T: Target>(
    target: Arc<T>,
    shared: Arc<Shared>,
    w: usize,
    mut generator: OpGenerator,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>>,
) {
    loop {
        let next = rx.lock().await.recv().await;
        let Some(intended) = next else { break };
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        // The pacer hands tickets out on time or late, never early; a late ticket is
        // sent at once and its lateness is part of the latency.
        let measured = intended >= shared.measure_start;
        let op = generator.next_op();
        let sent = Instant::now();
        let result = execute(&*target, &shared, op).await;
        record(&shared, w, measured, intended, sent, result);
        tokio::task::consume_budget().await;
    }
}

/// The pacer (an OS thread, for sub-millisecond timing): ticket `i` is intended for
/// `t0 + i / rate`. Returns how many tickets intended before the end were never sent.
fn pace(
    shared: Arc<Shared>,
    tx: tokio::sync::mpsc::Sender<Instant>,
    rate: f64,
    warmup: Duration,
) -> u64 {
    let period_ns = 1e9 / rate;
    let warmup_tickets = (warmup.as_secs_f64() * rate).ceil() as u64;
    let limit = shared.op_target.map(|n| warmup_tickets + n);
    let stop_at = shared.end.unwrap_or(shared.hard_end).min(shared.hard_end);
    let mut i: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) && limit.is_none_or(|l| i < l) {
        let intended = shared.t0 + Duration::from_nanos((i as f64 * period_ns) as u64);
        if intended >= stop_at {
            return 0;
        }
        // Sleep in short steps so a stop is seen promptly even at very low rates.
        loop {
            let now = Instant::now();
            if intended <= now || shared.stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep((intended - now).min(PACER_STEP));
        }
        // Behind schedule past the end (the target is slower than the rate): what is
        // left is counted as unsent rather than sent after the end.
        if Instant::now() >= stop_at {
            break;
        }
        // Blocks while max_in_flight tickets are queued: the intended times keep
        // their schedule, so the backlog shows as latency.
        if tx.blocking_send(intended).is_err() {
            break;
        }
        i += 1;
    }
    // Stopped early: count the tickets whose time had come but were never sent.
    let due_until = Instant::now().min(stop_at);
    let due = ((due_until - shared.t0).as_nanos() as f64 / period_ns) as u64;
    let due = limit.map_or(due, |l| due.min(l));
    due.saturating_sub(i)
}

/// Sends one operation, bounded by the op timeout.
async fn execute<T: Target>(target: &T, shared: &Shared, op: Op) -> Result<OpDone, TargetError> {
    let fut = async {
        match op {
            Op::Put { key, value } => target.put(key, value).await.map(|_| OpDone::Write),
            Op::Get { key, consistency } => {
                target.get(key, consistency).await.map(|_| OpDone::Read)
            }
            Op::Cas {
                key,
                expected,
                new,
                index,
                ..
            } => {
                let r = target.cas(key, expected, new.clone()).await?;
                if let Some(h) = &shared.cas_hints {
                    let seen = if r.succeeded {
                        Some(&new)
                    } else {
                        r.current.as_ref()
                    };
                    h.learn(index, seen.map(|b| &b[..]));
                }
                Ok(OpDone::Cas {
                    succeeded: r.succeeded,
                })
            }
        }
    };
    match tokio::time::timeout(shared.op_timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(TargetError::new(
            ErrorKind::Timeout,
            format!("no reply within {:?}", shared.op_timeout),
        )),
    }
}

enum OpDone {
    Write,
    Read,
    Cas { succeeded: bool },
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn record(
    shared: &Shared,
    w: usize,
    measured: bool,
    intended: Instant,
    sent: Instant,
    result: Result<OpDone, TargetError>,
) {
    let done = Instant::now();
    if result.is_ok() {
        let ns = (done - shared.t0).as_nanos() as u64;
        shared.last_success_ns.fetch_max(ns, Ordering::Relaxed);
    }
    let mut s = shared.stats[w].lock().expect("stats lock");
    if !measured {
        s.warmup_ops += 1;
        return;
    }
    match result {
        Ok(kind) => {
            s.ops += 1;
            s.latency.saturating_record(micros(done - intended));
            if let Some(h) = &mut s.service {
                h.saturating_record(micros(done - sent));
            }
            match kind {
                OpDone::Write => s.writes += 1,
                OpDone::Read => s.reads += 1,
                OpDone::Cas { succeeded } => {
                    s.writes += 1;
                    s.cas_failed += u64::from(!succeeded);
                }
            }
        }
        Err(e) => {
            s.errors[e.kind.index()] += 1;
            drop(s);
            let mut first = shared.first_errors.lock().expect("errors lock");
            first[e.kind.index()].get_or_insert(e.message);
        }
    }
}

/// Totals drained from the workers for one interval.
struct Drained {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ops: u64,
    errors: [u64; 5],
    reads: u64,
    writes: u64,
    cas_failed: u64,
    warmup_ops: u64,
}

fn drain(shared: &Shared, warmup_only: bool) -> Drained {
    let mut d = Drained {
        latency: new_histogram(),
        service: new_histogram(),
        ops: 0,
        errors: [0; 5],
        reads: 0,
        writes: 0,
        cas_failed: 0,
        warmup_ops: 0,
    };
    for m in &shared.stats {
        let mut s = m.lock().expect("stats lock");
        d.warmup_ops += std::mem::take(&mut s.warmup_ops);
        if warmup_only {
            continue;
        }
        d.latency.add(&s.latency).expect("same histogram bounds");
        s.latency.reset();
        if let Some(h) = &mut s.service {
            d.service.add(&*h).expect("same histogram bounds");
            h.reset();
        }
        d.ops += std::mem::take(&mut s.ops);
        for k in 0..5 {
            d.errors[k] += std::mem::take(&mut s.errors[k]);
        }
        d.reads += std::mem::take(&mut s.reads);
        d.writes += std::mem::take(&mut s.writes);
        d.cas_failed += std::mem::take(&mut s.cas_failed);
    }
    d
}

/// Once a second: drain the workers, write the interval, show progress, decide whether
/// to stop. Returns when every worker has ended (or was aborted).
async fn collect(
    shared: &Arc<Shared>,
    set: &mut JoinSet<()>,
    spec: &RunSpec,
    sink: SinkAt<'_>,
    progress: &Progress,
) -> Measured {
    let open = matches!(spec.load, Load::Open { .. });
    let mut m = Measured::empty(open);
    let wall_t0 = SystemTime::now();
    // Ticks every second during the warm-up (for progress), one exactly at its end,
    // then every second of measurement.
    let mut next = if spec.warmup.is_zero() {
        shared.t0 + INTERVAL
    } else {
        shared.t0 + INTERVAL.min(spec.warmup)
    };
    let mut interval_start = shared.measure_start;
    let mut stopped_at: Option<Instant> = None;
    let mut workers_done = false;
    let mut sink = sink;
    while !workers_done {
        tokio::select! {
            joined = set.join_next() => {
                if joined.is_none() {
                    workers_done = true;
                } else {
                    continue;
                }
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        let now = Instant::now();
        // A tick planned for the warm-up only collects warm-up counts; measured ones
        // that slipped in (the tick ran late) stay for the first measured interval.
        let in_warmup = next <= shared.measure_start && !workers_done;
        let d = drain(shared, in_warmup);
        m.warmup_ops += d.warmup_ops;
        if !in_warmup && now > shared.measure_start {
            write_interval(&mut m, &mut sink, &d, shared, wall_t0, interval_start, now);
            fold(&mut m, d, open);
            m.elapsed = now.saturating_duration_since(shared.measure_start);
        }
        interval_start = if in_warmup { shared.measure_start } else { now };
        progress.tick(&Tick {
            second: m.seconds,
            warming_up: in_warmup,
            ops_total: if in_warmup { m.warmup_ops } else { m.ops },
            ops_last_second: m.last_ops,
            errors_total: m.error_total(),
            p99_us_last_second: m.last_p99_us,
        });
        if stopped_at.is_none()
            && let Some(reason) = should_stop(shared, spec, now)
        {
            shared.stop.store(true, Ordering::Relaxed);
            stopped_at = Some(now);
            m.aborted = Some(reason);
        }
        if let Some(at) = stopped_at
            && now > at + spec.op_timeout + JOIN_GRACE
        {
            set.abort_all();
            m.aborted
                .get_or_insert_with(|| "workers did not stop in time and were aborted".into());
        }
        // The next tick: whole seconds from the start of measurement.
        next = if now < shared.measure_start {
            (now + INTERVAL).min(shared.measure_start)
        } else {
            let k = ((now - shared.measure_start).as_secs_f64() / INTERVAL.as_secs_f64()).floor();
            shared.measure_start + INTERVAL.mul_f64(k + 1.0)
        };
    }
    m
}

/// Why the run must stop now, if it must.
fn should_stop(shared: &Shared, spec: &RunSpec, now: Instant) -> Option<String> {
    if now >= shared.hard_end {
        return Some(format!(
            "the run reached its cap of {:?} and was stopped",
            spec.max_duration
        ));
    }
    let last_ok = shared.t0 + Duration::from_nanos(shared.last_success_ns.load(Ordering::Relaxed));
    if now.saturating_duration_since(last_ok) >= spec.abort_after {
        let first = shared.first_errors.lock().expect("errors lock");
        let last_error = first
            .iter()
            .flatten()
            .next()
            .map_or("no reply at all".to_string(), |e| e.clone());
        return Some(format!(
            "no operation succeeded for {:?}; first error: {last_error}",
            spec.abort_after
        ));
    }
    None
}

fn write_interval(
    m: &mut Measured,
    sink: &mut SinkAt<'_>,
    d: &Drained,
    shared: &Shared,
    wall_t0: SystemTime,
    start: Instant,
    now: Instant,
) {
    let errors: u64 = d.errors.iter().sum();
    let offset = wall_t0.duration_since(sink.base).unwrap_or_default() + (start - shared.t0);
    let second = sink.first_second + m.seconds;
    if let Err(e) = sink
        .sink
        .interval(second, offset, now - start, d.ops, errors, &d.latency)
    {
        m.aborted
            .get_or_insert(format!("cannot write the interval outputs: {e}"));
    }
    m.seconds += 1;
    m.last_ops = d.ops;
    m.last_p99_us = if d.latency.is_empty() {
        0.0
    } else {
        d.latency.value_at_quantile(0.99) as f64
    };
}

fn fold(m: &mut Measured, d: Drained, open: bool) {
    m.latency.add(&d.latency).expect("same histogram bounds");
    if open && let Some(s) = &mut m.service {
        s.add(&d.service).expect("same histogram bounds");
    }
    m.ops += d.ops;
    for k in 0..5 {
        m.errors[k] += d.errors[k];
    }
    m.reads += d.reads;
    m.writes += d.writes;
    m.cas_failed += d.cas_failed;
}
