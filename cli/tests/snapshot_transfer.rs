//! Snapshot transfers with real `dengine serve` processes.
//!
//! Regression (issue 15): a snapshot was assembled whole in the receiver's memory and
//! a cut transfer started over from byte 0, for ever if it kept being cut. Now the
//! receiver stages chunks on disk and a resumed transfer goes on from its last
//! durable offset.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use d_engine::client::{Client, ClientConfig, ReadConsistency};
use support::{ProcCluster, Tmpfs, require_root, runtime};

const KEYS: usize = 400;
const VALUE_BYTES: usize = 100 * 1024;

fn client_of(endpoints: Vec<String>) -> Client {
    Client::connect(
        ClientConfig::new(endpoints)
            .cluster_id(7)
            .deadline(Duration::from_secs(20)),
    )
    .unwrap()
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("v{i}-").into_bytes();
    v.resize(VALUE_BYTES, b'a' + (i % 26) as u8);
    v
}

/// Bytes of the largest staged part file under `dir` (0 if none).
fn staged_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("snapshot-inbox"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .max()
        .unwrap_or(0)
}

/// The value of a Prometheus counter (summed over its series) at `addr`.
fn counter(addr: &str, name: &str) -> f64 {
    support::scrape(addr)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `bytes=` of the leader's last "sending snapshot" line.
fn image_bytes(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("sending snapshot"))
        .filter_map(|l| {
            l.split("bytes=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .next_back()
        .expect("the leader logged the snapshot it sends")
}

/// Three nodes holding about 40 MB of state, snapshotted past every write; returns the
/// cluster, a client and the leader's index.
async fn cluster_with_state(c: &ProcCluster) -> (Client, usize) {
    let client = client_of(c.endpoints());
    let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in (w..KEYS).step_by(8) {
                    client.put(format!("k{i:04}"), value(i)).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    client
        .admin()
        .snapshot_now()
        .await
        .expect("a snapshot past every write");
    (client, leader)
}

/// Configures node 4 (a learner, empty data dir; the log it needs is compacted away);
/// returns its index and address. `before_start` may prepare its data dir.
async fn join_learner(
    c: &mut ProcCluster,
    client: &Client,
    before_start: impl FnOnce(&Path),
) -> (usize, String) {
    let addr = format!("127.0.0.1:{}", support::free_ports(1)[0]);
    let mut members: Vec<(u64, String, bool)> = c
        .nodes
        .iter()
        .map(|n| (n.id, n.addr.clone(), false))
        .collect();
    members.push((4, addr.clone(), true));
    let n4 = c.add_node(4, addr.clone(), &members);
    before_start(c.data_dir(n4));
    c.spawn(n4);
    client
        .admin()
        .add_learners(&[(4, addr.clone())])
        .await
        .unwrap();
    (n4, addr)
}

/// Waits until `addr` serves every 37th key from its own state.
async fn wait_caught_up(addr: &str, within: Duration) {
    let local = client_of(vec![addr.to_string()]);
    let deadline = Instant::now() + within;
    for i in (0..KEYS).step_by(37) {
        loop {
            let got = local
                .get(format!("k{i:04}"), ReadConsistency::Serializable)
                .await;
            if matches!(&got, Ok(Some(v)) if v.as_ref() == value(i).as_slice()) {
                break;
            }
            assert!(Instant::now() < deadline, "{addr} never caught up: {got:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

const SNAPSHOT_OFTEN: &str = "[snapshot]\nentries_since_last = 100\ntrailing_entries = 10\n";

#[test]
fn a_transfer_cut_by_a_receiver_kill_resumes_where_its_staged_bytes_end() {
    let mut c = ProcCluster::start_with("snap-resume", 3, SNAPSHOT_OFTEN, true, false);
    runtime().block_on(async {
        let (client, leader) = cluster_with_state(&c).await;
        let (n4, addr) = join_learner(&mut c, &client, |_| {}).await;

        // Killed (SIGKILL) once about 40% of the image is staged.
        let data = c.data_dir(n4).to_path_buf();
        let image = 40 * 1024 * 1024u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while staged_bytes(&data) < image * 2 / 5 {
            assert!(Instant::now() < deadline, "the transfer never reached 40%");
            std::thread::sleep(Duration::from_millis(1));
        }
        c.kill(n4);
        let staged_at_kill = staged_bytes(&data);
        c.spawn(n4);
        wait_caught_up(&addr, Duration::from_secs(60)).await;

        let metrics = c.nodes[leader].metrics_addr.clone().expect("metrics on");
        let log = c.log_text(leader);
        let total = image_bytes(&log);
        let sent = counter(&metrics, "dengine_snapshot_bytes_sent_total") as u64;
        let resumes = counter(&metrics, "dengine_snapshot_resumes_total");
        let again = sent.saturating_sub(total);
        eprintln!(
            "image {total} B, staged at the kill {staged_at_kill} B, sent {sent} B in all: \
             {again} B sent again, {resumes} resumes"
        );
        assert!(
            resumes >= 1.0,
            "the transfer resumed instead of starting over"
        );
        assert!(log.contains("snapshot transfer resumes"));
        // At most the unsynced tail (one chunk, 1 MiB) plus what was in flight (a
        // window of 4 chunks, and the transport's buffers), never the whole image.
        assert!(
            again <= 8 << 20,
            "{again} bytes sent again of a {total}-byte image"
        );
    });
}

/// A follower whose disk cannot hold the image refuses it (old state kept, node
/// alive), and takes it once space is freed: the leader keeps offering it.
#[test]
fn a_receiver_with_a_full_disk_refuses_the_snapshot_stays_up_and_takes_it_later() {
    if !require_root("snapshot to a full disk") {
        return;
    }
    let mut c = ProcCluster::start_with("snap-full", 3, SNAPSHOT_OFTEN, false, false);
    let mut disk = None;
    runtime().block_on(async {
        let (client, _) = cluster_with_state(&c).await;
        // 24 MiB: room for the log's segments, not for a 40 MB image.
        let (n4, addr) =
            join_learner(&mut c, &client, |dir| disk = Some(Tmpfs::mount(dir, 24))).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let refused = |c: &ProcCluster| {
            (0..3).any(|i| {
                let log = c.log_text(i);
                log.contains("snapshot refused") && log.contains("disk full")
            })
        };
        while !refused(&c) {
            assert!(Instant::now() < deadline, "the full disk was never hit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            c.log_text(n4).contains("cannot stage"),
            "the receiver says why"
        );
        let status = client.admin().status_of(&addr).await;
        assert!(status.is_ok(), "the node is alive: {status:?}");
        disk.as_ref().unwrap().resize(256);
        wait_caught_up(&addr, Duration::from_secs(60)).await;
    });
    drop(c);
    drop(disk);
}
