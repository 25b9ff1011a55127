//! The linearizability checker.
//!
//! 1. Decode every op with the model (an unknown op makes the history
//!    unreadable, before any search).
//! 2. Drop `fail` ops (they did not happen) and read-only ops with an
//!    unknown outcome (they constrain nothing).
//! 3. Split by the model's partition (P-compositionality: a history is
//!    linearizable iff each independent part is), biggest part first.
//! 4. Search the parts on a bounded pool of threads, in time slices that
//!    double each round, so a part that is quickly refuted is found even
//!    while harder parts are still open (with early stop, the verdict does
//!    not wait for those). Stop when the deadline or cancel token fires.

pub mod hash;
mod linearized;
mod search;
mod seen;
mod states;
mod stop;

pub use stop::{CancelToken, StopReason};

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::HistoryError;
use crate::history::{Operation, Status};
use crate::model::Model;
use search::{Search, SearchOp, SearchOutcome, SearchVerdict};
use stop::Stop;

/// Knobs of one check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Give up (verdict Unknown) after this long.
    pub timeout: Option<Duration>,
    pub cancel: Option<CancelToken>,
    /// Worker threads; 0 = one per available core.
    pub threads: usize,
    /// Check all ops as one partition (the model's state must then cover
    /// all keys, as the built-in models' states do).
    pub single_partition: bool,
    /// Stop the other partitions once one is found not linearizable.
    pub stop_on_first_illegal: bool,
    /// Bound on the search tables of all workers together; beyond it the
    /// verdict is Unknown rather than the machine swapping.
    pub memory_limit_bytes: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: None,
            cancel: None,
            threads: 0,
            single_partition: false,
            stop_on_first_illegal: true,
            memory_limit_bytes: 4 << 30,
        }
    }
}

/// The answer for a history or one of its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Linearizable,
    Illegal,
    /// Not decided (deadline, cancel, memory limit): neither a pass nor a
    /// violation.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::Illegal => "not linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The result for one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionResult {
    /// The partition's key, when partitioned by key.
    pub key: Option<String>,
    /// The ops checked (indices into the operation list).
    pub ops: Vec<usize>,
    pub verdict: Verdict,
    pub reason: Option<StopReason>,
    /// When Illegal: the longest sequence of ops that could be linearized,
    /// in linearization order.
    pub longest_prefix: Vec<usize>,
    /// When Illegal: the ops that could not be placed after that prefix.
    pub unplaceable: Vec<usize>,
    /// Configurations (linearized set, state) explored.
    pub explored: u64,
}

/// The result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub model: String,
    pub verdict: Verdict,
    /// Ops in the search (after dropping `fail` and unknown reads).
    pub ops_checked: usize,
    pub partitions: Vec<PartitionResult>,
    #[serde(serialize_with = "ser_duration_ms")]
    pub elapsed: Duration,
}

fn ser_duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

impl CheckResult {
    /// The first partition that is not linearizable, if any.
    pub fn failing_partition(&self) -> Option<&PartitionResult> {
        self.partitions
            .iter()
            .find(|p| p.verdict == Verdict::Illegal)
    }
}

/// A decoded op kept for the search.
struct Decoded<M: Model> {
    op: usize,
    input: M::Input,
    output: Option<M::Output>,
}

