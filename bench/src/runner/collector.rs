//! The once-a-second collector: drains the workers, writes each interval, shows
//! progress, and decides when a run must stop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{INTERVAL, JOIN_GRACE, Load, Measured, RunSpec, Shared, SinkAt};
use crate::output::new_histogram;
use crate::progress::{Progress, Tick};

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
pub(super) async fn collect(
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
    // A rate, so the short last interval of a round does not read as a drop.
    let secs = (now - start).as_secs_f64().max(1e-3);
    m.last_ops = (d.ops as f64 / secs).round() as u64;
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
