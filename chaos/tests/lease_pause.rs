//! A paused leader serves no stale lease read.
//!
//! Regression (issue 14): the lease was measured in ticks of a timer that skips missed
//! ticks and is served last, so a leader stopped (SIGSTOP) for longer than the
//! election timeout saw about one tick pass when it resumed, still believed in its
//! lease, and could answer a lease read with a value the new leader had overwritten.
//! The event loop now steps the core by the monotonic clock before handling anything.
//!
//! The old leader is cut off by the proxies while it is stopped, so after SIGCONT no
//! message of the new leader can reach it first and depose it: only its own sense of
//! time stands between the read and a stale answer.

mod support;

use std::time::Duration;

use d_engine::client::{Client, ClientConfig, ReadConsistency};
use d_engine_chaos::cluster::{ClusterSpec, LocalCluster, TargetKind};

fn client(endpoints: Vec<String>, deadline: Duration) -> Client {
    Client::connect(
        ClientConfig::new(endpoints)
            .cluster_id(1)
            .deadline(deadline)
            .attempt_timeout(Duration::from_millis(500)),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_the_election_timeout_serves_no_stale_lease_read() {
    let Some(binary) = support::binary() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("chaos-lease-pause-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut spec = ClusterSpec::new(TargetKind::Dengine, 3, dir.clone());
    spec.proxied = true;
    spec.binary = Some(binary);
    for (k, v) in [
        ("read.lease_enabled", "true"),
        ("read.clock_drift_margin_ms", "100"),
        ("raft.election_timeout_ms_min", "300"),
        ("raft.election_timeout_ms_max", "600"),
        ("raft.heartbeat_interval_ms", "50"),
    ] {
        spec.extra.push((k.into(), v.into()));
    }
    let mut cluster = LocalCluster::start(spec).await.expect("3 nodes start");
    let endpoints = cluster.client_endpoints();
    let old = cluster.leader().await.expect("a leader");
    let at_old = client(vec![endpoints[old].clone()], Duration::from_secs(5));
    at_old.put("k", "old").await.expect("put old");
    let got = at_old
        .get("k", ReadConsistency::Lease)
        .await
        .expect("lease read");
    assert_eq!(
        got.as_deref(),
        Some(&b"old"[..]),
        "the lease serves before the pause"
    );

    // Stop the leader first (it keeps its lease frozen), then cut it off.
    cluster.pause(old).unwrap();
    let groups: Vec<usize> = (0..3).map(|i| usize::from(i == old)).collect();
    cluster.net().expect("proxied").partition(&groups);
    let others: Vec<String> = (0..3)
        .filter(|&i| i != old)
        .map(|i| endpoints[i].clone())
        .collect();
    client(others, Duration::from_secs(15))
        .put("k", "new")
        .await
        .expect("the other two elect a leader and take the write");
    // Well past the election timeout and the lease.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    cluster.resume(old).unwrap();
    let answer = client(vec![endpoints[old].clone()], Duration::from_secs(2))
        .get("k", ReadConsistency::Lease)
        .await;
    eprintln!("lease read at the resumed old leader: {answer:?}");
    assert!(
        !matches!(&answer, Ok(Some(v)) if v.as_ref() == b"old"),
        "the resumed leader served a stale lease read"
    );

    cluster.net().unwrap().heal();
    let after = client(endpoints, Duration::from_secs(15))
        .get("k", ReadConsistency::Linearizable)
        .await
        .expect("read after healing");
    assert_eq!(after.as_deref(), Some(&b"new"[..]));
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
