//! The workers (closed and open loop), the open loop's pacer, and the recording of
//! each call's outcome.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{ERROR_PAUSE, PACER_STEP, Shared};
use crate::target::{ErrorKind, Target, TargetError};
use crate::workload::{Op, OpGenerator};

/// Closed loop: send, wait, repeat until told or timed out.
pub(super) async fn closed_worker<T: Target>(
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
pub(super) async fn open_worker<T: Target>(
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
pub(super) fn pace(
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
            Op::Txn { reads, writes } => {
                let done = if writes.is_empty() {
                    OpDone::Read
                } else {
                    OpDone::Write
                };
                target.txn(reads, writes).await.map(|_| done)
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
