//! Whole runs against in-process targets: the summary schema, op-count runs, the open
//! loop's accounting of a stall, unreachable endpoints, d-engine's leader redirect.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use d_engine_bench::progress::ProgressMode;
use d_engine_bench::summary::Summary;
use d_engine_bench::{
    CasResult, Consistency, Load, RunOptions, RunSpec, StopAt, Target, TargetError, TargetSpec,
    WorkloadKind, WorkloadSpec, run_target_to_dir, run_to_dir,
};

fn spec(load: Load, stop: StopAt) -> RunSpec {
    RunSpec {
        load,
        stop,
        warmup: Duration::from_millis(200),
        op_timeout: Duration::from_secs(1),
        abort_after: Duration::from_secs(2),
        ..RunSpec::default()
    }
}

fn quiet(spec: RunSpec) -> RunOptions {
    let mut o = RunOptions::new(spec);
    o.progress = ProgressMode::Quiet;
    o
}

fn read_summary(dir: &Path) -> (Summary, serde_json::Value) {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    (
        serde_json::from_str(&text).expect("summary parses"),
        serde_json::from_str(&text).expect("summary is JSON"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_run_writes_a_sane_summary_series_and_hlog() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut opts = quiet(spec(
        Load::Closed { clients: 4 },
        StopAt::Duration(Duration::from_millis(2100)),
    ));
    opts.floors_dir = Some(tmp.path().to_path_buf());
    let outcome = run_to_dir(&TargetSpec::Noop, &opts, &dir).await.unwrap();
    assert_eq!(outcome.error(), None);
    let (s, json) = read_summary(&dir);
    for field in [
        "schema_version",
        "target",
        "workload",
        "clients",
        "ops",
        "ops_per_sec",
        "errors",
        "latency_us",
        "floors",
        "nodes",
    ] {
        assert!(json.get(field).is_some(), "summary lacks {field}");
    }
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_us"][p].is_u64(), "latency_us.{p}");
    }
    for k in ["timeout", "unavailable", "not_leader", "too_large", "other"] {
        assert_eq!(json["errors"][k], 0, "errors.{k}");
    }
    assert_eq!((s.target.as_str(), s.workload.as_str()), ("noop", "write"));
    assert_eq!((s.clients, s.status.as_str()), (4, "ok"));
    assert!(s.ops > 10_000, "noop did only {} ops", s.ops);
    assert!(s.warmup_ops > 0);
    assert!((2.0..3.5).contains(&s.duration_s), "{}", s.duration_s);
    let rate = s.ops as f64 / s.duration_s;
    assert!((s.ops_per_sec - rate).abs() / rate < 0.01);
    let l = &s.latency_us;
    assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
    assert_eq!(l.samples, s.ops);
    let f = s.floors.expect("floors measured");
    assert!(f.fdatasync_us.samples > 0 && f.fdatasync_us.p50 > 0);
    assert!(f.grpc_ping_us.samples > 0 && f.grpc_ping_us.p50 > 0);
    // One row per measured second, ops adding up to the summary's.
    let csv = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("second,ops,errors,p50_us,p99_us,length_s")
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert!((2..=4).contains(&rows.len()), "{csv}");
    assert_eq!(rows.iter().map(|r| r[1] as u64).sum::<u64>(), s.ops);
    assert_eq!(rows[0][0], 0.0);
    // The intervals tile the measured phase (their lengths add up to it).
    let total: f64 = rows.iter().map(|r| r[5]).sum();
    assert!(
        (total - s.duration_s).abs() < 0.1,
        "{total} vs {}",
        s.duration_s
    );
    // The hlog holds the same intervals and they add up to the same count.
    let hlog = std::fs::read(dir.join("latency.hlog")).unwrap();
    let mut count = 0;
    let mut intervals = 0;
    for item in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) = item.unwrap() {
            let bytes = base64_decode(h.encoded_histogram());
            let hist: hdrhistogram::Histogram<u64> =
                hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut &bytes[..])
                    .unwrap();
            count += hist.len();
            intervals += 1;
        }
    }
    assert_eq!(intervals, rows.len());
    assert_eq!(count, s.ops);
}

/// Standard base64 (the hlog's encoding), to keep the test free of another dependency.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_op_count_run_sends_exactly_that_many_and_cas_works() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(Load::Closed { clients: 3 }, StopAt::Ops(5_000));
    s.workload = WorkloadSpec {
        kind: WorkloadKind::Cas,
        keys: 100,
        ..WorkloadSpec::default()
    };
    let outcome = run_to_dir(&TargetSpec::Noop, &quiet(s), tmp.path())
        .await
        .unwrap();
    assert_eq!(outcome.error(), None);
    assert_eq!(outcome.summary.ops, 5_000);
    assert_eq!(outcome.summary.writes, 5_000);
    assert_eq!(outcome.summary.workload, "cas");
}

