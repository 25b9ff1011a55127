//! Differential test of the transactional checker against a brute-force
//! oracle that tries every order of the committed transactions (and every
//! subset of those with an unknown outcome) on small random list-append
//! histories from a deliberately buggy simulated database.
//!
//! The checker claims only what reads prove, so the properties are:
//! * it says "not serializable" (or "not strict serializable") only when the
//!   oracle finds no such order;
//! * when the reads reveal the whole version order (every committed append
//!   is in some read, an unknown-outcome transaction's appends all or none),
//!   it finds a violation whenever the oracle finds no order.

use d_engine_histories::Status;
use d_engine_histories::synth::Rng;
use d_engine_histories::txn::{
    Consistency, ModelVerdict, Mop, Seen, TxnHistory, TxnMeta, TxnOptions, Workload, check,
};

/// A planned transaction: (key, Some(value) to append | None to read).
type Plan = Vec<(u32, Option<i64>)>;

/// Random statuses and positions for `n` transactions on a few processes:
/// (process, call, ret, status). A process whose txn had an unknown outcome
/// is replaced by a new one, as Jepsen does.
fn schedule(rng: &mut Rng, n: usize) -> Vec<(u64, u64, u64, Status)> {
    let procs = 1 + rng.below(3) as usize;
    let mut slot_of: Vec<usize> = (0..n).map(|_| rng.below(procs as u64) as usize).collect();
    slot_of.sort_unstable();
    let mut queues: Vec<Vec<usize>> = vec![Vec::new(); procs];
    for (t, &s) in slot_of.iter().enumerate() {
        queues[s].push(t);
    }
    let status: Vec<Status> = (0..n)
        .map(|_| match rng.below(10) {
            0 => Status::Fail,
            1 => Status::Info,
            _ => Status::Ok,
        })
        .collect();
    let mut out = vec![(0, 0, 0, Status::Ok); n];
    let mut next_process = procs as u64;
    let mut process: Vec<u64> = (0..procs as u64).collect();
    // Per slot: index into its queue, and whether its current txn is open.
    let mut at = vec![(0usize, false); procs];
    let mut clock = 0;
    while at.iter().enumerate().any(|(s, a)| a.0 < queues[s].len()) {
        let s = rng.below(procs as u64) as usize;
        let (i, open) = at[s];
        let Some(&t) = queues[s].get(i) else { continue };
        if open {
            out[t].2 = clock;
            at[s] = (i + 1, false);
            if status[t] == Status::Info {
                process[s] = next_process;
                next_process += 1;
            }
        } else {
            out[t] = (process[s], clock, 0, status[t]);
            at[s].1 = true;
        }
        clock += 1;
    }
    out
}

/// A random history from a database that sometimes reads stale snapshots,
/// applies failed appends and corrupts reads.
fn generate(rng: &mut Rng, workload: Workload) -> TxnHistory {
    let keys = 2 + rng.below(2) as u32;
    let final_read = rng.chance(60);
    let n = 2 + rng.below(if final_read { 4 } else { 5 }) as usize;
    let mut next_value = 1;
    let plans: Vec<Plan> = (0..n)
        .map(|_| {
            (0..1 + rng.below(3))
                .map(|_| {
                    let key = rng.below(keys as u64) as u32;
                    let append = rng.chance(55).then(|| {
                        next_value += 1;
                        next_value
                    });
                    (key, append)
                })
                .collect()
        })
        .collect();
    let sched = schedule(rng, n);
    let mut h = TxnHistory {
        keys: (0..keys).map(|k| format!("k{k}")).collect(),
        ..TxnHistory::default()
    };
    let mut states: Vec<Vec<Vec<i64>>> = vec![vec![Vec::new(); keys as usize]];
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut mops: Vec<Vec<Mop>> = vec![Vec::new(); n];
    for &t in &order {
        mops[t] = execute(rng, &mut h, &mut states, &plans[t], sched[t].3);
        if workload == Workload::RwRegister {
            to_register(&h, &mut mops[t]);
        }
    }
    let mut last = 0;
    for (t, &(process, call, ret, status)) in sched.iter().enumerate() {
        let meta = TxnMeta {
            process,
            status,
            call,
            ret: (status != Status::Info).then_some(ret),
            call_line: call as usize + 1,
            ret_line: (status != Status::Info).then_some(ret as usize + 1),
        };
        h.push_txn(meta, &mops[t]);
        last = last.max(ret).max(call);
    }
    if final_read {
        let now = states.last().expect("initial state").clone();
        let mut reads: Vec<Mop> = (0..keys)
            .map(|key| Mop::Read {
                key,
                seen: h.push_list(&now[key as usize]),
            })
            .collect();
        if workload == Workload::RwRegister {
            to_register(&h, &mut reads);
        }
        h.push_txn(TxnMeta::ok(1000, last + 1, last + 2), &reads);
    }
    h
}

