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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use d_engine_histories::{Event, EventType, HistoryWriter, Value};
use serde::Serialize;

use crate::client::{Consistency, KvClient, OpError};

use crate::prng::Rng;
use crate::util::join_all;

/// What the clients do.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadConfig {
    pub keys: usize,
    pub clients_per_key: usize,
    pub consistency: Consistency,
    /// Share of reads; writes and cas split the rest evenly.
    pub read_fraction: f64,
    #[serde(serialize_with = "ser_ms")]
    pub op_timeout: Duration,
    /// Pause between two ops of one client, ms (inclusive range).
    pub think_ms: (u64, u64),
    /// Pause after an op that failed, ms: keeps a dead node from being
    /// hammered (and the history from filling with open ops).
    pub backoff_ms: u64,
    /// Stop after this many ops in total.
    pub ops_max: u64,
    pub seed: u64,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            keys: 4,
            clients_per_key: 5,
            consistency: Consistency::Linearizable,
            read_fraction: 0.5,
            op_timeout: Duration::from_millis(1000),
            think_ms: (5, 40),
            backoff_ms: 100,
            ops_max: 1_000_000,
            seed: 0,
        }
    }
}

/// Counts by op and outcome, and the successful-op timeline.
#[derive(Debug, Default)]
struct Tally {
    by_op: BTreeMap<String, BTreeMap<&'static str, u64>>,
    ok_times_ns: Vec<u64>,
}

/// The history file and what the summary needs from it. Shared by clients.
pub struct Recorder {
    writer: Mutex<(HistoryWriter<BufWriter<File>>, Tally)>,
    t0: Instant,
}

impl Recorder {
    /// Writes `path`; `t0` is time zero of the run (shared with the nemesis log).
    pub fn create(path: &Path, t0: Instant) -> anyhow::Result<Recorder> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Recorder {
            writer: Mutex::new((HistoryWriter::new(BufWriter::new(file)), Tally::default())),
            t0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HistoryWriter<BufWriter<File>>, Tally)> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one event, stamped under the lock so file order and time agree.
    fn event(
        &self,
        process: u64,
        kind: EventType,
        f: &str,
        key: &str,
        value: Value,
        error: Option<String>,
    ) {
        let mut guard = self.lock();
        let time_ns = self.t0.elapsed().as_nanos() as u64;
        let mut e = Event::new(process, kind, f, Some(key), value);
        e.time_ns = Some(time_ns);
        e.error = error;
        let (writer, tally) = &mut *guard;
        if kind != EventType::Invoke {
            let name = match kind {
                EventType::Ok => "ok",
                EventType::Fail => "fail",
                _ => "info",
            };
            *tally
                .by_op
                .entry(f.to_owned())
                .or_default()
                .entry(name)
                .or_default() += 1;
            if kind == EventType::Ok {
                tally.ok_times_ns.push(time_ns);
            }
        }
        // A history that cannot be written is worthless: fail loudly.
        writer.write_event(e).expect("cannot write history.jsonl");
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        Ok(self.lock().0.flush()?)
    }

    /// Ops by name and outcome: `{"read": {"ok": 10, "fail": 2}, …}`.
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        self.lock().1.by_op.clone()
    }

    /// The longest time with no successful op between `from_ns` and `to_ns`:
    /// (length, start), in nanoseconds since t0.
    pub fn longest_gap_ns(&self, from_ns: u64, to_ns: u64) -> (u64, u64) {
        self.gaps_ns(from_ns, to_ns, 0)
            .into_iter()
            .max_by_key(|&(_, len)| len)
            .map_or((0, from_ns), |(at, len)| (len, at))
    }

    /// Every stretch of at least `min_ns` with no successful op between
    /// `from_ns` and `to_ns`: (start, length), in nanoseconds since t0.
    pub fn gaps_ns(&self, from_ns: u64, to_ns: u64, min_ns: u64) -> Vec<(u64, u64)> {
        let mut times: Vec<u64> = self
            .lock()
            .1
            .ok_times_ns
            .iter()
            .copied()
            .filter(|t| (from_ns..=to_ns).contains(t))
            .collect();
        times.sort_unstable();
        let mut out = Vec::new();
        let mut prev = from_ns;
        for t in times.into_iter().chain(std::iter::once(to_ns)) {
            if t - prev >= min_ns {
                out.push((prev, t - prev));
            }
            prev = t;
        }
        out
    }

    pub fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

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
    rng: Rng,
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
                &self.key,
                Value::Nil,
                Some(err.message),
            );
            Outcome::Fail
        } else {
            self.rec.event(
                self.process,
                EventType::Info,
                f,
                &self.key,
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
            &self.key,
            Value::Nil,
            None,
        );
        match self.kv.get(self.key.as_bytes(), consistency, t).await {
            Ok(v) => {
                let v = decode(v);
                self.last_seen = v.clone();
                self.rec
                    .event(self.process, EventType::Ok, "read", &self.key, v, None);
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
            &self.key,
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
                    &self.key,
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
            &self.key,
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
                self.rec
                    .event(self.process, EventType::Ok, "cas", &self.key, arg, None);
                Outcome::Ok
            }
            Ok(false) => {
                self.rec.event(
                    self.process,
                    EventType::Fail,
                    "cas",
                    &self.key,
                    Value::Nil,
                    Some("mismatch".into()),
                );
                Outcome::Fail
            }
            Err(e) => self.complete_err("cas", arg, e),
        }
    }
}