/// Answers at once, except that once, `stall_after` into the run, the whole "server"
/// stops answering for `stall`.
struct StallOnce {
    start: Instant,
    stall_after: Duration,
    stall: Duration,
    stall_until: std::sync::Mutex<Option<Instant>>,
}

impl StallOnce {
    fn new(stall_after: Duration, stall: Duration) -> StallOnce {
        StallOnce {
            start: Instant::now(),
            stall_after,
            stall,
            stall_until: std::sync::Mutex::new(None),
        }
    }

    async fn maybe_stall(&self) {
        let now = Instant::now();
        let until = {
            let mut u = self.stall_until.lock().unwrap();
            if u.is_none() && now >= self.start + self.stall_after {
                *u = Some(now + self.stall);
            }
            *u
        };
        if let Some(until) = until
            && now < until
        {
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

impl Target for StallOnce {
    async fn put(&self, _k: Bytes, _v: Bytes) -> Result<(), TargetError> {
        self.maybe_stall().await;
        Ok(())
    }
    async fn get(&self, _k: Bytes, _c: Consistency) -> Result<Option<Bytes>, TargetError> {
        self.maybe_stall().await;
        Ok(None)
    }
    async fn cas(&self, _k: Bytes, _e: Option<Bytes>, _n: Bytes) -> Result<CasResult, TargetError> {
        self.maybe_stall().await;
        Ok(CasResult {
            succeeded: true,
            current: None,
        })
    }
}

/// Samples of at least 100 ms in a run against a target that stalls 500 ms once.
async fn slow_samples(load: Load) -> (u64, Summary) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(load, StopAt::Duration(Duration::from_millis(1500)));
    s.op_timeout = Duration::from_secs(2);
    let target = Arc::new(StallOnce::new(
        Duration::from_millis(700),
        Duration::from_millis(500),
    ));
    let outcome = run_target_to_dir("stall", target, &quiet(s), tmp.path())
        .await
        .unwrap();
    assert_eq!(outcome.error(), None);
    let hlog = std::fs::read(tmp.path().join("latency.hlog")).unwrap();
    let mut slow = 0;
    for item in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) = item.unwrap() {
            let bytes = base64_decode(h.encoded_histogram());
            let hist: hdrhistogram::Histogram<u64> =
                hdrhistogram::serialization::Deserializer::new()
                    .deserialize(&mut &bytes[..])
                    .unwrap();
            slow += hist.count_between(100_000, u64::MAX / 2);
        }
    }
    (slow, outcome.summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_charges_a_stall_to_every_request_it_delayed() {
    // 1000 ops/s: the 500 ms stall delays ~500 intended sends, of which ~400 by more
    // than 100 ms. A closed loop with the same concurrency sees it in 4 samples only.
    let (open_slow, open) = slow_samples(Load::Open {
        rate: 1000.0,
        max_in_flight: 4,
    })
    .await;
    let (closed_slow, _) = slow_samples(Load::Closed { clients: 4 }).await;
    eprintln!("samples >= 100 ms: open loop {open_slow}, closed loop {closed_slow}");
    assert!(
        open_slow >= 250,
        "open loop: only {open_slow} samples >= 100 ms"
    );
    // 4 stalled calls, plus slack for a loaded machine that delays a few others.
    assert!(
        closed_slow <= 20,
        "closed loop: {closed_slow} samples >= 100 ms"
    );
    assert!(open.latency_us.max >= 450_000, "{:?}", open.latency_us);
    assert_eq!(open.mode, "open");
    // The rate was kept (about 1000 ops/s over the measured 1.5 s), or what was not
    // sent by the end is reported as unsent.
    let unsent = open.unsent.expect("open loop reports unsent");
    assert!(
        (1200..=1700).contains(&(open.ops + unsent)),
        "open loop did {} ops, {unsent} unsent",
        open.ops
    );
    let service = open.service_us.expect("open loop records service time");
    assert!(service.p50 <= open.latency_us.p50);
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn expect_clear_failure(target: TargetSpec, want: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = quiet(spec(
        Load::Closed { clients: 4 },
        StopAt::Duration(Duration::from_secs(30)),
    ));
    let t = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        run_to_dir(&target, &opts, tmp.path()),
    )
    .await
    .expect("the run must not hang")
    .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    let err = outcome.error().expect("an unreachable target is an error");
    assert!(err.contains(want), "unclear error: {err}");
    let (s, _) = read_summary(tmp.path());
    assert_eq!(s.status, "error");
    assert_eq!(s.error.as_deref(), Some(err));
    assert_eq!(s.ops, 0);
    assert!(tmp.path().join("timeseries.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoints_end_with_a_clear_error_and_a_summary() {
    let port = closed_port();
    expect_clear_failure(
        TargetSpec::Etcd {
            endpoints: vec![format!("127.0.0.1:{port}")],
        },
        &format!("cannot reach etcd at [127.0.0.1:{port}]"),
    )
    .await;
    expect_clear_failure(
        TargetSpec::Dengine {
            endpoints: vec![format!("127.0.0.1:{port}")],
        },
        "cannot reach dengine",
    )
    .await;
    // A port that accepts connections but never answers: the probe's deadline ends it.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap();
    expect_clear_failure(
        TargetSpec::Etcd {
            endpoints: vec![addr.to_string()],
        },
        "cannot reach etcd",
    )
    .await;
    drop(hole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_noop_target_is_far_faster_than_any_real_cluster() {
    // Not the ≥10× claim itself (that needs the cluster's figure from the same run), but
    // a guard that the generator alone sustains a rate no local cluster approaches.
    let tmp = tempfile::tempdir().unwrap();
    let opts = quiet(spec(
        Load::Closed { clients: 64 },
        StopAt::Duration(Duration::from_secs(1)),
    ));
    let outcome = run_to_dir(&TargetSpec::Noop, &opts, tmp.path())
        .await
        .unwrap();
    assert!(
        outcome.summary.ops_per_sec > 50_000.0,
        "noop ceiling {} ops/s",
        outcome.summary.ops_per_sec
    );
}

mod fake_dengine {
    //! A two-node fake of d-engine's Kv service: a follower that answers NOT_LEADER with
    //! the leader's address, and a leader that serves from a map.

    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use bytes::Bytes;
    use d_engine_proto::v1::compare_and_swap_request::Expected;
    use d_engine_proto::v1::kv_server::{Kv, KvServer};
    use d_engine_proto::v1::*;
    use tonic::{Request, Response, Status};

    pub struct Node {
        /// Set on the follower: where the leader is.
        pub leader_addr: Option<String>,
        pub store: Mutex<HashMap<Bytes, Bytes>>,
        pub calls: AtomicU64,
        pub batches: AtomicU64,
    }

    impl Node {
        fn redirect(&self) -> Option<ReplyError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.leader_addr.as_ref().map(|a| ReplyError {
                code: ErrorCode::NotLeader as i32,
                message: "not the leader".into(),
                leader_id: 2,
                leader_addr: a.clone(),
            })
        }
    }

    pub struct Svc(std::sync::Arc<Node>);

    impl std::ops::Deref for Svc {
        type Target = Node;
        fn deref(&self) -> &Node {
            &self.0
        }
    }

    #[tonic::async_trait]
    impl Kv for Svc {
        async fn put(&self, r: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
            let r = r.into_inner();
            let error = self.redirect();
            if error.is_none() {
                self.store.lock().unwrap().insert(r.key, r.value);
            }
            Ok(Response::new(PutResponse {
                header: None,
                error,
            }))
        }
        async fn get(&self, r: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
            let r = r.into_inner();
            let local = r.consistency == ReadConsistency::Serializable as i32;
            let error = if local { None } else { self.redirect() };
            let v = self.store.lock().unwrap().get(&r.key).cloned();
            Ok(Response::new(GetResponse {
                header: None,
                error,
                found: v.is_some(),
                value: v.unwrap_or_default(),
            }))
        }
        async fn delete(
            &self,
            _r: Request<DeleteRequest>,
        ) -> Result<Response<DeleteResponse>, Status> {
            Err(Status::unimplemented("delete"))
        }
        async fn compare_and_swap(
            &self,
            r: Request<CompareAndSwapRequest>,
        ) -> Result<Response<CompareAndSwapResponse>, Status> {
            let r = r.into_inner();
            if let Some(error) = self.redirect() {
                return Ok(Response::new(CompareAndSwapResponse {
                    error: Some(error),
                    ..Default::default()
                }));
            }
            let mut store = self.store.lock().unwrap();
            let current = store.get(&r.key).cloned();
            let ok = match r.expected {
                Some(Expected::ExpectedValue(v)) => current.as_ref() == Some(&v),
                Some(Expected::ExpectAbsent(_)) | None => current.is_none(),
            };
            if ok {
                store.insert(r.key, r.new_value);
            }
            Ok(Response::new(CompareAndSwapResponse {
                header: None,
                error: None,
                succeeded: ok,
                current_found: current.is_some(),
                current_value: current.unwrap_or_default(),
            }))
        }
        async fn scan(&self, _r: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
            Err(Status::unimplemented("scan"))
        }
        /// Each operation through its single call, in order.
        async fn batch(&self, r: Request<BatchRequest>) -> Result<Response<BatchResponse>, Status> {
            use batch_op::Op;
            use batch_result::Result as R;
            self.batches.fetch_add(1, Ordering::Relaxed);
            let mut results = Vec::new();
            for op in r.into_inner().ops {
                let result = match op.op {
                    Some(Op::Put(q)) => R::Put(self.put(Request::new(q)).await?.into_inner()),
                    Some(Op::Get(q)) => R::Get(self.get(Request::new(q)).await?.into_inner()),
                    Some(Op::CompareAndSwap(q)) => R::CompareAndSwap(
                        self.compare_and_swap(Request::new(q)).await?.into_inner(),
                    ),
                    _ => return Err(Status::unimplemented("op")),
                };
                results.push(BatchResult {
                    result: Some(result),
                });
            }
            Ok(Response::new(BatchResponse {
                error: None,
                results,
            }))
        }
    }

    /// Serves `node` on a free 127.0.0.1 port; returns its address.
    pub async fn serve(node: std::sync::Arc<Node>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(KvServer::new(Svc(node)))
                .serve_with_incoming(incoming),
        );
        addr
    }

    pub fn node(leader_addr: Option<String>) -> std::sync::Arc<Node> {
        std::sync::Arc::new(Node {
            leader_addr,
            store: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dengine_target_follows_the_leader_hint_once_and_remembers_it() {
    dengine_target_follows_the_leader(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dengine_target_follows_the_leader_hint_when_batching() {
    dengine_target_follows_the_leader(4).await;
}

async fn dengine_target_follows_the_leader(batch_in_flight: usize) {
    use d_engine_bench::DengineTarget;
    let leader = fake_dengine::node(None);
    let leader_addr = fake_dengine::serve(leader.clone()).await;
    let follower = fake_dengine::node(Some(leader_addr.clone()));
    let follower_addr = fake_dengine::serve(follower.clone()).await;

    let t = DengineTarget::new(std::slice::from_ref(&follower_addr), batch_in_flight).unwrap();
    let (k, v) = (Bytes::from_static(b"k"), Bytes::from_static(b"v1"));
    t.put(k.clone(), v.clone()).await.unwrap();
    assert_eq!(follower.calls.load(Ordering::Relaxed), 1, "one redirect");
    assert_eq!(
        t.get(k.clone(), Consistency::Linearizable).await.unwrap(),
        Some(v.clone())
    );
    assert_eq!(
        follower.calls.load(Ordering::Relaxed),
        1,
        "the leader is remembered"
    );
    let swapped = t
        .cas(k.clone(), Some(v.clone()), Bytes::from_static(b"v2"))
        .await
        .unwrap();
    assert!(swapped.succeeded);
    let refused = t
        .cas(k.clone(), None, Bytes::from_static(b"v3"))
        .await
        .unwrap();
    assert!(!refused.succeeded);
    assert_eq!(refused.current, Some(Bytes::from_static(b"v2")));

    // A whole run through the follower: every write lands on the leader, no errors.
    let tmp = tempfile::tempdir().unwrap();
    // More clients than batch slots, so that calls queue and share batches.
    let opts = quiet(spec(
        Load::Closed { clients: 16 },
        StopAt::Duration(Duration::from_millis(1000)),
    ));
    let mut opts = opts;
    opts.dengine_batch_in_flight = batch_in_flight;
    let target = TargetSpec::Dengine {
        endpoints: vec![follower_addr],
    };
    let outcome = run_to_dir(&target, &opts, tmp.path()).await.unwrap();
    assert_eq!(outcome.error(), None);
    assert!(outcome.summary.ops > 100, "{}", outcome.summary.ops);
    assert_eq!(outcome.summary.errors.total, 0);
    assert!(leader.store.lock().unwrap().len() > 100);
    // Batching shows in the summary and on the wire; without it, no Batch call is made.
    let batches = leader.batches.load(Ordering::Relaxed);
    match outcome.summary.client_batching {
        Some(b) => {
            assert_eq!(batch_in_flight, 4);
            assert_eq!(b.in_flight, 4);
            assert!(b.batches > 0 && b.ops >= b.batches, "{b:?}");
            assert!(batches > 0);
        }
        None => {
            assert_eq!(batch_in_flight, 0);
            assert_eq!(batches, 0);
        }
    }
}

/// An in-memory map, to see what a run wrote.
#[derive(Default)]
struct MapTarget {
    map: std::sync::Mutex<std::collections::HashMap<Bytes, Bytes>>,
    misses: std::sync::atomic::AtomicU64,
}

impl Target for MapTarget {
    async fn put(&self, k: Bytes, v: Bytes) -> Result<(), TargetError> {
        self.map.lock().unwrap().insert(k, v);
        Ok(())
    }
    async fn get(&self, k: Bytes, _c: Consistency) -> Result<Option<Bytes>, TargetError> {
        let v = self.map.lock().unwrap().get(&k).cloned();
        // (The probe before the run reads a key outside the key space.)
        if v.is_none() && k.starts_with(b"k/") {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        Ok(v)
    }
    async fn cas(&self, k: Bytes, e: Option<Bytes>, n: Bytes) -> Result<CasResult, TargetError> {
        let mut map = self.map.lock().unwrap();
        let current = map.get(&k).cloned();
        let succeeded = current == e;
        if succeeded {
            map.insert(k, n);
        }
        Ok(CasResult { succeeded, current })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preload_writes_every_key_once_so_reads_find_values() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(
        Load::Closed { clients: 8 },
        StopAt::Duration(Duration::from_millis(500)),
    );
    s.workload = WorkloadSpec {
        kind: WorkloadKind::Read,
        keys: 5_000,
        value_size: 32,
        ..WorkloadSpec::default()
    };
    let mut opts = quiet(s);
    opts.preload = true;
    let target = Arc::new(MapTarget::default());
    let outcome = run_target_to_dir("map", target.clone(), &opts, tmp.path())
        .await
        .unwrap();
    assert_eq!(outcome.error(), None);
    assert!(outcome.summary.reads > 0);
    assert_eq!(outcome.summary.writes, 0, "preload writes are not counted");
    let map = target.map.lock().unwrap();
    assert_eq!(map.len(), 5_000);
    assert!(map.values().all(|v| v.len() == 32));
    assert_eq!(target.misses.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_against_a_real_store_mostly_swaps() {
    // The shared hints make most swaps succeed even with 8 workers on 50 keys; a
    // generator that sent stale expectations would fail nearly all of them.
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(Load::Closed { clients: 8 }, StopAt::Ops(20_000));
    s.workload = WorkloadSpec {
        kind: WorkloadKind::Cas,
        keys: 50,
        ..WorkloadSpec::default()
    };
    let target = Arc::new(MapTarget::default());
    let outcome = run_target_to_dir("map", target, &quiet(s), tmp.path())
        .await
        .unwrap();
    let sm = &outcome.summary;
    assert_eq!(sm.ops, 20_000);
    assert!(
        sm.cas_failed * 2 < sm.ops,
        "{} of {} swaps failed",
        sm.cas_failed,
        sm.ops
    );
}

/// Takes 10 ms per call.
struct Slow;

impl Target for Slow {
    async fn put(&self, _k: Bytes, _v: Bytes) -> Result<(), TargetError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
    }
    async fn get(&self, _k: Bytes, _c: Consistency) -> Result<Option<Bytes>, TargetError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(None)
    }
    async fn cas(&self, _k: Bytes, _e: Option<Bytes>, _n: Bytes) -> Result<CasResult, TargetError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(CasResult {
            succeeded: true,
            current: None,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_open_loop_ends_on_time_and_counts_what_it_could_not_send() {
    // 1000 ops/s offered, at most 2 in flight of 10 ms each: ~200 ops/s served.
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(
        Load::Open {
            rate: 1000.0,
            max_in_flight: 2,
        },
        StopAt::Duration(Duration::from_secs(1)),
    );
    // (With a warm-up, the backlog would be all warm-up tickets: nothing measured.)
    s.warmup = Duration::ZERO;
    let t = Instant::now();
    let outcome = run_target_to_dir("slow", Arc::new(Slow), &quiet(s), tmp.path())
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
    let sm = &outcome.summary;
    assert!(sm.ops < 400, "{} ops", sm.ops);
    let unsent = sm.unsent.expect("open loop reports unsent");
    assert!(unsent > 500, "only {unsent} unsent");
    // Queueing shows in the latency from intended time, not in the service time.
    let service = sm.service_us.as_ref().unwrap();
    assert!(sm.latency_us.p50 > 100_000, "{:?}", sm.latency_us);
    assert!(service.p50 < 50_000, "{service:?}");
}
