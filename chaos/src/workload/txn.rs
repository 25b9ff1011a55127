//! Multi-key transactions over etcd's `Txn`, recorded as Elle writes them
//! (`:f :txn`, a list of micro-ops) for the transactional checker.
//!
//! - **list-append**: `[append k v]` appends `v` to the list at `k`; `[r k l]`
//!   reads the list (`nil` when absent). etcd has no append, so a
//!   transaction with appends runs in two steps: one read-only `Txn` ranges
//!   every key it touches (linearizable), then one `Txn` whose compares
//!   require each key's `mod_revision` to be what that read saw, and which
//!   puts the extended lists. If a compare fails nothing was written and
//!   the op is `fail`; if it succeeds, every key was unchanged from the read
//!   to the commit, so the reads (computed from the first step, with the
//!   transaction's own appends) hold at the commit revision.
//! - **rw-register**: `[w k v]` and `[r k v]`; one `Txn` with no compares
//!   whose success ops are the ranges and puts in order (a key appears at
//!   most once per transaction).
//! - A share `read_fraction` of the transactions read only: one `Txn` of
//!   ranges, each flagged serializable when the workload's consistency is
//!   serializable (etcd then serves the whole transaction from the local
//!   member without asking the leader: the weakened setup the suite must
//!   catch).
//!
//! Keys are integers (`la/<k>`, `rw/<k>` in etcd); a key takes
//! `writes_per_key` writes and is then replaced by a fresh one, so lists stay
//! short and every key's history is checked in full. Every value written to
//! a key is unique (one counter for the run).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use d_engine_histories::{EventType, Value};
use d_engine_proto::etcd::etcdserverpb as etcd;
use tonic::codegen::Bytes;

use super::{Recorder, WorkloadConfig, WorkloadKind};
use crate::client::{Consistency, KvClient, OpError};
use crate::prng::Rng;

/// One micro-op, with what a read returned once known.
#[derive(Debug, Clone, PartialEq)]
pub enum Mop {
    Append(u64, i64),
    Write(u64, i64),
    /// A read: `None` until it returns; then the list (list-append, empty =
    /// absent) or the register (`nil` = absent).
    Read(u64, Option<Value>),
}

impl Mop {
    fn key(&self) -> u64 {
        match self {
            Mop::Append(k, _) | Mop::Write(k, _) | Mop::Read(k, _) => *k,
        }
    }

    fn to_value(&self) -> Value {
        let op = |f: &str, k: u64, v: Value| {
            Value::List(vec![Value::Str(f.into()), Value::Int(k as i64), v])
        };
        match self {
            Mop::Append(k, v) => op("append", *k, Value::Int(*v)),
            Mop::Write(k, v) => op("w", *k, Value::Int(*v)),
            Mop::Read(k, v) => op("r", *k, v.clone().unwrap_or(Value::Nil)),
        }
    }
}

/// The history value of a transaction.
pub fn txn_value(mops: &[Mop]) -> Value {
    Value::List(mops.iter().map(Mop::to_value).collect())
}

/// The keys in use: `slots` keys at a time, each retired after
/// `writes_per_key` writes.
pub struct KeyPool {
    inner: Mutex<(Vec<(u64, u64)>, u64)>,
    writes_per_key: u64,
}

impl KeyPool {
    pub fn new(slots: usize, writes_per_key: u64) -> KeyPool {
        let keys = (0..slots.max(1) as u64).map(|k| (k, 0)).collect();
        KeyPool {
            inner: Mutex::new((keys, slots.max(1) as u64)),
            writes_per_key: writes_per_key.max(1),
        }
    }

    /// Keys handed out so far are `0..keys_used()`.
    pub fn keys_used(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// A key to read.
    pub fn read_key(&self, rng: &mut Rng) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.0[rng.below(inner.0.len() as u64) as usize].0
    }

    /// A key to write, counted against its budget.
    pub fn write_key(&self, rng: &mut Rng) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (slots, next) = &mut *inner;
        let i = rng.below(slots.len() as u64) as usize;
        let key = slots[i].0;
        slots[i].1 += 1;
        if slots[i].1 >= self.writes_per_key {
            slots[i] = (*next, 0);
            *next += 1;
        }
        key
    }
}