/// Checks `ops` (from [`crate::pair`]) against `model`.
///
/// Errors only when an op cannot be decoded; a check that runs out of time
/// returns `Ok` with verdict Unknown.
pub fn check<M: Model>(
    model: &M,
    ops: &[Operation],
    options: &CheckOptions,
) -> Result<CheckResult, HistoryError> {
    let start = Instant::now();
    let (decoded, groups) = decode_and_partition(model, ops, options.single_partition)?;
    let illegal_found = AtomicBool::new(false);
    let memory_used = AtomicUsize::new(0);
    let stop = Stop {
        deadline: options.timeout.map(|t| start + t),
        cancel: options.cancel.as_ref(),
        illegal_found: options.stop_on_first_illegal.then_some(&illegal_found),
        memory_used: &memory_used,
        memory_limit_bytes: options.memory_limit_bytes,
    };
    let group_ops: Vec<Vec<SearchOp<'_, M>>> = groups
        .iter()
        .map(|group| search_ops(ops, &decoded, group))
        .collect();
    let threads = worker_count(options.threads, groups.len(), decoded.len());
    let outcomes = run_pool(model, &group_ops, threads, &stop, &illegal_found);
    let partitions: Vec<PartitionResult> = groups
        .iter()
        .zip(outcomes)
        .map(|(group, outcome)| {
            let op_ids: Vec<usize> = group.iter().map(|&d| decoded[d].op).collect();
            let key = if options.single_partition {
                None
            } else {
                ops[op_ids[0]].key.clone()
            };
            partition_result(key, op_ids, outcome)
        })
        .collect();
    let verdict = if partitions.iter().any(|p| p.verdict == Verdict::Illegal) {
        Verdict::Illegal
    } else if partitions.iter().any(|p| p.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Ok(CheckResult {
        model: model.name().to_owned(),
        verdict,
        ops_checked: decoded.len(),
        partitions,
        elapsed: start.elapsed(),
    })
}

/// How many threads to search with.
fn worker_count(requested: usize, groups: usize, ops: usize) -> usize {
    // Starting threads costs more than checking a small history.
    if ops < PARALLEL_MIN_OPS {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if requested == 0 { cores } else { requested };
    wanted.min(groups).max(1)
}

/// The search's view of one group's ops.
fn search_ops<'a, M: Model>(
    ops: &[Operation],
    decoded: &'a [Decoded<M>],
    group: &[usize],
) -> Vec<SearchOp<'a, M>> {
    group
        .iter()
        .map(|&d| {
            let d = &decoded[d];
            let op = &ops[d.op];
            SearchOp {
                id: d.op,
                call: op.call,
                ret: op.effective_return(),
                input: &d.input,
                output: d.output.as_ref(),
            }
        })
        .collect()
}

fn partition_result(
    key: Option<String>,
    ops: Vec<usize>,
    outcome: SearchOutcome,
) -> PartitionResult {
    let (verdict, reason) = match outcome.verdict {
        SearchVerdict::Linearizable => (Verdict::Linearizable, None),
        SearchVerdict::Illegal => (Verdict::Illegal, None),
        SearchVerdict::Unknown(r) => (Verdict::Unknown, Some(r)),
    };
    PartitionResult {
        key,
        ops,
        verdict,
        reason,
        longest_prefix: outcome.longest,
        unplaceable: outcome.unplaceable,
        explored: outcome.explored,
    }
}

type Groups = Vec<Vec<usize>>;

/// Decodes the ops and groups the ones the search needs by partition,
/// largest group first (so the pool's tail is short).
fn decode_and_partition<M: Model>(
    model: &M,
    ops: &[Operation],
    single: bool,
) -> Result<(Vec<Decoded<M>>, Groups), HistoryError> {
    let mut decoded = Vec::with_capacity(ops.len());
    let mut group_of: HashMap<u64, usize, hash::FastBuildHasher> = HashMap::default();
    let mut groups: Groups = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let input = model
            .decode_input(op)
            .map_err(|m| HistoryError::new(op.call_line, m))?;
        let output = match op.status {
            Status::Fail => continue,
            Status::Info if model.is_read_only(&input) => continue,
            Status::Info => None,
            Status::Ok => Some(
                model
                    .decode_output(&input, &op.output)
                    .map_err(|m| HistoryError::new(op.ret_line.unwrap_or(op.call_line), m))?,
            ),
        };
        let part = if single {
            0
        } else {
            model.partition(op, &input)
        };
        let g = *group_of.entry(part).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(decoded.len());
        decoded.push(Decoded {
            op: i,
            input,
            output,
        });
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    Ok((decoded, groups))
}

/// Below this many ops the check runs on the caller's thread alone: the
/// searches take less time than spawning workers (measured on the fixtures:
/// a few hundred ops check in about 100 µs).
const PARALLEL_MIN_OPS: usize = 1000;

/// Steps of a partition's first time slice; each later slice is twice as
/// long, up to `SLICE_MAX`.
const SLICE_FIRST: u64 = 1 << 12;
const SLICE_MAX: u64 = 1 << 22;
/// How long the caller works alone before starting helper threads.
const SOLO_MAX: Duration = Duration::from_millis(5);

/// A partition waiting for (more) time. Its search is built on first run so
/// partitions not reached yet cost no memory.
struct Task<'a, 'm, M: Model> {
    group: usize,
    search: Option<Search<'a, 'm, M>>,
    budget: u64,
}

struct Queue<T> {
    tasks: VecDeque<T>,
    /// Tasks taken by a worker and not yet finished or put back; while any
    /// are out, an idle worker waits instead of leaving.
    in_flight: usize,
}

