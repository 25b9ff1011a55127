//! The text log prefix of a node stays the same however often its role changes.
//!
//! Regression: the node span recorded term and role on every role change, and
//! tracing-subscriber's text formatter *appends* recorded fields to a span's prefix,
//! so after N changes every line began `node{id=1 term=0 role=Follower term=1
//! role=PreCandidate ...}` with N pairs. Three nodes in this process log through one
//! text subscriber writing into a buffer; leadership is moved around many times.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d_engine::NodeBuilder;
use d_engine::client::{Client, ClientConfig};
use d_engine::config::{Config, MemberConfig, StorageBackend};
use tokio::sync::watch;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `node{...}` span prefix of a log line, if it has one.
fn node_prefix(line: &str) -> Option<&str> {
    let start = line.find("node{")?;
    let end = start + line[start..].find('}')?;
    Some(&line[start..=end])
}

fn start_node(c: Config) -> (watch::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = watch::channel(());
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
    (tx, thread)
}

async fn leader_id(client: &Client, addrs: &[String]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for a in addrs {
            if let Ok(s) = client.admin().status_of(a).await
                && s.role == d_engine::proto::v1::Role::Leader as i32
            {
                return s.header.unwrap_or_default().node_id;
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_text_span_prefix_does_not_grow_with_role_changes() {
    let buf = Buffer::default();
    let writer = buf.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .init();

    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    drop(listeners);
    let members: Vec<MemberConfig> = (0..3)
        .map(|i| MemberConfig {
            id: i as u64 + 1,
            addr: addrs[i].clone(),
            learner: false,
        })
        .collect();
    let nodes: Vec<_> = (0..3)
        .map(|i| {
            let mut c = Config::default();
            c.node.id = i as u64 + 1;
            c.node.listen_addr = addrs[i].clone();
            c.cluster.initial_members = members.clone();
            c.storage.backend = StorageBackend::Memory;
            c.raft.election_timeout_ms_min = 150;
            c.raft.election_timeout_ms_max = 300;
            c.raft.heartbeat_interval_ms = 30;
            start_node(c)
        })
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client =
            Client::connect(ClientConfig::new(addrs.clone()).deadline(Duration::from_secs(10)))
                .unwrap();
        client.put("k", "v").await.unwrap();
        // Each transfer changes the role of two nodes (and the term of all three).
        for _ in 0..8 {
            let leader = leader_id(&client, &addrs).await;
            let target = leader % 3 + 1;
            client.admin().transfer_leader(target).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while leader_id(&client, &addrs).await != target {
                assert!(Instant::now() < deadline, "transfer to {target} not done");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    for (tx, thread) in nodes {
        let _ = tx.send(());
        thread.join().unwrap();
    }

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let changes = text.lines().filter(|l| l.contains("role changed")).count();
    assert!(changes >= 16, "only {changes} role changes logged:\n{text}");
    for line in text.lines() {
        if let Some(prefix) = node_prefix(line) {
            let id = prefix
                .strip_prefix("node{id=")
                .and_then(|rest| rest.strip_suffix('}'));
            assert!(
                id.is_some_and(|id| id.parse::<u64>().is_ok()),
                "the span prefix carries more than the node id: {line}"
            );
        }
        // Term and role are still in the log: on the events that change them.
        if line.contains("role changed") {
            assert!(line.contains("term=") && line.contains("role="), "{line}");
        }
    }
}
