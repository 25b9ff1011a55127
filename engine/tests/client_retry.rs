//! The client against scripted in-process servers on 127.0.0.1: leader redirects,
//! lost replies retried under one session, definite failures not retried, and
//! unreachable clusters failing within the deadline instead of hanging.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use d_engine::client::{Client, ClientConfig, ClientError, ReadConsistency};
use d_engine_proto::v1::kv_server::{Kv, KvServer};
use d_engine_proto::v1::*;
use tonic::{Request, Response, Status};

/// How a scripted node behaves.
#[derive(Default)]
struct Script {
    /// Not the leader: answer NOT_LEADER pointing here.
    redirect_to: Option<String>,
    /// Answer BUSY to the first N writes.
    busy_first: usize,
    /// Apply the first N writes but reply only after this long (a lost reply).
    slow_first: usize,
    slow_for: Duration,
    /// Largest value accepted.
    value_max: usize,
}

#[derive(Default)]
struct Node {
    script: Script,
    calls: AtomicUsize,
    /// `Batch` RPCs received (each of their operations also counts in `calls`).
    batches: AtomicUsize,
    applies: AtomicUsize,
    data: Mutex<BTreeMap<Bytes, Bytes>>,
    /// Session table: client id -> (last seq, its reply), as the state machine keeps it.
    /// By (client id, lane): the last seq applied and its index.
    sessions: Mutex<HashMap<(u64, u32), (u64, u64)>>,
    index: AtomicUsize,
}

fn err(code: ErrorCode, leader_addr: &str) -> Option<ReplyError> {
    Some(ReplyError {
        code: code as i32,
        message: format!("{code:?}"),
        leader_id: 0,
        leader_addr: leader_addr.into(),
    })
}

fn header(index: u64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        applied_index: index,
        ..Default::default()
    })
}

/// The gRPC face of a scripted node.
struct Svc(Arc<Node>);

impl std::ops::Deref for Svc {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.0
    }
}

