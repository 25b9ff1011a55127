//! Watchers and writers on etcd, recorded in `watch.jsonl` for the watch
//! validator (`d_engine_histories::watch`).
//!
//! - Writers: one etcd `Txn` per write (no compares), of one put (60%), one
//!   delete (15%) or two to three puts and deletes on distinct keys (25%),
//!   under `w/`; every value is unique. An `ok` write records the header
//!   revision it committed at.
//! - Watchers: two per node, bound to it, each watching the prefix `w/`
//!   from revision 1 with prev_kv (every fourth with the `nodelete`
//!   filter). Every `watch_progress_ms` (a second by default) a watcher asks
//!   for a progress notification.
//!   When its stream breaks (the node was killed, say) it reopens it on the
//!   same node after a back-off, from the revision after its last event: a
//!   resume, which the validator checks.
//! - After the heal, [`finish`] commits one fence write and lets each
//!   watcher run until it has received that event (or a progress
//!   notification at or past it), or until the deadline; then every stream
//!   is closed (`end`).
//!
//! d-engine has no watch yet (the API issue): this workload is etcd's.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use d_engine_histories::watch::format::{CancelRecord, EndRecord, ProgressRecord};
use d_engine_histories::watch::{
    EventType, EventsRecord, Filter, WatchEvent, WatchOpen, WatchRecord, WatchWriter, WriteOp,
    WriteRecord, WriteType,
};
use d_engine_histories::{EventType as HistEvent, Value};
use d_engine_proto::etcd::{etcdserverpb as etcd, mvccpb};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::Bytes;
use tonic::transport::Channel;

use super::{Recorder, WorkloadConfig};
use crate::client::{KvClient, OpError, prefix_end};
use crate::prng::Rng;

/// The watched prefix.
pub const PREFIX: &str = "w/";
/// Watchers per node.
pub const WATCHERS_PER_NODE: usize = 2;
/// Requests queued to one watch stream, at most (creates and progress
/// requests; the watcher sends one at a time).
const WATCH_REQUESTS_MAX: usize = 4;

/// `watch.jsonl`, shared by writers and watchers; stamps each record under
/// its lock so that file order is time order.
pub struct WatchLog {
    writer: Mutex<WatchWriter<BufWriter<File>>>,
    t0: Instant,
}

impl WatchLog {
    pub fn create(path: &Path, t0: Instant) -> anyhow::Result<WatchLog> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(WatchLog {
            writer: Mutex::new(WatchWriter::new(BufWriter::new(file))),
            t0,
        })
    }

    /// Writes the record `make` builds from the time of writing.
    fn record(&self, make: impl FnOnce(u64) -> WatchRecord) {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let record = make(self.t0.elapsed().as_nanos() as u64);
        // A history that cannot be written is worthless: fail loudly.
        w.write(&record).expect("cannot write watch.jsonl");
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        Ok(w.flush()?)
    }
}

/// What the watchers share with [`finish`].
#[derive(Default)]
pub struct WatchShared {
    /// The revision every watcher must reach before it stops (0: not yet).
    target: AtomicI64,
    /// When the watchers give up reaching it, ms since the log's t0 (0: not set).
    give_up_ms: AtomicU64,
    /// The watcher tasks; each says whether it reached the target.
    tasks: Mutex<Vec<tokio::task::JoinHandle<bool>>>,
}

