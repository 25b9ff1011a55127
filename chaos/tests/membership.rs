//! Membership churn on real `dengine serve` processes: a node replaced by one
//! with a fresh id is a full member of its slot, faults included.
//!
//! Needs a built `dengine` (see e2e_dengine.rs): without one it fails under CI
//! or with `DENGINE_REQUIRE_ALL=1`, and is skipped elsewhere.

use std::time::{Duration, Instant};

use d_engine_chaos::client::Consistency;
use d_engine_chaos::cluster::process::is_alive;
use d_engine_chaos::cluster::{ClusterSpec, LocalCluster, TargetKind};
use d_engine_chaos::nemesis::{MembershipOp, membership};

mod support;
use support::binary;

/// Polls `f` every 100 ms until it holds or `bound` passes.
async fn eventually<F: AsyncFnMut() -> bool>(bound: Duration, mut f: F) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Replace the node in slot 0 (id 1) with id 4, then isolate slot 0: the new
/// node must be cut off in both directions (it no longer sees commits of the
/// majority), although the others dial it through one shared inbound proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_node_takes_its_slot_and_its_slot_faults() {
    let Some(bin) = binary() else { return };
    let dir = std::env::temp_dir().join(format!("chaos-membership-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut spec = ClusterSpec::new(TargetKind::Dengine, 3, dir.clone());
    spec.proxied = true;
    spec.binary = Some(bin);
    let mut cluster = LocalCluster::start(spec).await.expect("3 nodes start");
    let old_pid = cluster.pid(0).unwrap();
    let mut driver = membership::driver_for(TargetKind::Dengine).unwrap();
    let mut phases = Vec::new();
    driver
        .apply(
            &mut cluster,
            &MembershipOp::Replace { slot: 0 },
            &mut phases,
        )
        .await
        .expect("replace slot 0");
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p.detail.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["add-learner", "promote", "remove"]);
    assert_eq!(cluster.node_id(0), 4, "a fresh id, never 1 again");
    assert!(!is_alive(old_pid), "the removed node is stopped");
    assert!(cluster.extra_ids().is_empty(), "{:?}", cluster.extra_ids());
    let ids: Vec<u64> = cluster.endpoint_by_id().iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [4, 2, 3]);

    // The new node serves reads of what the cluster commits.
    let majority = cluster.client(1).unwrap();
    let slot0 = cluster.client(0).unwrap();
    let t = Duration::from_secs(2);
    majority.put(b"m", b"before", t).await.expect("write");
    assert!(
        eventually(Duration::from_secs(10), async || {
            slot0
                .get(b"m", Consistency::Serializable, t)
                .await
                .ok()
                .flatten()
                == Some(b"before".to_vec())
        })
        .await,
        "the new node applies the cluster's writes"
    );

    // Isolate slot 0: it must not see a write the majority commits.
    cluster
        .update_links(|a, b, l| l.blocked = a == 0 || b == 0)
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || {
            majority.put(b"m", b"during", t).await.is_ok()
        })
        .await,
        "the majority commits without slot 0"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = slot0
        .get(b"m", Consistency::Serializable, t)
        .await
        .ok()
        .flatten();
    assert_ne!(
        seen.as_deref(),
        Some(&b"during"[..]),
        "an isolated node received the write: inbound links were not cut"
    );
    let dropped = cluster
        .net()
        .unwrap()
        .stats
        .bytes_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped > 0, "the proxies dropped bytes");

    // Heal: it catches up.
    cluster
        .update_links(|_, _, l| *l = Default::default())
        .unwrap();
    assert!(
        eventually(Duration::from_secs(15), async || {
            slot0
                .get(b"m", Consistency::Serializable, t)
                .await
                .ok()
                .flatten()
                == Some(b"during".to_vec())
        })
        .await,
        "the new node catches up after the heal"
    );
    cluster.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
