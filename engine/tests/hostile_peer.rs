//! A hostile peer against a real node: a single-voter node on 127.0.0.1 (memory
//! storage, real gRPC) whose cluster also lists a learner, node 2. This test plays
//! node 2 with the right cluster id and sends what no honest peer sends — a term of
//! u64::MAX, a same-term append to the leader, gapped entries, an index that would
//! overflow, forged snapshot headers — and checks that each one is refused: the node
//! stays up and leader, its term does not move, status answers, writes still commit,
//! and the refusals show in `dengine_peer_refused_total`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use d_engine::NodeBuilder;
use d_engine::client::{Client, ClientConfig, ReadConsistency};
use d_engine::config::{Config, MemberConfig, StorageBackend};
use d_engine_proto::v1 as pb;
use d_engine_proto::v1::raft_peer_client::RaftPeerClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

const CLUSTER: u64 = 7;
const FAKE: u64 = 2;

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The real node, on its own thread; stopped on drop.
struct Node {
    addr: String,
    metrics_addr: String,
    stop: Option<watch::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start() -> Node {
        let ports = free_ports(3);
        let addr = format!("127.0.0.1:{}", ports[0]);
        let metrics_addr = format!("127.0.0.1:{}", ports[2]);
        let mut c = Config::default();
        c.node.id = 1;
        c.node.cluster_id = CLUSTER;
        c.node.listen_addr = addr.clone();
        c.cluster.initial_members = vec![
            MemberConfig {
                id: 1,
                addr: addr.clone(),
                learner: false,
            },
            // Nothing listens there: the leader's own appends to it go nowhere.
            MemberConfig {
                id: FAKE,
                addr: format!("127.0.0.1:{}", ports[1]),
                learner: true,
            },
        ];
        c.storage.backend = StorageBackend::Memory;
        c.metrics.enabled = true;
        c.metrics.listen_addr = metrics_addr.clone();
        let (stop, rx) = watch::channel(());
        let thread = std::thread::spawn(move || {
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
        });
        Node {
            addr,
            metrics_addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The node's Prometheus counter `name{reason}` (0 if not exported yet).
    fn counter(&self, name: &str, reason: &str) -> u64 {
        let mut s = std::net::TcpStream::connect(&self.metrics_addr).expect("metrics port");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics_addr
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        let label = format!("reason=\"{reason}\"");
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            // A node that panicked is a failure, but not a reason to panic in drop.
            let _ = t.join();
        }
    }
}

fn header(term: u64) -> Option<pb::PeerHeader> {
    Some(pb::PeerHeader {
        cluster_id: CLUSTER,
        from: FAKE,
        term,
    })
}

fn noop(index: u64, term: u64) -> pb::Entry {
    pb::Entry {
        term,
        index,
        kind: pb::EntryKind::Noop as i32,
        ..Default::default()
    }
}

fn append(
    msg_id: u64,
    term: u64,
    prev_log_index: u64,
    entries: Vec<pb::Entry>,
) -> pb::ReplicateRequest {
    pb::ReplicateRequest {
        header: header(term),
        msg_id,
        body: Some(pb::replicate_request::Body::Append(pb::AppendEntries {
            prev_log_index,
            prev_log_term: 0,
            entries,
            leader_commit: 0,
        })),
    }
}

fn heartbeat(msg_id: u64, term: u64) -> pb::ReplicateRequest {
    pb::ReplicateRequest {
        header: header(term),
        msg_id,
        body: Some(pb::replicate_request::Body::Heartbeat(pb::Heartbeat {
            leader_commit: 0,
            read_ctx: msg_id,
        })),
    }
}

/// A one-chunk snapshot (empty image) with this meta.
fn snapshot(term: u64, last_index: u64, last_term: u64, voters: Vec<u64>) -> pb::SnapshotChunk {
    pb::SnapshotChunk {
        header: header(term),
        meta: Some(pb::SnapshotMeta {
            last_index,
            last_term,
            membership: Some(pb::Membership {
                voters,
                learners: vec![FAKE],
                ..Default::default()
            }),
        }),
        snapshot_id: 1,
        offset: 0,
        chunk_crc32c: 0,
        last: true,
        total_bytes: 0,
        total_crc32c: 0,
        data: Default::default(),
    }
}

/// (role, term, last index, snapshot index) as the node reports them.
async fn status(client: &Client, addr: &str) -> (i32, u64, u64, u64) {
    let s = client
        .admin()
        .status_of(addr)
        .await
        .expect("status answers");
    let term = s.header.as_ref().map_or(0, |h| h.term);
    (s.role, term, s.last_index, s.snapshot_index)
}

#[test]
fn hostile_peer_messages_are_refused_and_the_node_keeps_serving() {
    let node = Node::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::connect(
            ClientConfig::new(vec![node.addr.clone()])
                .cluster_id(CLUSTER)
                .deadline(Duration::from_secs(10)),
        )
        .unwrap();
        client
            .put("before", "1")
            .await
            .expect("the node elects itself and commits");
        let (role, term, _, snapshot_index) = status(&client, &node.addr).await;
        assert_eq!(role, pb::Role::Leader as i32);
        assert!(term >= 1);

        let mut peer = RaftPeerClient::connect(format!("http://{}", node.addr))
            .await
            .unwrap();

        // Votes and timeout-now with a term of u64::MAX: refused on the call.
        for pre_vote in [true, false] {
            let req = pb::VoteRequest {
                header: header(u64::MAX),
                last_log_index: 0,
                last_log_term: 0,
                pre_vote,
                leadership_transfer: false,
            };
            let call = if pre_vote {
                peer.pre_vote(req).await
            } else {
                peer.vote(req).await
            };
            let e = call.expect_err("a vote of term u64::MAX is refused");
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        }
        let e = peer
            .timeout_now(pb::TimeoutNowRequest {
                header: header(u64::MAX),
            })
            .await
            .expect_err("a timeout-now of term u64::MAX is refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");

        // The replication stream. Each hostile request but the same-term append is
        // answered REJECTED; the same-term append reaches Raft, which ignores it. The
        // stale heartbeat at the end (term 0) is answered by Raft itself, so once its
        // answer is in, every request before it has been through the event loop.
        let (tx, rx) = mpsc::channel(16);
        let requests = [
            heartbeat(1, u64::MAX),
            append(2, term, 0, vec![]),
            append(3, term + 1, 0, vec![noop(1, term + 1), noop(3, term + 1)]),
            append(4, term + 1, u64::MAX, vec![]),
            append(5, term + 1, u64::MAX - 1, vec![noop(u64::MAX, term + 1)]),
            append(6, term + 1, 0, vec![noop(1, term + 5)]),
            heartbeat(0, 0),
        ];
        for r in requests {
            tx.send(r).await.unwrap();
        }
        let mut replies = peer
            .replicate(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = tokio::time::timeout(left, replies.message())
                .await
                .expect("the stale heartbeat is answered")
                .unwrap()
                .expect("the stream stays open");
            let h = r.header.expect("a reply header");
            assert_eq!((h.cluster_id, h.from, h.term), (CLUSTER, 1, term));
            match r.body {
                Some(pb::replicate_response::Body::Rejected(why)) => {
                    assert_eq!(why, pb::PeerRejection::Malformed as i32);
                    got.push(r.msg_id);
                }
                Some(pb::replicate_response::Body::Heartbeat(_)) => break,
                other => panic!("unexpected reply {other:?}"),
            }
        }
        assert_eq!(
            got,
            vec![1, 3, 4, 5, 6],
            "every hostile request but #2 rejected"
        );

        // Forged snapshot headers: refused before the data is read.
        let forged = [
            (
                snapshot(term + 1, 100, term + 1, vec![]),
                "malformed_snapshot",
            ),
            (snapshot(term + 1, 100, u64::MAX, vec![1]), "absurd_term"),
            (snapshot(term + 1, u64::MAX, term, vec![1]), "absurd_index"),
            (snapshot(u64::MAX, 100, 1, vec![1]), "absurd_term"),
        ];
        for (chunk, reason) in forged {
            let r = peer
                .install_snapshot(tokio_stream::iter([chunk]))
                .await
                .expect("answered")
                .into_inner();
            assert_eq!(
                r.status,
                pb::install_snapshot_response::Status::Rejected as i32,
                "{reason}: {r:?}"
            );
            assert!(r.reason.contains(reason), "{reason}: {r:?}");
        }
        // A well-formed snapshot of our own term sent to the leader: Raft refuses it
        // (a term has one leader), so nothing is installed.
        peer.install_snapshot(tokio_stream::iter([snapshot(term, 100, term, vec![1])]))
            .await
            .expect("handed to Raft");

        // Still up, still leader, same term, nothing installed; writes commit.
        client.put("after", "2").await.expect("writes still commit");
        let v = client
            .get("after", ReadConsistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"2"[..]));
        let (role_now, term_now, last_now, snapshot_now) = status(&client, &node.addr).await;
        assert_eq!(role_now, pb::Role::Leader as i32);
        assert_eq!(term_now, term, "the term did not move");
        assert_eq!(snapshot_now, snapshot_index, "no forged snapshot installed");
        assert!(
            last_now < 100,
            "no forged entry in the log: last index {last_now}"
        );
    });
    let counted = |reason| node.counter("dengine_peer_refused_total", reason);
    // Votes ×2, timeout-now, heartbeat #1, append #6 (an entry of a later term than
    // its sender's), two forged snapshots.
    assert_eq!(counted("absurd_term"), 7);
    assert_eq!(counted("absurd_index"), 3, "appends #4 and #5, a snapshot");
    assert_eq!(counted("malformed_snapshot"), 1);
    assert_eq!(counted("malformed"), 1, "the gapped append #3");
    // The same-term append (#2) passes the stateless rules and reaches Raft, which
    // refuses it; the loop publishes the core's counts with its gauges (every 10 ticks).
    let deadline = Instant::now() + Duration::from_secs(5);
    while node.counter("dengine_raft_refused_total", "not_leader") < 1 {
        assert!(
            Instant::now() < deadline,
            "the core's refusal of the same-term append is not counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
