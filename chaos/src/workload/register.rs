//! Clients that record a history: per-key CAS registers.
//!
//! `keys` registers (`k0`, `k1`, …), `clients_per_key` clients on each, client
//! `g` bound to node `g % nodes`, so every node serves some clients (that is
//! how a stale read on a minority node shows up). Ops, in the CAS-register
//! model of the histories crate:
//!
//! - `read` → `ok` with the value (`nil` when absent); a failed read is
//!   `fail` (a read has no effect, so its outcome never matters);
//! - `write v` → `ok`; `fail` if the request certainly was not applied (the
//!   connection was refused, or a reply says so); `info` otherwise (timeout,
//!   reset): the outcome is unknown;
//! - `cas [expected new]` (expected = the last value this client saw, `nil` =
//!   absent) → `ok`, `fail` when the comparison failed, else as a write.
//!
//! Every written value is unique in the run, so a stale read can never be
//! mistaken for a current one. After an `info` the client takes a new process
//! id (the old one stays open to the end, Jepsen's convention).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use d_engine_histories::{EventType, Value};

use super::{Recorder, WorkloadConfig};
use crate::client::{Consistency, KvClient, OpError};

use crate::prng::Rng;
use crate::util::join_all;

fn decode(bytes: Option<Vec<u8>>) -> Value {
    match bytes {
        None => Value::Nil,
        Some(b) => {
            let text = String::from_utf8_lossy(&b).into_owned();
            text.parse::<i64>().map_or(Value::Str(text), Value::Int)
        }
    }
}

fn key_name(k: usize) -> String {
    format!("k{k}")
}

/// One logical client.
struct Client<'a> {
    rec: &'a Recorder,
    cfg: &'a WorkloadConfig,
    kv: KvClient,
    key: String,
    process: u64,
    /// Process ids are reissued in steps of the client count.
    stride: u64,
    last_seen: Value,
    /// The run's counter of written values (each value once).
    values: &'a AtomicI64,
}

/// What one op did.
enum Outcome {
    Ok,
    Fail,
    Info,
}

impl Client<'_> {
    fn complete_err(&mut self, f: &str, value: Value, err: OpError) -> Outcome {
        if err.definite || f == "read" {
            self.rec.event(
                self.process,
                EventType::Fail,
                f,
                Some(&self.key),
                Value::Nil,
                Some(err.message),
            );
            Outcome::Fail
        } else {
            self.rec.event(
                self.process,
                EventType::Info,
                f,
                Some(&self.key),
                value,
                Some(err.message),
            );
            self.process += self.stride;
            Outcome::Info
        }
    }

    async fn read(&mut self, consistency: Consistency) -> Outcome {
        let t = self.cfg.op_timeout;
        self.rec.event(
            self.process,
            EventType::Invoke,
            "read",
            Some(&self.key),
            Value::Nil,
            None,
        );
        match self.kv.get(self.key.as_bytes(), consistency, t).await {
            Ok(v) => {
                let v = decode(v);
                self.last_seen = v.clone();
                self.rec.event(
                    self.process,
                    EventType::Ok,
                    "read",
                    Some(&self.key),
                    v,
                    None,
                );
                Outcome::Ok
            }
            Err(e) => self.complete_err("read", Value::Nil, e),
        }
    }

    async fn write(&mut self, v: i64) -> Outcome {
        let t = self.cfg.op_timeout;
        self.rec.event(
            self.process,
            EventType::Invoke,
            "write",
            Some(&self.key),
            Value::Int(v),
            None,
        );
        match self
            .kv
            .put(self.key.as_bytes(), v.to_string().as_bytes(), t)
            .await
        {
            Ok(()) => {
                self.last_seen = Value::Int(v);
                self.rec.event(
                    self.process,
                    EventType::Ok,
                    "write",
                    Some(&self.key),
                    Value::Int(v),
                    None,
                );
                Outcome::Ok
            }
            Err(e) => self.complete_err("write", Value::Int(v), e),
        }
    }

    async fn cas(&mut self, new: i64) -> Outcome {
        let t = self.cfg.op_timeout;
        let expected = self.last_seen.clone();
        let arg = Value::List(vec![expected.clone(), Value::Int(new)]);
        let expected_bytes = match &expected {
            Value::Int(i) => Some(i.to_string().into_bytes()),
            Value::Str(s) => Some(s.clone().into_bytes()),
            _ => None,
        };
        self.rec.event(
            self.process,
            EventType::Invoke,
            "cas",
            Some(&self.key),
            arg.clone(),
            None,
        );
        match self
            .kv
            .cas(
                self.key.as_bytes(),
                expected_bytes.as_deref(),
                new.to_string().as_bytes(),
                t,
            )
            .await
        {
            Ok(true) => {
                self.last_seen = Value::Int(new);
                self.rec.event(
                    self.process,
                    EventType::Ok,
                    "cas",
                    Some(&self.key),
                    arg,
                    None,
                );
                Outcome::Ok
            }
            Ok(false) => {
                self.rec.event(
                    self.process,
                    EventType::Fail,
                    "cas",
                    Some(&self.key),
                    Value::Nil,
                    Some("mismatch".into()),
                );
                Outcome::Fail
            }
            Err(e) => self.complete_err("cas", arg, e),
        }
    }
}