/// A random transaction: read-only with probability `read_fraction`, else
/// 1..=`txn_ops_max` micro-ops of which at least one writes. rw-register
/// transactions touch a key at most once.
pub fn generate(
    cfg: &WorkloadConfig,
    pool: &KeyPool,
    values: &AtomicI64,
    rng: &mut Rng,
) -> Vec<Mop> {
    let n = rng.range(1, cfg.txn_ops_max.max(1) as u64) as usize;
    let read_only = rng.unit() < cfg.read_fraction;
    let mut mops: Vec<Mop> = Vec::with_capacity(n);
    for i in 0..n {
        let write = !read_only && (i == n - 1 && mops.iter().all(is_read) || rng.below(2) == 0);
        let key = if write {
            pool.write_key(rng)
        } else {
            pool.read_key(rng)
        };
        if cfg.kind == WorkloadKind::RwRegister && mops.iter().any(|m| m.key() == key) {
            continue;
        }
        let v = values.fetch_add(1, Ordering::Relaxed);
        mops.push(match (write, cfg.kind) {
            (false, _) => Mop::Read(key, None),
            (true, WorkloadKind::RwRegister) => Mop::Write(key, v),
            (true, _) => Mop::Append(key, v),
        });
    }
    // rw-register drops a micro-op on a key already in the transaction; if
    // that was the one write, the last read becomes a write of its key.
    if !read_only && mops.iter().all(is_read) {
        let last = mops
            .last_mut()
            .expect("the first micro-op is never dropped");
        *last = Mop::Write(last.key(), values.fetch_add(1, Ordering::Relaxed));
    }
    mops
}

fn is_read(m: &Mop) -> bool {
    matches!(m, Mop::Read(..))
}

fn etcd_key(kind: WorkloadKind, k: u64) -> Bytes {
    let prefix = if kind == WorkloadKind::RwRegister {
        "rw"
    } else {
        "la"
    };
    Bytes::from(format!("{prefix}/{k}"))
}

fn range_op(key: Bytes, serializable: bool) -> etcd::RequestOp {
    etcd::RequestOp {
        request: Some(etcd::request_op::Request::RequestRange(
            etcd::RangeRequest {
                key,
                serializable,
                ..Default::default()
            },
        )),
    }
}

fn put_op(key: Bytes, value: String) -> etcd::RequestOp {
    etcd::RequestOp {
        request: Some(etcd::request_op::Request::RequestPut(etcd::PutRequest {
            key,
            value: Bytes::from(value),
            ..Default::default()
        })),
    }
}

/// What one range of a `Txn` found: the value (`None` = absent) and its
/// mod_revision (0 when absent).
type Found = (Option<Vec<u8>>, i64);

/// The result of each range response, in order.
fn ranges_of(resp: &etcd::TxnResponse) -> Result<Vec<Found>, OpError> {
    resp.responses
        .iter()
        .filter_map(|r| match &r.response {
            Some(etcd::response_op::Response::ResponseRange(rr)) => Some(Ok(rr
                .kvs
                .first()
                .map_or((None, 0), |kv| (Some(kv.value.to_vec()), kv.mod_revision)))),
            Some(etcd::response_op::Response::ResponsePut(_)) => None,
            _ => Some(Err(OpError::unknown("a Txn reply of the wrong kind"))),
        })
        .collect()
}

/// `"1,5,9"` → `[1, 5, 9]`; an absent key is the empty list.
pub fn parse_list(bytes: Option<&[u8]>) -> Result<Vec<i64>, OpError> {
    let Some(b) = bytes.filter(|b| !b.is_empty()) else {
        return Ok(Vec::new());
    };
    String::from_utf8_lossy(b)
        .split(',')
        .map(|s| s.parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| OpError::unknown("a list that does not parse"))
}

fn list_value(list: &[i64]) -> Value {
    if list.is_empty() {
        Value::Nil
    } else {
        Value::List(list.iter().map(|&v| Value::Int(v)).collect())
    }
}

fn register_value(bytes: Option<&[u8]>) -> Result<Value, OpError> {
    match bytes {
        None => Ok(Value::Nil),
        Some(b) => String::from_utf8_lossy(b)
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| OpError::unknown("a register value that does not parse")),
    }
}

/// Runs one transaction; `Ok(None)` = a compare failed (nothing written).
pub async fn execute(
    kv: &KvClient,
    cfg: &WorkloadConfig,
    mops: &[Mop],
) -> Result<Option<Vec<Mop>>, OpError> {
    let t = cfg.op_timeout;
    let serializable = cfg.consistency == Consistency::Serializable;
    if mops.iter().all(is_read) {
        return read_only(kv, cfg.kind, mops, serializable, t)
            .await
            .map(Some);
    }
    match cfg.kind {
        WorkloadKind::RwRegister => rw_register(kv, mops, t).await.map(Some),
        _ => list_append(kv, mops, t).await,
    }
}

async fn read_only(
    kv: &KvClient,
    kind: WorkloadKind,
    mops: &[Mop],
    serializable: bool,
    t: Duration,
) -> Result<Vec<Mop>, OpError> {
    let success = mops
        .iter()
        .map(|m| range_op(etcd_key(kind, m.key()), serializable))
        .collect();
    let req = etcd::TxnRequest {
        compare: Vec::new(),
        success,
        failure: Vec::new(),
    };
    let resp = kv.etcd_txn(req, t).await?;
    let ranges = ranges_of(&resp)?;
    mops.iter()
        .zip(ranges)
        .map(|(m, (bytes, _))| {
            let v = match kind {
                WorkloadKind::RwRegister => register_value(bytes.as_deref())?,
                _ => list_value(&parse_list(bytes.as_deref())?),
            };
            Ok(Mop::Read(m.key(), Some(v)))
        })
        .collect()
}