/// Searches every group with at most `threads` threads (the caller's thread
/// alone if 1), round-robin in growing slices. Results in group order.
fn run_pool<'a, M: Model>(
    model: &M,
    groups: &'a [Vec<SearchOp<'a, M>>],
    threads: usize,
    stop: &Stop<'_>,
    illegal_found: &AtomicBool,
) -> Vec<SearchOutcome> {
    let queue = Mutex::new(Queue {
        tasks: (0..groups.len())
            .map(|group| Task {
                group,
                search: None,
                budget: SLICE_FIRST,
            })
            .collect(),
        in_flight: 0,
    });
    let wake = Condvar::new();
    let results: Mutex<Vec<Option<SearchOutcome>>> =
        Mutex::new((0..groups.len()).map(|_| None).collect());
    // `solo`: run on the caller's thread alone, for at most this many tasks
    // and until this instant; `None`: run until the queue is empty.
    let worker = |solo: Option<(usize, Instant)>| {
        let mut taken = 0;
        loop {
            if let Some((max_tasks, until)) = solo
                && (taken == max_tasks || Instant::now() >= until)
            {
                return;
            }
            taken += 1;
            let task = {
                let mut q = queue.lock().expect("checker queue poisoned");
                loop {
                    if let Some(t) = q.tasks.pop_front() {
                        q.in_flight += 1;
                        break Some(t);
                    }
                    if q.in_flight == 0 {
                        break None;
                    }
                    q = wake.wait(q).expect("checker queue poisoned");
                }
            };
            let Some(mut task) = task else {
                wake.notify_all();
                return;
            };
            let search = task
                .search
                .get_or_insert_with(|| Search::new(model, &groups[task.group]));
            let outcome = search.run(task.budget, stop);
            let mut q = queue.lock().expect("checker queue poisoned");
            q.in_flight -= 1;
            match outcome {
                Some(outcome) => {
                    if outcome.verdict == SearchVerdict::Illegal {
                        illegal_found.store(true, Ordering::Relaxed);
                    }
                    let group = task.group;
                    // Free the search's tables outside the results lock.
                    drop(task);
                    results.lock().expect("checker results poisoned")[group] = Some(outcome);
                }
                None => {
                    task.budget = (task.budget * 2).min(SLICE_MAX);
                    q.tasks.push_back(task);
                }
            }
            drop(q);
            wake.notify_all();
        }
    };
    // The caller first gives every partition one slice alone: most checks
    // end there (small histories, or a quickly refuted partition), and
    // helpers would only add start-up and join latency, which on a busy
    // machine is far longer than the check.
    worker(Some((groups.len(), Instant::now() + SOLO_MAX)));
    let more = !queue
        .lock()
        .expect("checker queue poisoned")
        .tasks
        .is_empty();
    if more && threads <= 1 {
        worker(None);
    } else if more {
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(|| worker(None));
            }
            worker(None);
        });
    }
    results
        .into_inner()
        .expect("checker results poisoned")
        .into_iter()
        .map(|r| r.expect("every group is checked"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KvModel;
    use crate::{pair, synth};

    /// Runs every partition's search to the end, in slices of `slice` steps.
    fn verdicts_in_slices(ops: &[Operation], slice: u64) -> Vec<SearchVerdict> {
        let (decoded, groups) = decode_and_partition(&KvModel, ops, false).unwrap();
        let memory_used = AtomicUsize::new(0);
        let stop = Stop {
            deadline: None,
            cancel: None,
            illegal_found: None,
            memory_used: &memory_used,
            memory_limit_bytes: usize::MAX,
        };
        groups
            .iter()
            .map(|g| {
                let group_ops = search_ops(ops, &decoded, g);
                let mut search = Search::new(&KvModel, &group_ops);
                loop {
                    if let Some(outcome) = search.run(slice, &stop) {
                        break outcome.verdict;
                    }
                }
            })
            .collect()
    }

    #[test]
    fn resuming_in_tiny_slices_changes_nothing() {
        for seed in 1..6 {
            let mut history = synth::linearizable_kv(seed, 300, 3, 6);
            // Corrupt one read so some partitions are illegal.
            if let Some(e) = history
                .events
                .iter_mut()
                .rev()
                .find(|e| e.f == "get" && e.kind == crate::EventType::Ok)
            {
                e.value = "corrupt".into();
            }
            let ops = pair(&history).unwrap();
            let whole = verdicts_in_slices(&ops, u64::MAX / 2);
            assert!(whole.contains(&SearchVerdict::Illegal));
            assert_eq!(verdicts_in_slices(&ops, 3), whole, "seed {seed}");
            assert_eq!(verdicts_in_slices(&ops, 1), whole, "seed {seed}");
        }
    }
}