impl WatchShared {
    /// Stops the watchers still running (a run that ended early, before
    /// [`finish`]): their tasks hold this value, so it cannot be a `Drop`.
    pub fn abort(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}

fn key(k: u64) -> String {
    format!("{PREFIX}k{k}")
}

/// One random write: the ops and their etcd request.
fn random_write(cfg: &WorkloadConfig, values: &AtomicI64, rng: &mut Rng) -> Vec<WriteOp> {
    let keys = cfg.keys.max(3) as u64;
    let n = match rng.below(100) {
        0..60 => 1,
        60..75 => {
            return vec![WriteOp::Delete {
                key: key(rng.below(keys)),
            }];
        }
        _ => rng.range(2, 3) as usize,
    };
    let mut chosen: Vec<u64> = Vec::new();
    while chosen.len() < n {
        let k = rng.below(keys);
        if !chosen.contains(&k) {
            chosen.push(k);
        }
    }
    chosen
        .into_iter()
        .map(|k| {
            if n > 1 && rng.below(4) == 0 {
                WriteOp::Delete { key: key(k) }
            } else {
                let v = values.fetch_add(1, Ordering::Relaxed);
                WriteOp::Put {
                    key: key(k),
                    value: v.to_string(),
                }
            }
        })
        .collect()
}

fn txn_of(ops: &[WriteOp]) -> etcd::TxnRequest {
    let success = ops
        .iter()
        .map(|op| etcd::RequestOp {
            request: Some(match op {
                WriteOp::Put { key, value } => {
                    etcd::request_op::Request::RequestPut(etcd::PutRequest {
                        key: Bytes::from(key.clone()),
                        value: Bytes::from(value.clone()),
                        ..Default::default()
                    })
                }
                WriteOp::Delete { key } => {
                    etcd::request_op::Request::RequestDeleteRange(etcd::DeleteRangeRequest {
                        key: Bytes::from(key.clone()),
                        ..Default::default()
                    })
                }
            }),
        })
        .collect();
    etcd::TxnRequest {
        compare: Vec::new(),
        success,
        failure: Vec::new(),
    }
}

/// A write as `history.jsonl` shows it (for the report's latency plots and
/// the summary's counts; `watch.jsonl` is what the validator reads).
fn ops_value(ops: &[WriteOp]) -> Value {
    Value::List(
        ops.iter()
            .map(|op| match op {
                WriteOp::Put { key, value } => Value::Str(format!("put {key}={value}")),
                WriteOp::Delete { key } => Value::Str(format!("delete {key}")),
            })
            .collect(),
    )
}

/// One writer process: invoke, send, complete. Returns the revision an
/// `ok` write committed at.
async fn write_once(
    log: &WatchLog,
    rec: &Recorder,
    kv: &KvClient,
    process: u64,
    ops: Vec<WriteOp>,
    timeout: Duration,
) -> Result<Option<i64>, OpError> {
    let summary = ops_value(&ops);
    rec.event(
        process,
        HistEvent::Invoke,
        "write",
        None,
        summary.clone(),
        None,
    );
    log.record(|time_ns| {
        WatchRecord::Write(WriteRecord {
            process,
            kind: WriteType::Invoke,
            ops: ops.clone(),
            revision: None,
            error: None,
            time_ns,
        })
    });
    let result = kv.etcd_txn(txn_of(&ops), timeout).await;
    let (kind, revision, error) = match &result {
        Ok(resp) => (
            WriteType::Ok,
            resp.header.as_ref().map(|h| h.revision),
            None,
        ),
        Err(e) if e.definite => (WriteType::Fail, None, Some(e.message.clone())),
        Err(e) => (WriteType::Info, None, Some(e.message.clone())),
    };
    let hist = match kind {
        WriteType::Ok => HistEvent::Ok,
        WriteType::Fail => HistEvent::Fail,
        _ => HistEvent::Info,
    };
    rec.event(process, hist, "write", None, summary, error.clone());
    log.record(|time_ns| {
        WatchRecord::Write(WriteRecord {
            process,
            kind,
            ops,
            revision,
            error,
            time_ns,
        })
    });
    result.map(|_| revision)
}

/// Runs the writers until `deadline`; the watchers, started first, keep
/// running until [`finish`].
pub async fn run(
    rec: &Recorder,
    log: &Arc<WatchLog>,
    shared: &Arc<WatchShared>,
    cfg: &WorkloadConfig,
    clients: &[KvClient],
    deadline: Instant,
) {
    start_watchers(log, shared, cfg, clients);
    let total = cfg.clients();
    let values = AtomicI64::new(1);
    super::drive(cfg, deadline, 0x0077_6174_6368, |g| Writer {
        log,
        rec,
        cfg,
        kv: clients[g % clients.len()].clone(),
        process: g as u64,
        stride: total as u64,
        values: &values,
    })
    .await;
}

/// One writer process.
struct Writer<'a> {
    log: &'a WatchLog,
    rec: &'a Recorder,
    cfg: &'a WorkloadConfig,
    kv: KvClient,
    process: u64,
    stride: u64,
    values: &'a AtomicI64,
}

impl super::Step for Writer<'_> {
    async fn step(&mut self, rng: &mut Rng) -> bool {
        let w = random_write(self.cfg, self.values, rng);
        let result = write_once(
            self.log,
            self.rec,
            &self.kv,
            self.process,
            w,
            self.cfg.op_timeout,
        )
        .await;
        // After an unknown outcome the process id is retired (Jepsen's rule).
        if matches!(&result, Err(e) if !e.definite) {
            self.process += self.stride;
        }
        result.is_ok()
    }
}