async fn rw_register(kv: &KvClient, mops: &[Mop], t: Duration) -> Result<Vec<Mop>, OpError> {
    let kind = WorkloadKind::RwRegister;
    let success = mops
        .iter()
        .map(|m| match m {
            Mop::Write(k, v) => put_op(etcd_key(kind, *k), v.to_string()),
            _ => range_op(etcd_key(kind, m.key()), false),
        })
        .collect();
    let req = etcd::TxnRequest {
        compare: Vec::new(),
        success,
        failure: Vec::new(),
    };
    let resp = kv.etcd_txn(req, t).await?;
    let mut ranges = ranges_of(&resp)?.into_iter();
    mops.iter()
        .map(|m| match m {
            Mop::Read(k, _) => {
                let (bytes, _) = ranges
                    .next()
                    .ok_or_else(|| OpError::unknown("a Txn reply with too few ranges"))?;
                Ok(Mop::Read(*k, Some(register_value(bytes.as_deref())?)))
            }
            other => Ok(other.clone()),
        })
        .collect()
}

/// Read every key, then write the extended lists guarded by mod_revision.
async fn list_append(
    kv: &KvClient,
    mops: &[Mop],
    t: Duration,
) -> Result<Option<Vec<Mop>>, OpError> {
    let kind = WorkloadKind::ListAppend;
    let keys: Vec<u64> = mops
        .iter()
        .map(Mop::key)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let pre = etcd::TxnRequest {
        compare: Vec::new(),
        success: keys
            .iter()
            .map(|&k| range_op(etcd_key(kind, k), false))
            .collect(),
        failure: Vec::new(),
    };
    // The first step writes nothing: any failure of it is definite.
    let seen = kv
        .etcd_txn(pre, t)
        .await
        .and_then(|r| ranges_of(&r))
        .map_err(|e| OpError {
            definite: true,
            message: format!("reading before the write: {}", e.message),
        })?;
    let mut lists: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    let mut compare = Vec::new();
    for (&k, (bytes, rev)) in keys.iter().zip(&seen) {
        lists.insert(k, parse_list(bytes.as_deref())?);
        compare.push(mod_revision_is(etcd_key(kind, k), *rev));
    }
    let mut done = Vec::with_capacity(mops.len());
    for m in mops {
        let list = lists.get_mut(&m.key()).expect("every key was read");
        match m {
            Mop::Append(_, v) => list.push(*v),
            Mop::Read(k, _) => {
                done.push(Mop::Read(*k, Some(list_value(list))));
                continue;
            }
            Mop::Write(..) => unreachable!("no writes in list-append"),
        }
        done.push(m.clone());
    }
    let written: std::collections::BTreeSet<u64> = mops
        .iter()
        .filter(|m| matches!(m, Mop::Append(..)))
        .map(Mop::key)
        .collect();
    let success = written
        .iter()
        .map(|&k| put_op(etcd_key(kind, k), join(&lists[&k])))
        .collect();
    let req = etcd::TxnRequest {
        compare,
        success,
        failure: Vec::new(),
    };
    let resp = kv.etcd_txn(req, t).await?;
    Ok(resp.succeeded.then_some(done))
}

fn mod_revision_is(key: Bytes, rev: i64) -> etcd::Compare {
    use etcd::compare::{CompareResult, CompareTarget, TargetUnion};
    etcd::Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key,
        target_union: Some(TargetUnion::ModRevision(rev)),
        range_end: Bytes::new(),
    }
}

fn join(list: &[i64]) -> String {
    list.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One logical client.
struct Client<'a> {
    rec: &'a Recorder,
    cfg: &'a WorkloadConfig,
    kv: KvClient,
    process: u64,
    stride: u64,
}

impl Client<'_> {
    /// Invokes, runs and completes one transaction; true when it committed.
    async fn txn(&mut self, mops: &[Mop]) -> bool {
        let invoked = txn_value(mops);
        self.rec.event(
            self.process,
            EventType::Invoke,
            "txn",
            None,
            invoked.clone(),
            None,
        );
        match execute(&self.kv, self.cfg, mops).await {
            Ok(Some(done)) => {
                let v = txn_value(&done);
                self.rec
                    .event(self.process, EventType::Ok, "txn", None, v, None);
                true
            }
            Ok(None) => {
                let why = Some("compare failed: a key changed since it was read".to_owned());
                self.rec
                    .event(self.process, EventType::Fail, "txn", None, invoked, why);
                false
            }
            Err(e) if e.definite || mops.iter().all(is_read) => {
                self.rec.event(
                    self.process,
                    EventType::Fail,
                    "txn",
                    None,
                    invoked,
                    Some(e.message),
                );
                false
            }
            Err(e) => {
                self.rec.event(
                    self.process,
                    EventType::Info,
                    "txn",
                    None,
                    invoked,
                    Some(e.message),
                );
                self.process += self.stride;
                false
            }
        }
    }
}

