//! Whole nodes in one process: each on its own thread with a current-thread runtime,
//! memory storage, real gRPC on 127.0.0.1. Fast checks of the runtime's wiring; the
//! process-level tests (kill -9, restart) are in `cluster_processes.rs`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use d_engine::NodeBuilder;
use d_engine::client::{Client, ClientConfig, ReadConsistency};
use d_engine::config::{Config, MemberConfig, StorageBackend};
use tokio::sync::watch;

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

struct Cluster {
    addrs: Vec<String>,
    stops: Vec<Option<watch::Sender<()>>>,
    threads: Vec<Option<std::thread::JoinHandle<()>>>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Self::start_with(n, 150)
    }

    /// `election_ms`: the minimum election timeout (the maximum is twice it).
    fn start_with(n: usize, election_ms: u64) -> Cluster {
        let ports = free_ports(n);
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let members: Vec<MemberConfig> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| MemberConfig {
                id: i as u64 + 1,
                addr: a.clone(),
                learner: false,
            })
            .collect();
        let mut stops = Vec::new();
        let mut threads = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let mut c = Config::default();
            c.node.id = i as u64 + 1;
            c.node.listen_addr = addr.clone();
            c.cluster.initial_members = members.clone();
            c.storage.backend = StorageBackend::Memory;
            c.raft.election_timeout_ms_min = election_ms;
            c.raft.election_timeout_ms_max = 2 * election_ms;
            c.raft.heartbeat_interval_ms = 30;
            let (tx, rx) = watch::channel(());
            stops.push(Some(tx));
            threads.push(Some(std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let node = NodeBuilder::from_config(c, rx)
                        .build()
                        .start_rpc_server()
                        .await
                        .ready()
                        .unwrap();
                    node.run().await.unwrap();
                });
            })));
        }
        Cluster {
            addrs,
            stops,
            threads,
        }
    }

    fn stop(&mut self, i: usize) {
        if let Some(tx) = self.stops[i].take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.threads[i].take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.stops.len() {
            self.stop(i);
        }
    }
}

#[test]
fn three_nodes_elect_a_leader_and_serve_writes_and_reads() {
    let mut cluster = Cluster::start(3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::connect(
            ClientConfig::new(cluster.addrs.clone()).deadline(Duration::from_secs(10)),
        )
        .unwrap();
        let started = Instant::now();
        client.put("k1", "v1").await.expect("first write");
        eprintln!("first write after {:?}", started.elapsed());
        for i in 0..50 {
            client
                .put(format!("key{i}"), format!("value{i}"))
                .await
                .unwrap();
        }
        for consistency in [
            ReadConsistency::Linearizable,
            ReadConsistency::Lease,
            ReadConsistency::Serializable,
        ] {
            let v = client.get("k1", consistency).await.unwrap();
            assert_eq!(v.as_deref(), Some(&b"v1"[..]), "{consistency:?}");
        }
        let cas = client
            .compare_and_swap("k1", Some("v1".into()), "v2")
            .await
            .unwrap();
        assert!(cas.succeeded);
        let cas = client
            .compare_and_swap("k1", Some("v1".into()), "v3")
            .await
            .unwrap();
        assert!(!cas.succeeded);
        assert_eq!(cas.current.as_deref(), Some(&b"v2"[..]));
        assert!(client.delete("key0").await.unwrap());
        assert_eq!(
            client
                .get("key0", ReadConsistency::Linearizable)
                .await
                .unwrap(),
            None
        );
        let page = client
            .scan("key1", "", "", 100, ReadConsistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 11, "key1 and key10..key19");
        let status = client.admin().status_of(&cluster.addrs[0]).await.unwrap();
        assert!(status.commit_index >= 52, "{status:?}");
    });
    // Stop the leader's peers one by one: with one node down, writes still commit.
    cluster.stop(2);
    rt.block_on(async {
        let client = Client::connect(
            ClientConfig::new(cluster.addrs[..2].to_vec()).deadline(Duration::from_secs(10)),
        )
        .unwrap();
        client
            .put("after", "one down")
            .await
            .expect("a quorum of two still commits");
        assert_eq!(
            client
                .get("after", ReadConsistency::Linearizable)
                .await
                .unwrap()
                .as_deref(),
            Some(&b"one down"[..])
        );
    });
}