/// Runs one transaction on a (maybe stale) snapshot, applying its appends to
/// the current state if it "commits".
fn execute(
    rng: &mut Rng,
    h: &mut TxnHistory,
    states: &mut Vec<Vec<Vec<i64>>>,
    plan: &Plan,
    status: Status,
) -> Vec<Mop> {
    let pick = |rng: &mut Rng, states: &Vec<Vec<Vec<i64>>>| {
        if rng.chance(70) {
            states.len() - 1
        } else {
            rng.below(states.len() as u64) as usize
        }
    };
    let snapshot = pick(rng, states);
    let mut view = states[snapshot].clone();
    let mut out = Vec::new();
    for &(key, append) in plan {
        let k = key as usize;
        match append {
            Some(value) => {
                view[k].push(value);
                out.push(Mop::Append { key, value });
            }
            None if status != Status::Ok => out.push(Mop::Read {
                key,
                seen: Seen::Unknown,
            }),
            None => {
                let mut list = if rng.chance(10) {
                    let other = pick(rng, states);
                    states[other][k].clone()
                } else {
                    view[k].clone()
                };
                corrupt(rng, &mut list);
                out.push(Mop::Read {
                    key,
                    seen: h.push_list(&list),
                });
            }
        }
    }
    let applied = match status {
        Status::Ok => true,
        Status::Fail => rng.chance(20),
        Status::Info => rng.chance(50),
    };
    if applied {
        let mut now = states.last().expect("initial state").clone();
        for &(key, append) in plan {
            if let Some(v) = append {
                now[key as usize].push(v);
            }
        }
        states.push(now);
    }
    out
}

/// The same transaction on registers: an append becomes a write, and a
/// read returns the last value of the list (the last write), or nil.
fn to_register(h: &TxnHistory, mops: &mut [Mop]) {
    for m in mops {
        *m = match *m {
            Mop::Append { key, value } => Mop::Write { key, value },
            Mop::Read { key, seen } if seen != Seen::Unknown => Mop::Read {
                key,
                seen: h.list(seen).last().map_or(Seen::Nil, |&v| Seen::Value(v)),
            },
            other => other,
        };
    }
}

fn corrupt(rng: &mut Rng, list: &mut Vec<i64>) {
    if !rng.chance(4) {
        return;
    }
    match rng.below(3) {
        0 => {
            list.pop();
        }
        1 => list.push(999),
        _ if list.len() >= 2 => list.swap(0, 1),
        _ => {}
    }
}

/// Brute force: is there an order of all `ok` txns plus any subset of
/// `info` ones in which every committed read returns exactly the list it
/// returned (respecting real time if `strict`)?
fn oracle(h: &TxnHistory, strict: bool) -> bool {
    let live: Vec<usize> = (0..h.txns.len())
        .filter(|&t| h.txns[t].status != Status::Fail)
        .collect();
    let mut placed = vec![false; h.txns.len()];
    let state = vec![Vec::new(); h.keys.len()];
    place(h, &live, &mut placed, &state, strict)
}

fn place(
    h: &TxnHistory,
    live: &[usize],
    placed: &mut Vec<bool>,
    state: &[Vec<i64>],
    strict: bool,
) -> bool {
    if live
        .iter()
        .all(|&t| placed[t] || h.txns[t].status == Status::Info)
    {
        return true;
    }
    for &t in live {
        if placed[t] {
            continue;
        }
        // Real time: every committed txn that completed before t was
        // invoked must already be placed.
        let blocked = strict
            && live.iter().any(|&u| {
                !placed[u]
                    && h.txns[u].status == Status::Ok
                    && h.txns[u].ret.is_some_and(|r| r < h.txns[t].call)
            });
        if blocked {
            continue;
        }
        let Some(next) = run(h, t, state) else {
            continue;
        };
        placed[t] = true;
        let ok = place(h, live, placed, &next, strict);
        placed[t] = false;
        if ok {
            return true;
        }
    }
    false
}