/// A client of the run's transactions (the final reads have none).
struct Runner<'a> {
    client: Client<'a>,
    pool: &'a KeyPool,
    values: &'a AtomicI64,
}

impl super::Step for Runner<'_> {
    async fn step(&mut self, rng: &mut Rng) -> bool {
        let mops = generate(self.client.cfg, self.pool, self.values, rng);
        self.client.txn(&mops).await
    }
}

/// Runs the transaction clients until `deadline` or `cfg.ops_max` ops.
pub async fn run(
    rec: &Recorder,
    cfg: &WorkloadConfig,
    pool: &KeyPool,
    clients: &[KvClient],
    deadline: Instant,
) {
    let total = cfg.clients();
    let values = AtomicI64::new(1);
    super::drive(cfg, deadline, 0x7478_6E73, |g| Runner {
        client: Client {
            rec,
            cfg,
            kv: clients[g % clients.len()].clone(),
            process: g as u64,
            stride: total as u64,
        },
        pool,
        values: &values,
    })
    .await;
}

/// Keys read by one final transaction, at most.
const FINAL_READ_KEYS: usize = 64;

/// After the heal: every key the run used (retired ones too, so that no
/// acknowledged append goes unread), in linearizable read-only
/// transactions of up to [`FINAL_READ_KEYS`] keys, each retried on each
/// node in turn until it succeeds or `deadline`. Returns the transactions
/// that succeeded.
pub async fn final_reads(
    rec: &Recorder,
    cfg: &WorkloadConfig,
    pool: &KeyPool,
    clients: &[KvClient],
    deadline: Instant,
) -> usize {
    let final_cfg = WorkloadConfig {
        consistency: Consistency::Linearizable,
        ..cfg.clone()
    };
    let keys: Vec<u64> = (0..pool.keys_used()).collect();
    let mut done = 0;
    let mut tries = 0;
    for chunk in keys.chunks(FINAL_READ_KEYS) {
        let mops: Vec<Mop> = chunk.iter().map(|&k| Mop::Read(k, None)).collect();
        let (final_cfg, mops) = (&final_cfg, &mops);
        let read = |kv, process| async move {
            let mut client = Client {
                rec,
                cfg: final_cfg,
                kv,
                process,
                stride: 1,
            };
            client.txn(mops).await
        };
        if super::on_each_node_until(clients, deadline, cfg.backoff_ms, &mut tries, read).await {
            done += 1;
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_through_etcd_values() {
        assert_eq!(parse_list(None).unwrap(), Vec::<i64>::new());
        assert_eq!(parse_list(Some(b"3,1,2")).unwrap(), vec![3, 1, 2]);
        assert_eq!(join(&[3, 1, 2]), "3,1,2");
        assert!(parse_list(Some(b"3,x")).is_err());
    }

    #[test]
    fn a_key_is_replaced_after_its_writes() {
        let pool = KeyPool::new(1, 2);
        let mut rng = Rng::new(1);
        assert_eq!(pool.write_key(&mut rng), 0);
        assert_eq!(pool.write_key(&mut rng), 0);
        assert_eq!(pool.write_key(&mut rng), 1);
        assert_eq!(pool.read_key(&mut rng), 1);
    }

    #[test]
    fn generated_transactions_write_unless_read_only() {
        let pool = KeyPool::new(4, 100);
        let values = AtomicI64::new(1);
        let mut rng = Rng::new(7);
        for kind in [WorkloadKind::ListAppend, WorkloadKind::RwRegister] {
            for read_fraction in [0.0, 1.0] {
                let cfg = WorkloadConfig {
                    kind,
                    read_fraction,
                    ..WorkloadConfig::default()
                };
                for _ in 0..200 {
                    let mops = generate(&cfg, &pool, &values, &mut rng);
                    assert!(!mops.is_empty() && mops.len() <= cfg.txn_ops_max);
                    assert_eq!(mops.iter().all(is_read), read_fraction == 1.0, "{mops:?}");
                    if kind == WorkloadKind::RwRegister {
                        let keys: std::collections::BTreeSet<u64> =
                            mops.iter().map(Mop::key).collect();
                        assert_eq!(keys.len(), mops.len(), "{mops:?}");
                    }
                }
            }
        }
    }
}