#[tonic::async_trait]
impl Kv for Svc {
    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let req = req.into_inner();
        if let Some(l) = &self.script.redirect_to {
            return Ok(Response::new(PutResponse {
                header: None,
                error: err(ErrorCode::NotLeader, l),
            }));
        }
        if n < self.script.busy_first {
            return Ok(Response::new(PutResponse {
                header: None,
                error: err(ErrorCode::Busy, ""),
            }));
        }
        if self.script.value_max > 0 && req.value.len() > self.script.value_max {
            return Ok(Response::new(PutResponse {
                header: None,
                error: err(ErrorCode::TooLarge, ""),
            }));
        }
        let session = req
            .header
            .and_then(|h| h.session)
            .expect("writes carry a session");
        let index = {
            let mut sessions = self.sessions.lock().unwrap();
            match sessions.get(&(session.client_id, session.lane)) {
                Some(&(seq, index)) if seq == session.seq => index,
                _ => {
                    let index = self.index.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                    self.applies.fetch_add(1, Ordering::SeqCst);
                    self.data.lock().unwrap().insert(req.key, req.value);
                    sessions.insert((session.client_id, session.lane), (session.seq, index));
                    index
                }
            }
        };
        if n < self.script.slow_first {
            tokio::time::sleep(self.script.slow_for).await;
        }
        Ok(Response::new(PutResponse {
            header: header(index),
            error: None,
        }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(l) = &self.script.redirect_to {
            return Ok(Response::new(GetResponse {
                error: err(ErrorCode::NotLeader, l),
                ..Default::default()
            }));
        }
        let value = self
            .data
            .lock()
            .unwrap()
            .get(&req.into_inner().key)
            .cloned();
        Ok(Response::new(GetResponse {
            header: header(self.index.load(Ordering::SeqCst) as u64),
            error: None,
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn delete(&self, _: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn compare_and_swap(
        &self,
        _: Request<CompareAndSwapRequest>,
    ) -> Result<Response<CompareAndSwapResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn scan(&self, _: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    /// Each operation through its single call, all at once, as the real node does.
    async fn batch(&self, req: Request<BatchRequest>) -> Result<Response<BatchResponse>, Status> {
        use batch_op::Op;
        use batch_result::Result as R;
        self.batches.fetch_add(1, Ordering::SeqCst);
        let ops = req.into_inner().ops.into_iter().map(|op| async move {
            let result = match op.op {
                Some(Op::Put(q)) => R::Put(self.put(Request::new(q)).await?.into_inner()),
                Some(Op::Get(q)) => R::Get(self.get(Request::new(q)).await?.into_inner()),
                _ => return Err(Status::unimplemented("not scripted")),
            };
            Ok(BatchResult {
                result: Some(result),
            })
        });
        let results = futures_util::future::join_all(ops)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(BatchResponse {
            error: None,
            results,
        }))
    }
}

async fn serve(script: Script) -> (Arc<Node>, SocketAddr) {
    let node = Arc::new(Node {
        script,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = KvServer::new(Svc(node.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (node, addr)
}

fn config(endpoints: &[SocketAddr]) -> ClientConfig {
    ClientConfig::new(endpoints.iter().map(|a| a.to_string()))
        .deadline(Duration::from_secs(3))
        .attempt_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn follows_the_leader_hint_from_a_follower() {
    let (leader, leader_addr) = serve(Script::default()).await;
    let (follower, follower_addr) = serve(Script {
        redirect_to: Some(leader_addr.to_string()),
        ..Default::default()
    })
    .await;
    let client = Client::connect(config(&[follower_addr])).unwrap();
    let ack = client.put("k", "v").await.unwrap();
    assert_eq!(ack.index, 1);
    assert_eq!(
        client
            .get("k", ReadConsistency::Linearizable)
            .await
            .unwrap(),
        Some(Bytes::from("v"))
    );
    // One redirect, then the client remembers the leader.
    assert_eq!(follower.calls.load(Ordering::SeqCst), 1);
    assert_eq!(leader.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_lost_reply_is_retried_under_the_same_session_and_applied_once() {
    let (leader, addr) = serve(Script {
        slow_first: 1,
        slow_for: Duration::from_millis(800),
        ..Default::default()
    })
    .await;
    let client = Client::connect(config(&[addr])).unwrap();
    let ack = client.put("k", "v1").await.unwrap();
    assert!(
        leader.calls.load(Ordering::SeqCst) >= 2,
        "the slow first attempt was retried"
    );
    assert_eq!(
        leader.applies.load(Ordering::SeqCst),
        1,
        "the retry was deduplicated"
    );
    assert_eq!(ack.index, 1, "the retry got the first attempt's result");
    // The next write on the client is a new operation and applies.
    client.put("k", "v2").await.unwrap();
    assert_eq!(leader.applies.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn busy_is_retried_until_it_clears() {
    let (leader, addr) = serve(Script {
        busy_first: 2,
        ..Default::default()
    })
    .await;
    let client = Client::connect(config(&[addr])).unwrap();
    client.put("k", "v").await.unwrap();
    assert_eq!(leader.calls.load(Ordering::SeqCst), 3);
    assert_eq!(leader.applies.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn too_large_is_a_definite_failure_without_retries() {
    let (leader, addr) = serve(Script {
        value_max: 8,
        ..Default::default()
    })
    .await;
    let client = Client::connect(config(&[addr])).unwrap();
    let e = client.put("k", vec![0u8; 64]).await.unwrap_err();
    assert!(matches!(e, ClientError::TooLarge(_)), "{e}");
    assert!(!e.outcome_unknown());
    assert_eq!(leader.calls.load(Ordering::SeqCst), 1);
}

/// Regression (CI): with the batcher's encoding limit on lone calls, a value over the
/// node's message bound never left the client (the stream was reset) and the put
/// ended as "outcome unknown" instead of the node's TOO_LARGE.
#[tokio::test]
async fn regression_an_oversized_value_reaches_the_node_and_gets_too_large() {
    let (leader, addr) = serve(Script {
        value_max: 8,
        ..Default::default()
    })
    .await;
    let client = Client::connect(config(&[addr])).unwrap();
    let e = client
        .put("k", vec![0u8; 2 * 1024 * 1024])
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::TooLarge(_)), "{e}");
    assert_eq!(leader.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_cluster_fails_within_the_deadline() {
    // Bind and drop to get ports nothing listens on.
    let dead: Vec<SocketAddr> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    let client = Client::connect(config(&dead).deadline(Duration::from_millis(700))).unwrap();
    let started = Instant::now();
    let e = client
        .get("k", ReadConsistency::Linearizable)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(e, ClientError::Unavailable { .. }), "{e}");
    assert!(!e.outcome_unknown(), "a read never has an unknown outcome");
    // A write that never reached a node may still be unknown to the client: it cannot
    // tell a refused connection from a reply lost after sending, so it says so.
    let e = client.put("k", "v").await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Timeout { .. } | ClientError::Unavailable { .. }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn concurrent_calls_share_batches_and_each_gets_its_own_result() {
    let (leader, addr) = serve(Script::default()).await;
    let client = Client::connect(config(&[addr])).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.put(format!("k{i}"), format!("v{i}")).await })
        })
        .collect();
    let mut indexes = std::collections::BTreeSet::new();
    for t in tasks {
        indexes.insert(t.await.unwrap().unwrap().index);
    }
    assert_eq!(indexes.len(), 200, "every write got its own index");
    assert_eq!(leader.calls.load(Ordering::SeqCst), 200);
    assert_eq!(leader.applies.load(Ordering::SeqCst), 200);
    let batches = leader.batches.load(Ordering::SeqCst);
    assert!(
        (1..=100).contains(&batches),
        "200 concurrent writes went in {batches} batches"
    );
    for i in [0, 77, 199] {
        let v = client
            .get(format!("k{i}"), ReadConsistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(v, Some(Bytes::from(format!("v{i}"))));
    }
}

#[tokio::test]
async fn without_batching_and_for_large_values_calls_go_alone() {
    let (leader, addr) = serve(Script::default()).await;
    let client = Client::connect(config(&[addr]).batch_in_flight(0)).unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.put(format!("k{i}"), "v").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(leader.batches.load(Ordering::SeqCst), 0);
    assert_eq!(leader.calls.load(Ordering::SeqCst), 20);

    // Batching on: values past the batching bound still go on their own calls, even
    // when many are sent at once; small ones sent at once share batches.
    let (leader, addr) = serve(Script::default()).await;
    let client = Client::connect(config(&[addr])).unwrap();
    let big = Bytes::from(vec![7u8; d_engine::client::BATCH_OP_BYTES_MAX + 1]);
    let concurrent = |value: Bytes| {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (c, v) = (client.clone(), value.clone());
                tokio::spawn(async move { c.put(format!("k{i}"), v).await })
            })
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        }
    };
    concurrent(big).await;
    assert_eq!(leader.batches.load(Ordering::SeqCst), 0);
    assert_eq!(leader.calls.load(Ordering::SeqCst), 20);
    concurrent(Bytes::from_static(b"small")).await;
    assert!(leader.batches.load(Ordering::SeqCst) >= 1);
    assert_eq!(leader.calls.load(Ordering::SeqCst), 40);
}

#[tokio::test]
async fn a_lone_call_goes_on_its_own_rpc_with_batching_on() {
    let (leader, addr) = serve(Script::default()).await;
    let client = Client::connect(config(&[addr])).unwrap();
    for i in 0..5 {
        client.put(format!("k{i}"), "v").await.unwrap();
    }
    assert_eq!(leader.calls.load(Ordering::SeqCst), 5);
    assert_eq!(
        leader.batches.load(Ordering::SeqCst),
        0,
        "nothing else was waiting: no batch"
    );
}

#[test]
fn no_endpoints_is_a_configuration_error() {
    let e = Client::connect(ClientConfig::new(Vec::<String>::new()))
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::Config(_)));
}
