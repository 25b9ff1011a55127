//! A full disk, with real `dengine serve` processes and a real file system: a node's
//! data directory is a small tmpfs (root only; CI runs as root) that a filler file
//! fills up under load.
//!
//! Regression (issue 14): a node whose disk filled exited (`disk full while zeroing
//! … .spare.tmp`) and could not restart until space was freed. Now the log writer
//! holds writes back and retries until space is freed: the node answers writes with
//! NO_SPACE, the others keep committing, and it catches up by itself afterwards.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use d_engine::client::{Client, ClientConfig, ReadConsistency};
use d_engine::proto::v1::{ErrorCode, PutRequest, RequestHeader, kv_client::KvClient};
use support::{ProcCluster, Tmpfs, require_root, runtime};

/// Values of 64 KiB: the 4 MiB segments of the test cluster fill in about 64 writes.
const VALUE_BYTES: usize = 64 * 1024;

fn client_of(endpoints: Vec<String>, deadline: Duration) -> Client {
    Client::connect(
        ClientConfig::new(endpoints)
            .cluster_id(7)
            .deadline(deadline),
    )
    .unwrap()
}

fn value(i: usize) -> String {
    let head = format!("v{i}-");
    head.clone() + &"x".repeat(VALUE_BYTES - head.len())
}

/// Puts `count` keys from `from` on; returns the acknowledged ones.
async fn put_range(client: &Client, from: usize, count: usize) -> BTreeMap<String, String> {
    let mut acked = BTreeMap::new();
    for i in from..from + count {
        let (k, v) = (format!("k{i:05}"), value(i));
        client
            .put(k.clone(), v.clone())
            .await
            .unwrap_or_else(|e| panic!("put {k} (the cluster must keep committing): {e}"));
        acked.insert(k, v);
    }
    acked
}

async fn no_space(client: &Client, addr: &str) -> Option<bool> {
    client
        .admin()
        .status_of(addr)
        .await
        .ok()
        .map(|s| s.no_space)
}

/// A put sent to `addr` itself (no redirection): its error code.
async fn raw_put_code(addr: &str) -> i32 {
    let mut kv = KvClient::connect(format!("http://{addr}")).await.unwrap();
    let reply = kv
        .put(PutRequest {
            header: Some(RequestHeader {
                cluster_id: 7,
                ..Default::default()
            }),
            key: b"refused".to_vec().into(),
            value: b"x".to_vec().into(),
        })
        .await
        .unwrap()
        .into_inner();
    reply.error.map_or(ErrorCode::Ok as i32, |e| e.code)
}

/// Waits until `endpoint` serves every acknowledged write from its own state machine.
async fn wait_caught_up(endpoint: &str, acked: &BTreeMap<String, String>, within: Duration) {
    let local = client_of(vec![endpoint.to_string()], Duration::from_secs(5));
    let deadline = Instant::now() + within;
    for (k, v) in acked {
        loop {
            let got = local.get(k.clone(), ReadConsistency::Serializable).await;
            match got {
                Ok(Some(g)) if g.as_ref() == v.as_bytes() => break,
                other if Instant::now() >= deadline => panic!(
                    "{endpoint} never served acknowledged key {k} ({} bytes expected): {:?}",
                    v.len(),
                    other.map(|o| o.map(|b| b.len()))
                ),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// The data dir of the node at `i` on a 24 MiB tmpfs, filled up after start.
fn cluster_with_small_disk(name: &str, i: usize) -> (ProcCluster, Tmpfs) {
    let mut c = ProcCluster::configure(
        name,
        3,
        "[snapshot]\nentries_since_last = 0\n",
        false,
        false,
    );
    let disk = Tmpfs::mount(&c.nodes[i].data.clone(), 24);
    for n in 0..3 {
        c.spawn(n);
    }
    (c, disk)
}

/// Writes until the node at `addr` reports no space (its log segments full, no room
/// for the next one), at most 1,000 writes; returns the acknowledged ones.
async fn write_until_full(client: &Client, addr: &str) -> BTreeMap<String, String> {
    let mut acked = BTreeMap::new();
    for round in 0..50 {
        acked.extend(put_range(client, round * 20, 20).await);
        if no_space(client, addr).await == Some(true) {
            return acked;
        }
    }
    panic!(
        "{addr} never reported a full disk after {} writes",
        acked.len()
    );
}

#[test]
fn follower_with_a_full_disk_answers_no_space_and_catches_up_once_space_is_freed() {
    if !require_root("disk_full follower") {
        return;
    }
    let (mut c, disk) = cluster_with_small_disk("disk-full-follower", 2);
    runtime().block_on(async {
        let client = client_of(c.endpoints(), Duration::from_secs(20));
        let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
        if leader == 2 {
            client
                .admin()
                .transfer_leader(1)
                .await
                .expect("move the leader off node 3");
        }
        let full = c.nodes[2].addr.clone();
        let filler = disk.fill();

        let mut acked = write_until_full(&client, &full).await;
        assert_eq!(
            raw_put_code(&full).await,
            ErrorCode::NoSpace as i32,
            "a write sent to the node with a full disk is answered NO_SPACE"
        );
        // The others keep committing while node 3 cannot write.
        acked.extend(put_range(&client, 10_000, 40).await);
        assert_eq!(no_space(&client, &full).await, Some(true));
        assert!(
            c.log_text(2).contains("disk full while"),
            "the node says why it waits"
        );

        std::fs::remove_file(&filler).unwrap();
        wait_caught_up(&full, &acked, Duration::from_secs(30)).await;
        assert_eq!(no_space(&client, &full).await, Some(false));
        assert!(c.log_text(2).contains("space available again"));

        // What it wrote while catching up is durable: a kill -9 and restart lose nothing.
        c.kill(2);
        c.spawn(2);
        wait_caught_up(&full, &acked, Duration::from_secs(30)).await;
        support::assert_all_present(&client, &acked).await;
    });
    drop(disk);
}

#[test]
fn leader_with_a_full_disk_hands_leadership_over_and_the_cluster_keeps_committing() {
    if !require_root("disk_full leader") {
        return;
    }
    let (c, disk) = cluster_with_small_disk("disk-full-leader", 0);
    runtime().block_on(async {
        let client = client_of(c.endpoints(), Duration::from_secs(20));
        c.leader(Duration::from_secs(10)).await.expect("a leader");
        client
            .admin()
            .transfer_leader(1)
            .await
            .expect("make node 1 the leader");
        let full = c.nodes[0].addr.clone();
        let filler = disk.fill();

        // Node 1 stops being able to write while it leads: it hands leadership over
        // and the writes of this loop keep being acknowledged by the new leader.
        let mut acked = write_until_full(&client, &full).await;
        acked.extend(put_range(&client, 10_000, 40).await);
        let now = c.leader(Duration::from_secs(10)).await.expect("a leader");
        assert_ne!(now, 0, "the node with a full disk no longer leads");
        assert!(c.log_text(0).contains("handing leadership over"));

        std::fs::remove_file(&filler).unwrap();
        wait_caught_up(&full, &acked, Duration::from_secs(30)).await;
        support::assert_all_present(&client, &acked).await;
    });
    drop(disk);
}
