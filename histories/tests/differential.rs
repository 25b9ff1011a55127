//! Randomized differential test: the checker against a brute-force search
//! over every order of the ops consistent with real time, on small random
//! histories with `fail` and `info` ops and deliberately corrupted results.

use d_engine_histories::{
    CheckOptions, Event, EventType, History, KvModel, Model, Operation, RegisterModel, Status,
    Value, Verdict, check, pair,
};

/// xorshift64*: deterministic, no dependency, good enough for test input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A decoded op for the brute force.
type Decoded<'a, M> = (
    &'a Operation,
    <M as Model>::Input,
    Option<<M as Model>::Output>,
);

/// A simulated client's open op: (f, key, input, result once applied).
type OpenOp = (String, usize, Value, Option<Value>);

/// Brute force: is there an order of all `ok` ops plus any subset of `info`
/// ops, respecting real time, that the model accepts?
fn brute_force<M: Model>(model: &M, ops: &[Operation]) -> bool {
    let ops: Vec<Decoded<'_, M>> = ops
        .iter()
        .filter(|o| o.status != Status::Fail)
        .map(|o| {
            let input = model.decode_input(o).unwrap();
            let output =
                (o.status == Status::Ok).then(|| model.decode_output(&input, &o.output).unwrap());
            (o, input, output)
        })
        .collect();
    fn go<M: Model>(
        model: &M,
        ops: &[Decoded<'_, M>],
        used: &mut Vec<bool>,
        state: &M::State,
    ) -> bool {
        let all_ok_done = ops
            .iter()
            .zip(used.iter())
            .all(|((o, _, _), &u)| u || o.status != Status::Ok);
        if all_ok_done {
            return true;
        }
        for c in 0..ops.len() {
            if used[c] {
                continue;
            }
            // c may go next unless some other pending ok op returned before c was called.
            let blocked = ops.iter().enumerate().any(|(u, (o, _, _))| {
                u != c && !used[u] && o.status == Status::Ok && o.ret.unwrap() < ops[c].0.call
            });
            if blocked {
                continue;
            }
            if let Some(next) = model.step(state, &ops[c].1, ops[c].2.as_ref()) {
                used[c] = true;
                let found = go(model, ops, used, &next);
                used[c] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    let mut used = vec![false; ops.len()];
    go(model, &ops, &mut used, &model.init())
}

/// A random concurrent history of at most `max_ops` ops on a simulated
/// store: each op takes effect at a random moment between its invocation
/// and completion, and some results are then corrupted.
fn random_history(rng: &mut Rng, max_ops: usize, kv: bool) -> History {
    let n_ops = 1 + rng.below(max_ops as u64) as usize;
    let procs = 1 + rng.below(4);
    let mut store: [i64; 2] = [-1, -1]; // -1 = nil
    let mut events: Vec<Event> = Vec::new();
    // Per process: the open op (f, key, input, effect applied?, result).
    let mut open: Vec<Option<OpenOp>> = vec![None; procs as usize];
    let mut retired = vec![false; procs as usize];
    let mut started = 0;
    let val = |v: i64| if v < 0 { Value::Nil } else { Value::Int(v) };
    let kv_val = |v: i64| Value::Str(if v < 0 { String::new() } else { v.to_string() });
    while started < n_ops || open.iter().any(Option::is_some) {
        let p = rng.below(procs) as usize;
        if retired[p] {
            if retired.iter().all(|&r| r) {
                break;
            }
            continue;
        }
        match open[p].take() {
            None if started < n_ops => {
                started += 1;
                let key = if kv { rng.below(2) as usize } else { 0 };
                let (f, input) = match rng.below(3) {
                    0 => (if kv { "get" } else { "read" }, Value::Nil),
                    1 => {
                        let v = rng.below(3) as i64;
                        (
                            if kv { "put" } else { "write" },
                            if kv { kv_val(v) } else { val(v) },
                        )
                    }
                    _ => {
                        let (a, b) = (rng.below(3) as i64 - 1, rng.below(3) as i64);
                        let pair = if kv {
                            vec![kv_val(a), kv_val(b)]
                        } else {
                            vec![val(a), val(b)]
                        };
                        ("cas", Value::List(pair))
                    }
                };
                let k = kv.then(|| key.to_string());
                events.push(Event::new(
                    p as u64,
                    EventType::Invoke,
                    f,
                    k.as_deref(),
                    input.clone(),
                ));
                open[p] = Some((f.to_owned(), key, input, None));
            }
            None => {}
            Some((f, key, input, None)) if rng.chance(60) => {
                // Take effect now (atomically), remember the true result.
                let result = match f.as_str() {
                    "read" => val(store[key]),
                    "get" => kv_val(store[key]),
                    "write" | "put" => {
                        store[key] = parse(&input);
                        input.clone()
                    }
                    _ => {
                        let Value::List(pair) = &input else {
                            unreachable!()
                        };
                        if parse(&pair[0]) == store[key] {
                            store[key] = parse(&pair[1]);
                            Value::Bool(true)
                        } else {
                            Value::Bool(false)
                        }
                    }
                };
                open[p] = Some((f, key, input, Some(result)));
            }
            Some((f, key, input, effect)) => {
                let k = kv.then(|| key.to_string());
                let mut kind = match &effect {
                    None if rng.chance(50) => {
                        open[p] = Some((f, key, input, None));
                        continue;
                    }
                    None => EventType::Fail,
                    Some(Value::Bool(false)) => EventType::Fail,
                    Some(_) => EventType::Ok,
                };
                if rng.chance(12) {
                    kind = EventType::Info;
                } else if rng.chance(6) {
                    // A lie: claim failure for an op that took effect, or vice versa.
                    kind = if kind == EventType::Ok {
                        EventType::Fail
                    } else {
                        EventType::Ok
                    };
                }
                let mut value = match (&effect, f.as_str()) {
                    (Some(v), "read" | "get") => v.clone(),
                    (None, "read") => val(rng.below(3) as i64 - 1),
                    (None, "get") => kv_val(rng.below(3) as i64 - 1),
                    _ => input.clone(),
                };
                if (f == "read" || f == "get") && rng.chance(15) {
                    value = if kv {
                        kv_val(rng.below(3) as i64 - 1)
                    } else {
                        val(rng.below(3) as i64 - 1)
                    };
                }
                events.push(Event::new(p as u64, kind, &f, k.as_deref(), value));
                if kind == EventType::Info {
                    retired[p] = true;
                }
            }
        }
        // Sometimes the history just stops, leaving ops without completion.
        if started == n_ops && rng.chance(3) {
            break;
        }
    }
    let mut h = History::default();
    for (i, e) in events.into_iter().enumerate() {
        h.push(e, i + 1);
    }
    h
}

fn parse(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Str(s) if !s.is_empty() => s.parse().unwrap(),
        _ => -1,
    }
}

fn verdict<M: Model>(model: &M, ops: &[Operation], single: bool) -> Verdict {
    let options = CheckOptions {
        single_partition: single,
        threads: 1,
        ..CheckOptions::default()
    };
    check(model, ops, &options).unwrap().verdict
}

fn run(kv: bool, seed: u64, cases: usize) {
    let mut rng = Rng(seed);
    let (mut yes, mut no) = (0, 0);
    for case in 0..cases {
        let history = random_history(&mut rng, 8, kv);
        let ops = pair(&history).unwrap();
        let expected = if kv {
            brute_force(&KvModel, &ops)
        } else {
            brute_force(&RegisterModel::cas_register(), &ops)
        };
        let expected = if expected {
            Verdict::Linearizable
        } else {
            Verdict::Illegal
        };
        let got = if kv {
            verdict(&KvModel, &ops, false)
        } else {
            verdict(&RegisterModel::cas_register(), &ops, false)
        };
        assert_eq!(got, expected, "case {case} (seed {seed}): {ops:#?}");
        if kv {
            assert_eq!(
                verdict(&KvModel, &ops, true),
                expected,
                "single partition, case {case}: {ops:#?}"
            );
        }
        if expected == Verdict::Linearizable {
            yes += 1
        } else {
            no += 1
        }
    }
    // The generator must produce both kinds, or the test proves little.
    assert!(
        yes > cases / 10 && no > cases / 10,
        "linearizable {yes}, not {no}"
    );
}

#[test]
fn cas_register_agrees_with_brute_force() {
    run(false, 0x5eed_0001, 4000);
}

#[test]
fn kv_agrees_with_brute_force_partitioned_and_whole() {
    run(true, 0x5eed_0002, 4000);
}