fn start_watchers(
    log: &Arc<WatchLog>,
    shared: &Arc<WatchShared>,
    cfg: &WorkloadConfig,
    clients: &[KvClient],
) {
    let mut tasks = shared.tasks.lock().unwrap_or_else(|e| e.into_inner());
    for w in 0..clients.len() * WATCHERS_PER_NODE {
        let Some(channel) = clients[w % clients.len()].etcd_channel() else {
            continue;
        };
        let watcher = Watcher {
            id: w as u64 + 1,
            channel,
            log: Arc::clone(log),
            shared: Arc::clone(shared),
            filters: if w % 4 == 3 {
                vec![Filter::NoDelete]
            } else {
                Vec::new()
            },
            complete_to: 0,
            last_event: 0,
            progress_every: (cfg.watch_progress_ms > 0)
                .then(|| Duration::from_millis(cfg.watch_progress_ms)),
            drop_every: cfg.watch_drop_every,
            received: 0,
        };
        tasks.push(tokio::spawn(watcher.run()));
    }
}

/// After the heal: one put to `w/fence` (retried on each node in turn until
/// it commits or `deadline`), whose revision every watcher must then reach
/// by `deadline`: every watcher's filters let a put through, so each learns
/// from the event itself that it is complete, with or without progress
/// notifications. Waits for the watchers and closes their streams; returns
/// how many reached the fence.
pub async fn finish(
    rec: &Recorder,
    log: &WatchLog,
    shared: &WatchShared,
    clients: &[KvClient],
    deadline: Instant,
) -> usize {
    let fence = std::cell::Cell::new(None);
    let mut tries = 0;
    let put = |kv: KvClient, process: u64| {
        let fence = &fence;
        async move {
            let ops = vec![WriteOp::Put {
                key: format!("{PREFIX}fence"),
                value: format!("fence-{process}"),
            }];
            let t = Duration::from_secs(2);
            let rev = write_once(log, rec, &kv, process, ops, t)
                .await
                .ok()
                .flatten();
            fence.set(rev);
            rev.is_some()
        }
    };
    super::on_each_node_until(clients, deadline, 200, &mut tries, put).await;
    let fence = fence.get();
    let give_up = deadline.saturating_duration_since(log.t0).as_millis() as u64;
    shared.give_up_ms.store(give_up.max(1), Ordering::SeqCst);
    shared
        .target
        .store(fence.unwrap_or(i64::MAX), Ordering::SeqCst);
    let tasks: Vec<_> =
        std::mem::take(&mut *shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
    let mut reached = 0;
    for t in tasks {
        if let Ok(true) = t.await {
            reached += 1;
        }
    }
    reached
}

/// One watcher: its id, node and what it knows complete.
struct Watcher {
    id: u64,
    channel: Channel,
    log: Arc<WatchLog>,
    shared: Arc<WatchShared>,
    filters: Vec<Filter>,
    /// Every event up to this revision has been delivered (by events or a
    /// progress notification).
    complete_to: i64,
    /// The revision of the last event recorded: a stream reopens after it.
    /// (Not after a progress notification: with etcd 3.4.23's early
    /// progress, #15220, that would skip events still queued, and the one
    /// server bug would show as two.)
    last_event: i64,
    progress_every: Option<Duration>,
    /// The planted bug: drop every Nth event received (0: off).
    drop_every: u64,
    received: u64,
}

/// Why a stream ended.
enum Ended {
    /// The target revision was reached, or the deadline passed.
    Done,
    /// The stream broke or the server cancelled it: reopen.
    Broken(String),
}

impl Watcher {
    /// Follows the stream until [`finish`]'s target or deadline; true when
    /// the target was reached.
    async fn run(mut self) -> bool {
        loop {
            match self.stream_once().await {
                Ended::Done => break,
                Ended::Broken(reason) => {
                    let (id, log) = (self.id, &self.log);
                    log.record(|time_ns| {
                        WatchRecord::Cancel(CancelRecord {
                            watcher: id,
                            reason,
                            time_ns,
                        })
                    });
                    if self.finished() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
        let id = self.id;
        self.log.record(|time_ns| {
            WatchRecord::End(EndRecord {
                watcher: id,
                time_ns,
            })
        });
        self.complete_to >= self.shared.target.load(Ordering::SeqCst)
    }

    /// The final phase is on and this watcher is complete, or out of time.
    fn finished(&self) -> bool {
        let target = self.shared.target.load(Ordering::SeqCst);
        let give_up = self.shared.give_up_ms.load(Ordering::SeqCst);
        let now_ms = self.log.t0.elapsed().as_millis() as u64;
        target != 0 && (self.complete_to >= target || (give_up != 0 && now_ms >= give_up))
    }

    fn create_request(&self) -> etcd::WatchRequest {
        let filters = self
            .filters
            .iter()
            .map(|f| match f {
                Filter::NoPut => etcd::watch_create_request::FilterType::Noput as i32,
                Filter::NoDelete => etcd::watch_create_request::FilterType::Nodelete as i32,
            })
            .collect();
        etcd::WatchRequest {
            request_union: Some(etcd::watch_request::RequestUnion::CreateRequest(
                etcd::WatchCreateRequest {
                    key: Bytes::from_static(PREFIX.as_bytes()),
                    range_end: Bytes::from(prefix_end(PREFIX.as_bytes())),
                    start_revision: self.last_event + 1,
                    prev_kv: true,
                    filters,
                    ..Default::default()
                },
            )),
        }
    }

    /// Opens the stream from `last_event + 1` and follows it.
    async fn stream_once(&mut self) -> Ended {
        let (tx, rx) = mpsc::channel(WATCH_REQUESTS_MAX);
        let create = self.create_request();
        let (id, start, filters) = (self.id, self.last_event + 1, self.filters.clone());
        self.log.record(|time_ns| {
            WatchRecord::Watch(WatchOpen {
                watcher: id,
                prefix: PREFIX.to_owned(),
                start_revision: start,
                prev_kv: true,
                filters,
                time_ns,
            })
        });
        if tx.send(create).await.is_err() {
            return Ended::Broken("request channel closed".into());
        }
        let mut client = etcd::watch_client::WatchClient::new(self.channel.clone());
        let open = tokio::time::timeout(
            Duration::from_secs(2),
            client.watch(ReceiverStream::new(rx)),
        );
        let mut stream = match open.await {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => {
                return Ended::Broken(format!("{:?}: {}", status.code(), status.message()));
            }
            Err(_) => return Ended::Broken("timeout opening the stream".into()),
        };
        // Without progress requests the tick only re-checks `finished`.
        let mut tick =
            tokio::time::interval(self.progress_every.unwrap_or(Duration::from_millis(500)));
        loop {
            if self.finished() {
                return Ended::Done;
            }
            tokio::select! {
                _ = tick.tick() => {
                    if self.progress_every.is_none() {
                        continue;
                    }
                    let req = etcd::WatchRequest {
                        request_union: Some(etcd::watch_request::RequestUnion::ProgressRequest(
                            etcd::WatchProgressRequest {},
                        )),
                    };
                    // A full queue only delays the next progress request.
                    let _ = tx.try_send(req);
                }
                msg = stream.next() => match msg {
                    None => return Ended::Broken("stream closed by the server".into()),
                    Some(Err(status)) => {
                        return Ended::Broken(format!("{:?}: {}", status.code(), status.message()));
                    }
                    Some(Ok(resp)) => {
                        if let Some(reason) = self.on_response(resp) {
                            return Ended::Broken(reason);
                        }
                    }
                }
            }
        }
    }

    /// Records one response; `Some(reason)` when the server cancelled the watch.
    fn on_response(&mut self, resp: etcd::WatchResponse) -> Option<String> {
        let revision = resp.header.as_ref().map_or(0, |h| h.revision);
        let id = self.id;
        if resp.canceled {
            return Some(format!(
                "cancelled: {} (compact revision {})",
                resp.cancel_reason, resp.compact_revision
            ));
        }
        if resp.created {
            return None;
        }
        if resp.events.is_empty() {
            self.complete_to = self.complete_to.max(revision);
            self.log.record(|time_ns| {
                WatchRecord::Progress(ProgressRecord {
                    watcher: id,
                    revision,
                    time_ns,
                })
            });
            return None;
        }
        let events: Vec<WatchEvent> = resp
            .events
            .iter()
            .filter(|_| {
                self.received += 1;
                self.drop_every == 0 || !self.received.is_multiple_of(self.drop_every)
            })
            .map(event_of)
            .collect();
        if events.is_empty() {
            return None;
        }
        if let Some(last) = events.last() {
            self.complete_to = self.complete_to.max(last.mod_revision);
            self.last_event = last.mod_revision;
        }
        self.log.record(|time_ns| {
            WatchRecord::Events(EventsRecord {
                watcher: id,
                revision,
                events,
                time_ns,
            })
        });
        None
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn event_of(e: &mvccpb::Event) -> WatchEvent {
    let kv = e.kv.clone().unwrap_or_default();
    let delete = e.r#type == mvccpb::event::EventType::Delete as i32;
    WatchEvent {
        kind: if delete {
            EventType::Delete
        } else {
            EventType::Put
        },
        key: text(&kv.key),
        value: (!delete).then(|| text(&kv.value)),
        mod_revision: kv.mod_revision,
        create_revision: (!delete).then_some(kv.create_revision),
        version: (!delete).then_some(kv.version),
        // prev_kv was asked for: absent means there was none.
        prev_value: Some(e.prev_kv.as_ref().map(|p| text(&p.value))),
    }
}
