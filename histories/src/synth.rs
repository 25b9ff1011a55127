//! Synthetic histories for tests and benchmarks: a simulated key-value store
//! whose ops take effect at one random moment between invocation and
//! completion (so the history is linearizable by construction), and a small
//! register history on which the search explodes (to exercise deadlines).

use crate::format::{Event, EventType, History};
use crate::value::Value;

/// xorshift64*: deterministic from the seed, no dependency. Public so tests
/// and benches generate their input from the same generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` for test input.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// An op a simulated client has invoked.
struct Open {
    f: &'static str,
    key: String,
    input: Value,
    /// The result, once the op has taken effect.
    result: Option<Result<Value, ()>>,
}

/// A linearizable key-value history of `n_ops` operations (get, put, append,
/// cas) over `n_keys` keys from `n_clients` concurrent clients. About 1% of
/// ops time out (`info`; the client is replaced by a new process, as Jepsen
/// does) and cas ops that find another value `fail`.
pub fn linearizable_kv(seed: u64, n_ops: usize, n_keys: usize, n_clients: usize) -> History {
    let mut rng = Rng::new(seed);
    let mut store: Vec<String> = vec![String::new(); n_keys];
    let mut process: Vec<u64> = (0..n_clients as u64).collect();
    let mut open: Vec<Option<Open>> = (0..n_clients).map(|_| None).collect();
    let mut next_process = n_clients as u64;
    let mut history = History::default();
    let mut invoked = 0;
    while invoked < n_ops || open.iter().any(Option::is_some) {
        let c = rng.below(n_clients as u64) as usize;
        let event = match open[c].take() {
            None if invoked < n_ops => {
                invoked += 1;
                let k = rng.below(n_keys as u64) as usize;
                let token = format!("{}.{} ", process[c], invoked);
                let (f, input) = match rng.below(8) {
                    0..=2 => ("get", Value::Nil),
                    3 => ("put", Value::Str(token)),
                    4..=6 => ("append", Value::Str(token)),
                    _ => (
                        "cas",
                        Value::List(vec![Value::Str(store[k].clone()), Value::Str(token)]),
                    ),
                };
                let key = k.to_string();
                let e = Event::new(process[c], EventType::Invoke, f, Some(&key), input.clone());
                open[c] = Some(Open {
                    f,
                    key,
                    input,
                    result: None,
                });
                e
            }
            None => continue,
            Some(mut op) if op.result.is_none() => {
                let k: usize = op.key.parse().expect("numeric key");
                op.result = Some(apply(&mut store[k], op.f, &op.input));
                open[c] = Some(op);
                continue;
            }
            Some(op) => {
                let (kind, value) = match op.result.expect("applied") {
                    _ if rng.below(100) == 0 => (EventType::Info, Value::Nil),
                    Ok(v) => (EventType::Ok, v),
                    Err(()) => (EventType::Fail, Value::Nil),
                };
                let e = Event::new(process[c], kind, op.f, Some(&op.key), value);
                if kind == EventType::Info {
                    process[c] = next_process;
                    next_process += 1;
                }
                e
            }
        };
        let line = history.events.len() + 1;
        history.push(event, line);
    }
    history
}

fn apply(value: &mut String, f: &str, input: &Value) -> Result<Value, ()> {
    let text = |v: &Value| match v {
        Value::Str(s) => s.clone(),
        _ => String::new(),
    };
    match f {
        "get" => Ok(Value::Str(value.clone())),
        "put" => {
            *value = text(input);
            Ok(input.clone())
        }
        "append" => {
            value.push_str(&text(input));
            Ok(input.clone())
        }
        _ => {
            let Value::List(pair) = input else {
                return Err(());
            };
            if *value == text(&pair[0]) {
                *value = text(&pair[1]);
                Ok(input.clone())
            } else {
                Err(())
            }
        }
    }
}

/// `n` concurrent writes of distinct values to one register, then a read of
/// a value never written. Not linearizable, but proving it means trying
/// about `n * 2^(n-1)` (set, state) configurations: with `n` around 30 no
/// checker finishes, which is what deadline tests need.
pub fn pathological_register(n: u64) -> History {
    let mut history = History::default();
    let mut push = |e: Event| {
        let line = history.events.len() + 1;
        history.push(e, line);
    };
    for p in 0..n {
        push(Event::new(
            p,
            EventType::Invoke,
            "write",
            None,
            Value::Int(p as i64),
        ));
    }
    for p in 0..n {
        push(Event::new(
            p,
            EventType::Ok,
            "write",
            None,
            Value::Int(p as i64),
        ));
    }
    push(Event::new(n, EventType::Invoke, "read", None, Value::Nil));
    push(Event::new(n, EventType::Ok, "read", None, Value::Int(-1)));
    history
}