/// The state after txn `t`, if its reads match.
fn run(h: &TxnHistory, t: usize, state: &[Vec<i64>]) -> Option<Vec<Vec<i64>>> {
    let mut s = state.to_vec();
    for m in h.mops(t) {
        match *m {
            Mop::Append { key, value } => s[key as usize].push(value),
            Mop::Write { key, value } => s[key as usize] = vec![value],
            Mop::Read { key, seen } => {
                let now = s[key as usize].as_slice();
                let matches = match seen {
                    Seen::Unknown => true,
                    Seen::Nil => now.is_empty(),
                    Seen::Value(v) => now == [v],
                    Seen::List { .. } => h.list(seen) == now,
                };
                if !matches {
                    return None;
                }
            }
        }
    }
    Some(s)
}

/// Whether the reads show every committed append, and of each
/// unknown-outcome txn all appends or none.
fn reads_are_complete(h: &TxnHistory) -> bool {
    let mut seen = std::collections::HashSet::new();
    for t in 0..h.txns.len() {
        if h.txns[t].status == Status::Ok {
            for m in h.mops(t) {
                if let Mop::Read { key, seen: s } = *m {
                    seen.extend(h.list(s).iter().map(|&v| (key, v)));
                }
            }
        }
    }
    (0..h.txns.len()).all(|t| {
        let appends: Vec<bool> = h
            .mops(t)
            .iter()
            .filter_map(|m| match *m {
                Mop::Append { key, value } => Some(seen.contains(&(key, value))),
                _ => None,
            })
            .collect();
        match h.txns[t].status {
            Status::Ok => appends.iter().all(|&s| s),
            Status::Info => appends.iter().all(|&s| s) || appends.iter().all(|&s| !s),
            Status::Fail => true,
        }
    })
}

#[test]
fn checker_agrees_with_brute_force() {
    let mut rng = Rng::new(0x5eed_7a11);
    let (mut complete, mut refuted, mut refuted_strict) = (0, 0, 0);
    for case in 0..30_000 {
        let h = generate(&mut rng, Workload::ListAppend);
        let result = check(Workload::ListAppend, &h, &TxnOptions::default()).unwrap();
        for (model, strict) in [
            (Consistency::Serializable, false),
            (Consistency::StrictSerializable, true),
        ] {
            let possible = oracle(&h, strict);
            let verdict = result.verdict(model);
            let context = || {
                let txns: Vec<String> = (0..h.txns.len())
                    .map(|t| {
                        format!(
                            "{:?} {:?}: {}",
                            h.txns[t].status,
                            (h.txns[t].call, h.txns[t].ret),
                            h.mops_text(t)
                        )
                    })
                    .collect();
                format!(
                    "case {case}, {}: oracle {possible}, checker {verdict:?}\n{}\n{:#?}",
                    model.as_str(),
                    txns.join("\n"),
                    result.anomalies
                )
            };
            if verdict == ModelVerdict::Invalid {
                assert!(!possible, "false anomaly: {}", context());
            }
            if reads_are_complete(&h) && !possible {
                assert_eq!(verdict, ModelVerdict::Invalid, "missed: {}", context());
            }
            match (strict, possible) {
                (false, false) => refuted += 1,
                (true, false) => refuted_strict += 1,
                _ => {}
            }
        }
        complete += usize::from(reads_are_complete(&h));
    }
    println!("{complete} complete, {refuted} not serializable, {refuted_strict} not strict");
    // The generator must exercise both sides, or the test proves nothing.
    assert!(complete > 5000, "{complete} complete histories");
    assert!(
        refuted > 2500 && refuted_strict > refuted,
        "{refuted} / {refuted_strict}"
    );
}

/// Registers: the inference is deliberately incomplete (blind writes stay
/// unordered), so only soundness is checked, and that it finds something.
#[test]
fn register_checker_never_claims_more_than_brute_force() {
    let mut rng = Rng::new(0x0bad_cafe);
    let mut found = 0;
    for case in 0..20_000 {
        let h = generate(&mut rng, Workload::RwRegister);
        let result = check(Workload::RwRegister, &h, &TxnOptions::default()).unwrap();
        for (model, strict) in [
            (Consistency::Serializable, false),
            (Consistency::StrictSerializable, true),
        ] {
            if result.verdict(model) == ModelVerdict::Invalid {
                found += 1;
                assert!(
                    !oracle(&h, strict),
                    "case {case}, {}: false anomaly {:#?}",
                    model.as_str(),
                    result.anomalies
                );
            }
        }
    }
    assert!(found > 2000, "{found} violations found");
}
