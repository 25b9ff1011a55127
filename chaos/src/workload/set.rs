//! Sets of unique elements, checked by `d_engine_histories::set`.
//!
//! Set `s` is every key under `set/<s>/`; `add e` puts `set/<s>/<e>` (value
//! `e`), `read` scans the prefix and returns the elements in order. A set
//! takes [`SET_ADDS_MAX`] adds and is then replaced by a fresh one, so reads
//! stay small; after the heal every set the run used is read once more.
//! Works on etcd (one `Range`) and d-engine (a prefix scan).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use d_engine_histories::{EventType, Value};

use super::txn::KeyPool;
use super::{Recorder, WorkloadConfig};
use crate::client::{Consistency, KvClient, OpError};
use crate::prng::Rng;

/// Adds a set takes before the workload moves to a fresh one.
pub const SET_ADDS_MAX: u64 = 200;

fn set_name(s: u64) -> String {
    format!("set{s}")
}

fn prefix(s: u64) -> String {
    format!("set/{s}/")
}

struct Client<'a> {
    rec: &'a Recorder,
    cfg: &'a WorkloadConfig,
    kv: KvClient,
    process: u64,
    stride: u64,
}

impl Client<'_> {
    fn failed(&mut self, f: &str, set: &str, value: Value, e: OpError) -> bool {
        if e.definite || f == "read" {
            self.rec.event(
                self.process,
                EventType::Fail,
                f,
                Some(set),
                value,
                Some(e.message),
            );
        } else {
            self.rec.event(
                self.process,
                EventType::Info,
                f,
                Some(set),
                value,
                Some(e.message),
            );
            self.process += self.stride;
        }
        false
    }

    async fn add(&mut self, s: u64, e: i64) -> bool {
        let set = set_name(s);
        let v = Value::Int(e);
        self.rec.event(
            self.process,
            EventType::Invoke,
            "add",
            Some(&set),
            v.clone(),
            None,
        );
        let key = format!("{}{e:012}", prefix(s));
        match self
            .kv
            .put(
                key.as_bytes(),
                e.to_string().as_bytes(),
                self.cfg.op_timeout,
            )
            .await
        {
            Ok(()) => {
                self.rec
                    .event(self.process, EventType::Ok, "add", Some(&set), v, None);
                true
            }
            Err(err) => self.failed("add", &set, v, err),
        }
    }

    async fn read(&mut self, s: u64, consistency: Consistency) -> bool {
        let set = set_name(s);
        self.rec.event(
            self.process,
            EventType::Invoke,
            "read",
            Some(&set),
            Value::Nil,
            None,
        );
        let got = self
            .kv
            .scan_prefix(prefix(s).as_bytes(), consistency, self.cfg.op_timeout)
            .await;
        let parsed = got.and_then(|items| {
            items
                .iter()
                .map(|(_, v)| {
                    String::from_utf8_lossy(v)
                        .parse::<i64>()
                        .map(Value::Int)
                        .map_err(|_| OpError::unknown("a set element that does not parse"))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        match parsed {
            Ok(elements) => {
                let v = Value::List(elements);
                self.rec
                    .event(self.process, EventType::Ok, "read", Some(&set), v, None);
                true
            }
            Err(err) => self.failed("read", &set, Value::Nil, err),
        }
    }
}

/// A client of the run (the final reads have none).
struct Runner<'a> {
    client: Client<'a>,
    pool: &'a KeyPool,
    elements: &'a AtomicI64,
}

impl super::Step for Runner<'_> {
    /// A read of a set, or an add of a new element, by `read_fraction`.
    async fn step(&mut self, rng: &mut Rng) -> bool {
        let cfg = self.client.cfg;
        if rng.unit() < cfg.read_fraction {
            let s = self.pool.read_key(rng);
            self.client.read(s, cfg.consistency).await
        } else {
            let e = self.elements.fetch_add(1, Ordering::Relaxed);
            self.client.add(self.pool.write_key(rng), e).await
        }
    }
}

/// Runs the set clients until `deadline` or `cfg.ops_max` ops.
pub async fn run(
    rec: &Recorder,
    cfg: &WorkloadConfig,
    pool: &KeyPool,
    clients: &[KvClient],
    deadline: Instant,
) {
    let total = cfg.clients();
    let elements = AtomicI64::new(1);
    super::drive(cfg, deadline, 0x7365_7473, |g| Runner {
        client: Client {
            rec,
            cfg,
            kv: clients[g % clients.len()].clone(),
            process: g as u64,
            stride: total as u64,
        },
        pool,
        elements: &elements,
    })
    .await;
}

/// After the heal: a linearizable read of every set the run used, each
/// retried on each node in turn until it succeeds or `deadline`. Returns
/// the sets read.
pub async fn final_reads(
    rec: &Recorder,
    cfg: &WorkloadConfig,
    pool: &KeyPool,
    clients: &[KvClient],
    deadline: Instant,
) -> usize {
    let mut done = 0;
    let mut tries = 0;
    for s in 0..pool.keys_used() {
        let read = |kv, process| async move {
            let mut client = Client {
                rec,
                cfg,
                kv,
                process,
                stride: 1,
            };
            client.read(s, Consistency::Linearizable).await
        };
        if super::on_each_node_until(clients, deadline, cfg.backoff_ms, &mut tries, read).await {
            done += 1;
        }
    }
    done
}