impl super::Step for Client<'_> {
    /// A read, a write or a cas, by the configured shares.
    async fn step(&mut self, rng: &mut Rng) -> bool {
        let cfg = self.cfg;
        let roll = rng.unit();
        let write_cut = cfg.read_fraction + (1.0 - cfg.read_fraction) / 2.0;
        let outcome = if roll < cfg.read_fraction {
            self.read(cfg.consistency).await
        } else if roll < write_cut {
            self.write(self.values.fetch_add(1, Ordering::Relaxed))
                .await
        } else {
            self.cas(self.values.fetch_add(1, Ordering::Relaxed)).await
        };
        matches!(outcome, Outcome::Ok)
    }
}

/// Runs the register clients until `deadline` or until `cfg.ops_max` ops
/// in total. `clients[i]` is a client bound to node i.
pub async fn run(rec: &Recorder, cfg: &WorkloadConfig, clients: &[KvClient], deadline: Instant) {
    let total = cfg.clients();
    let values = AtomicI64::new(1);
    super::drive(cfg, deadline, 0x776F_726B_6C6F_6164, |g| Client {
        rec,
        cfg,
        kv: clients[g % clients.len()].clone(),
        key: key_name(g / cfg.clients_per_key),
        process: g as u64,
        stride: total as u64,
        last_seen: Value::Nil,
        values: &values,
    })
    .await;
}

/// After the heal: one linearizable read of every key, retried (each try
/// recorded) until it succeeds or `deadline` passes. Returns the keys read.
pub async fn final_reads(
    rec: &Recorder,
    cfg: &WorkloadConfig,
    clients: &[KvClient],
    deadline: Instant,
) -> usize {
    let base = super::FINAL_PROCESS_BASE;
    // Final reads write nothing.
    let no_values = AtomicI64::new(0);
    let no_values = &no_values;
    let reads = (0..cfg.keys).map(|k| {
        let mut client = Client {
            rec,
            cfg,
            kv: clients[k % clients.len()].clone(),
            key: key_name(k),
            process: base + k as u64,
            stride: cfg.keys as u64,
            last_seen: Value::Nil,
            values: no_values,
        };
        async move {
            let mut attempt = 0usize;
            while Instant::now() < deadline {
                // Rotate over the nodes: the one this key started on may be slow.
                client.kv = clients[(k + attempt) % clients.len()].clone();
                attempt += 1;
                if let Outcome::Ok = client.read(Consistency::Linearizable).await {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(cfg.backoff_ms)).await;
            }
            false
        }
    });
    join_all(reads).await.into_iter().filter(|ok| *ok).count()
}