/// Regression (found by the chaos suite): a leader stopped gracefully answered writes
/// already in its log with SHUTTING_DOWN ("not applied"), though another leader could
/// still commit them. They must get TIMEOUT: outcome unknown.
#[test]
fn regression_shutdown_reports_writes_in_the_log_as_outcome_unknown() {
    use d_engine::proto::v1::{ErrorCode, PutRequest, kv_client::KvClient};
    // Long election timeouts: the leader must not step down (check-quorum) before the
    // write reaches it.
    let mut cluster = Cluster::start_with(3, 3000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let leader = rt.block_on(async {
        let client = Client::connect(ClientConfig::new(cluster.addrs.clone())).unwrap();
        client.put("warm", "up").await.unwrap();
        let mut found = None;
        for (i, a) in cluster.addrs.iter().enumerate() {
            let s = client.admin().status_of(a).await.unwrap();
            if s.role == d_engine::proto::v1::Role::Leader as i32 {
                found = Some(i);
            }
        }
        found.expect("a leader")
    });
    // Without its followers the leader appends the write but cannot commit it.
    for i in 0..3 {
        if i != leader {
            cluster.stop(i);
        }
    }
    let addr = format!("http://{}", cluster.addrs[leader]);
    let reply = rt.block_on(async {
        let pending = tokio::spawn(async move {
            let mut kv = KvClient::connect(addr).await.unwrap();
            let req = PutRequest {
                key: "k".into(),
                value: "v".into(),
                ..Default::default()
            };
            kv.put(req).await.unwrap().into_inner()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Blocks this runtime briefly; the leader runs on its own thread.
        cluster.stop(leader);
        pending.await.unwrap()
    });
    let code = reply.error.map(|e| e.code).unwrap_or(ErrorCode::Ok as i32);
    assert_eq!(
        code,
        ErrorCode::Timeout as i32,
        "a write in the log must not be reported as not applied"
    );
}

/// The Batch RPC on a real cluster: each operation is answered on its own (a bad one
/// fails alone, the others apply), results come in request order, and a batch refused
/// as a whole changes nothing.
#[test]
fn batch_operations_are_answered_one_by_one_and_bad_batches_change_nothing() {
    use d_engine::proto::limits::MAX_BATCH_OPS;
    use d_engine::proto::v1::{
        BatchOp, BatchRequest, CompareAndSwapRequest, ErrorCode, GetRequest, PutRequest,
        batch_op::Op, batch_result::Result as R, compare_and_swap_request::Expected,
        kv_client::KvClient,
    };
    let cluster = Cluster::start(3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::connect(ClientConfig::new(cluster.addrs.clone())).unwrap();
        client.put("warm", "up").await.unwrap();
        // Find the leader by asking each node for its status.
        let mut leader = None;
        for a in &cluster.addrs {
            let s = client.admin().status_of(a).await.unwrap();
            if s.role == d_engine::proto::v1::Role::Leader as i32 {
                leader = Some(a.clone());
            }
        }
        let mut kv = KvClient::connect(format!("http://{}", leader.unwrap()))
            .await
            .unwrap();
        let put = |k: &str, v: &str| BatchOp {
            op: Some(Op::Put(PutRequest {
                header: None,
                key: k.to_string().into(),
                value: v.to_string().into(),
            })),
        };
        let ops = vec![
            put("b1", "one"),
            put("", "empty key"),
            put("b2", "two"),
            BatchOp {
                op: Some(Op::CompareAndSwap(CompareAndSwapRequest {
                    header: None,
                    key: "b1".into(),
                    expected: Some(Expected::ExpectAbsent(true)),
                    new_value: "never".into(),
                })),
            },
            BatchOp {
                op: Some(Op::Get(GetRequest {
                    header: None,
                    key: "warm".into(),
                    consistency: 0,
                })),
            },
        ];
        let resp = kv
            .batch(BatchRequest { ops })
            .await
            .unwrap()
            .into_inner();
        assert!(resp.error.is_none(), "{:?}", resp.error);
        let r: Vec<R> = resp.results.into_iter().map(|r| r.result.unwrap()).collect();
        assert_eq!(r.len(), 5);
        assert!(matches!(&r[0], R::Put(p) if p.error.is_none()), "{:?}", r[0]);
        assert!(
            matches!(&r[1], R::Put(p) if p.error.as_ref().unwrap().code == ErrorCode::InvalidArgument as i32),
            "{:?}",
            r[1]
        );
        assert!(matches!(&r[2], R::Put(p) if p.error.is_none()), "{:?}", r[2]);
        // The CAS ran independently of the put before it in the same batch: it either
        // saw "b1" absent (and swapped) or present; either way it has its own result.
        assert!(matches!(&r[3], R::CompareAndSwap(c) if c.error.is_none()), "{:?}", r[3]);
        assert!(
            matches!(&r[4], R::Get(g) if g.found && &g.value[..] == b"up"),
            "{:?}",
            r[4]
        );
        for (k, v) in [("b2", "two")] {
            let got = client.get(k, ReadConsistency::Linearizable).await.unwrap();
            assert_eq!(got.as_deref(), Some(v.as_bytes()));
        }

        // Refused whole: an operation without a kind, too many operations, or more
        // bytes than MAX_CLIENT_MESSAGE_BYTES though each value is under its bound.
        let big = "x".repeat(700 * 1024);
        let refused = [
            vec![put("c1", "x"), BatchOp { op: None }],
            (0..=MAX_BATCH_OPS).map(|i| put(&format!("c{i}"), "x")).collect(),
            vec![put("c0", &big), put("c1", &big)],
        ];
        for (ops, code) in refused.into_iter().zip([
            ErrorCode::InvalidArgument,
            ErrorCode::TooLarge,
            ErrorCode::TooLarge,
        ]) {
            let resp = kv
                .batch(BatchRequest { ops })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(resp.error.unwrap().code, code as i32);
            assert!(resp.results.is_empty());
        }
        for k in ["c1", "c0", "c1024"] {
            let got = client.get(k, ReadConsistency::Linearizable).await.unwrap();
            assert_eq!(got, None, "{k} was written by a refused batch");
        }
    });
}
