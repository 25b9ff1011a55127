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
use support::{ProcCluster, runtime};

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

#[test]
fn a_transfer_cut_by_a_receiver_kill_resumes_where_its_staged_bytes_end() {
    let extra = "[snapshot]\nentries_since_last = 100\ntrailing_entries = 10\n";
    let mut c = ProcCluster::start_with("snap-resume", 3, extra, true, false);
    runtime().block_on(async {
        let client = client_of(c.endpoints());
        let leader = c.leader(Duration::from_secs(10)).await.expect("a leader");
        // About 40 MB of state, written by 8 writers at once.
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

        // Node 4 joins with an empty data dir: the log it needs is compacted away.
        let addr = format!("127.0.0.1:{}", support::free_ports(1)[0]);
        let mut members: Vec<(u64, String, bool)> = c
            .nodes
            .iter()
            .map(|n| (n.id, n.addr.clone(), false))
            .collect();
        members.push((4, addr.clone(), true));
        let n4 = c.add_node(4, addr.clone(), &members);
        c.spawn(n4);
        client
            .admin()
            .add_learners(&[(4, addr.clone())])
            .await
            .unwrap();

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

        // It finishes: node 4 serves every key from its own state.
        let local = client_of(vec![addr.clone()]);
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in (0..KEYS).step_by(37) {
            loop {
                let got = local
                    .get(format!("k{i:04}"), ReadConsistency::Serializable)
                    .await;
                if matches!(&got, Ok(Some(v)) if v.as_ref() == value(i).as_slice()) {
                    break;
                }
                assert!(Instant::now() < deadline, "node 4 never caught up: {got:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

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
