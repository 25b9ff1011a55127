//! The launcher against real etcd processes on 127.0.0.1.

use std::time::Duration;

use d_engine_chaos::client::Consistency;
use d_engine_chaos::cluster::process::is_alive;
use d_engine_chaos::cluster::{ClusterSpec, LocalCluster, TargetKind};

fn tmpdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chaos-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cluster_starts_survives_faults_and_leaves_no_process() {
    let dir = tmpdir("launcher");
    let mut spec = ClusterSpec::new(TargetKind::Etcd, 3, dir.clone());
    spec.proxied = true;
    let mut cluster = LocalCluster::start(spec).await.expect("3-node etcd starts");
    let pids: Vec<u32> = (0..3).map(|i| cluster.pid(i).unwrap()).collect();
    assert!(pids.iter().all(|&p| is_alive(p)));
    assert_eq!(cluster.client_endpoints().len(), 3);
    assert_eq!(
        cluster
            .endpoint_by_id()
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let leader = cluster.leader().await.expect("a leader");

    // Kill the leader: the others elect a new one; restart it.
    cluster.kill(leader).await.unwrap();
    assert!(!is_alive(pids[leader]));
    let mut new_leader = None;
    for _ in 0..100 {
        new_leader = cluster.leader().await;
        if new_leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        new_leader.is_some_and(|l| l != leader),
        "no new leader after killing {leader}"
    );
    cluster.restart(leader).await.unwrap();
    let restarted = cluster.pid(leader).unwrap();

    // Pause and resume a node, gracefully restart another.
    let other = (leader + 1) % 3;
    cluster.pause(other).unwrap();
    cluster.resume(other).unwrap();
    cluster.graceful_restart(other).await.unwrap();
    let client = cluster.client(other).unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if client.put(b"k", b"v", Duration::from_secs(1)).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a write through the restarted node commits");
    let got = client
        .get(b"k", Consistency::Linearizable, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
    assert!(cluster.peak_rss_kib(0) > 1000, "etcd uses more than 1 MiB");
    assert!(dir.join("node1/node.log").exists());

    let mut all: Vec<u32> = (0..3).filter_map(|i| cluster.pid(i)).collect();
    all.extend(&pids);
    all.push(restarted);
    cluster.stop().await;
    for pid in all {
        assert!(!is_alive(pid), "pid {pid} survived stop()");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_cluster_kills_every_node() {
    let dir = tmpdir("drop");
    let cluster = LocalCluster::start(ClusterSpec::new(TargetKind::Etcd, 3, dir.clone()))
        .await
        .unwrap();
    let pids: Vec<u32> = (0..3).map(|i| cluster.pid(i).unwrap()).collect();
    drop(cluster);
    // SIGKILL is asynchronous; the reaper catches up within moments.
    for _ in 0..50 {
        if pids.iter().all(|&p| !is_alive(p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in pids {
        assert!(!is_alive(pid), "pid {pid} survived drop");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