/// Runs the clients until `deadline` or until `cfg.ops_max` ops in total.
/// `clients[i]` is a client bound to node i.
pub async fn run(rec: &Recorder, cfg: &WorkloadConfig, clients: &[KvClient], deadline: Instant) {
    let total = cfg.keys * cfg.clients_per_key;
    let ops = AtomicU64::new(0);
    let values = AtomicI64::new(1);
    let mut seed_rng = Rng::new(cfg.seed ^ 0x776F_726B_6C6F_6164);
    let tasks = (0..total).map(|g| {
        let mut client = Client {
            rec,
            cfg,
            kv: clients[g % clients.len()].clone(),
            key: key_name(g / cfg.clients_per_key),
            process: g as u64,
            stride: total as u64,
            last_seen: Value::Nil,
            rng: Rng::new(seed_rng.next_u64()),
        };
        let (ops, values) = (&ops, &values);
        async move {
            while Instant::now() < deadline && ops.fetch_add(1, Ordering::Relaxed) < cfg.ops_max {
                let roll = client.rng.unit();
                let write_cut = cfg.read_fraction + (1.0 - cfg.read_fraction) / 2.0;
                let outcome = if roll < cfg.read_fraction {
                    client.read(cfg.consistency).await
                } else if roll < write_cut {
                    client.write(values.fetch_add(1, Ordering::Relaxed)).await
                } else {
                    client.cas(values.fetch_add(1, Ordering::Relaxed)).await
                };
                let pause = match outcome {
                    Outcome::Ok => client.rng.range(cfg.think_ms.0, cfg.think_ms.1),
                    Outcome::Fail | Outcome::Info => {
                        cfg.backoff_ms + client.rng.range(0, cfg.backoff_ms)
                    }
                };
                let wake = (Instant::now() + Duration::from_millis(pause)).min(deadline);
                tokio::time::sleep_until(wake.into()).await;
            }
        }
    });
    join_all(tasks).await;
}

/// After the heal: one linearizable read of every key, retried (each try
/// recorded) until it succeeds or `deadline` passes. Returns the keys read.
pub async fn final_reads(
    rec: &Recorder,
    cfg: &WorkloadConfig,
    clients: &[KvClient],
    deadline: Instant,
) -> usize {
    let base = 1_000_000_000u64;
    let reads = (0..cfg.keys).map(|k| {
        let mut client = Client {
            rec,
            cfg,
            kv: clients[k % clients.len()].clone(),
            key: key_name(k),
            process: base + k as u64,
            stride: cfg.keys as u64,
            last_seen: Value::Nil,
            rng: Rng::new(k as u64),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_between_successful_ops() {
        let path = std::env::temp_dir().join(format!("chaos-gaps-{}.jsonl", std::process::id()));
        let rec = Recorder::create(&path, Instant::now()).unwrap();
        rec.lock().1.ok_times_ns = vec![5, 10, 40, 42, 90];
        assert_eq!(rec.gaps_ns(0, 100, 20), vec![(10, 30), (42, 48)]);
        assert_eq!(rec.longest_gap_ns(0, 100), (48, 42));
        assert_eq!(rec.longest_gap_ns(0, 100).0, 48);
        let _ = std::fs::remove_file(&path);
    }
}
