//! `--net netns`: nodes in their own network namespaces, faults by nftables.
//!
//! Root only, with `ip` (iproute2) and `nft` (nftables): otherwise each test
//! fails under CI (`CI` set) or with `DENGINE_REQUIRE_ALL=1`, and elsewhere says
//! why and passes. The end-to-end ones also need a built `dengine` (see
//! e2e_dengine.rs). Every address used here lives inside namespaces these
//! tests create (10.231.x.0/24), and every wait is bounded.

use std::process::Command;
use std::time::Duration;

use d_engine_chaos::cluster::netns::{self, Netns};
use d_engine_chaos::cluster::{ClusterSpec, LocalCluster, TargetKind};
use d_engine_chaos::nemesis::Family;
use d_engine_chaos::run::{NetBackend, RunConfig, run};

#[track_caller]
fn usable() -> bool {
    let found = netns::unavailable().map_or(Ok(()), Err);
    require("network namespaces (root, ip, nft)", found).is_some()
}

mod support;
use support::{binary, output_within, require, wait_within};

/// `ip ARGS`, which must succeed within 10 s.
#[track_caller]
fn ip(args: &[&str]) {
    let out = output_within(Command::new("ip").args(args), Duration::from_secs(10));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Can a TCP connection be opened from namespace `ns` to `addr` within 1 s?
fn connects(ns: &str, addr: &str) -> bool {
    let (host, port) = addr.split_once(':').unwrap();
    let script = format!("exec 3<>/dev/tcp/{host}/{port}");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "timeout", "1", "bash", "-c", &script]);
    output_within(&mut cmd, Duration::from_secs(10))
        .status
        .success()
}

fn leftovers(names: &[String]) -> Vec<String> {
    let now = netns::ours();
    names.iter().filter(|n| now.contains(n)).cloned().collect()
}

/// A namespace and a root link named after a harness pid that is gone are
/// removed by the sweep every new cluster runs first.
#[test]
fn the_sweep_removes_what_a_dead_harness_left() {
    if !usable() {
        return;
    }
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    wait_within(&mut child, Duration::from_secs(10), "true");
    let ns = format!("dch-{dead}-0-hub");
    let link = format!("dch{dead}x0");
    ip(&["netns", "add", &ns]);
    ip(&[
        "link", "add", &link, "type", "veth", "peer", "name", "host0", "netns", &ns,
    ]);
    assert_eq!(leftovers(&[ns.clone(), link.clone()]).len(), 2);
    // Another test starting a cluster at the same time sweeps too: whichever
    // sweep ran, both must be gone.
    let swept = netns::sweep();
    assert!(
        leftovers(&[ns, link]).is_empty(),
        "left after the sweep (this one removed {swept:?})"
    );
}

/// Isolating a node cuts its traffic both ways, 100 % loss cuts it too, and
/// the heal restores it; dropping the cluster leaves no namespace or link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_cut_traffic_and_heal_and_teardown_leaves_nothing() {
    if !usable() {
        return;
    }
    let Some(bin) = binary() else { return };
    let dir = std::env::temp_dir().join(format!("chaos-netns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut spec = ClusterSpec::new(TargetKind::Dengine, 3, dir.clone());
    spec.netns = true;
    spec.binary = Some(bin);
    let mut cluster = LocalCluster::start(spec)
        .await
        .expect("3 nodes in namespaces");
    let ns: &Netns = cluster.netns().expect("netns backend");
    let names = ns.names();
    let host = ns.host_addr().to_string();
    let spaces: Vec<String> = (0..3).map(|i| ns.ns_name(cluster.node_id(i))).collect();
    let eps = cluster.client_endpoints();
    for ep in &eps {
        assert!(ep.starts_with("10.231.") && ep.ends_with(":7000"), "{ep}");
    }
    assert!(host.starts_with("10.231.") && host.ends_with(".254"));
    assert!(names.iter().all(|n| n.starts_with("dch")), "{names:?}");
    assert!(connects(&spaces[0], &eps[1]) && connects(&spaces[1], &eps[0]));

    // Isolate slot 0.
    cluster
        .update_links(|a, b, l| l.blocked = a == 0 || b == 0)
        .unwrap();
    let rules = cluster.netns().unwrap().list_rules(1).unwrap();
    assert!(rules.contains("drop"), "{rules}");
    assert!(!connects(&spaces[0], &eps[1]), "0 -> 1 is cut");
    assert!(!connects(&spaces[1], &eps[0]), "1 -> 0 is cut");
    assert!(connects(&spaces[1], &eps[2]), "1 -> 2 still works");
    // The majority still commits.
    let client = cluster.client(1).unwrap();
    let mut committed = false;
    for _ in 0..50 {
        if client.put(b"k", b"v", Duration::from_secs(1)).await.is_ok() {
            committed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(committed, "the majority commits while node 1 is isolated");

    // Probabilistic drop: nft takes the rule; at 100 % nothing gets through.
    cluster
        .update_links(|_, _, l| *l = Default::default())
        .unwrap();
    cluster
        .update_links(|a, b, l| {
            if a == 2 && b == 1 {
                l.loss = 0.5;
            }
        })
        .unwrap();
    let rules = cluster
        .netns()
        .unwrap()
        .list_rules(cluster.node_id(2))
        .unwrap();
    assert!(rules.contains("numgen random mod 100 < 50"), "{rules}");
    cluster
        .update_links(|a, b, l| {
            if a == 2 && b == 1 {
                l.loss = 1.0;
            }
        })
        .unwrap();
    assert!(!connects(&spaces[2], &eps[1]), "2 -> 1 drops everything");
    assert!(connects(&spaces[2], &eps[0]), "2 -> 0 is clear");

    // Heal.
    cluster.heal().await.unwrap();
    assert!(connects(&spaces[0], &eps[1]) && connects(&spaces[2], &eps[1]));
    let rules = cluster.netns().unwrap().list_rules(1).unwrap();
    assert!(!rules.contains("drop"), "{rules}");

    cluster.stop().await;
    drop(cluster);
    assert_eq!(
        leftovers(&names),
        Vec::<String>::new(),
        "teardown removes everything"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A short chaos run on the netns backend, with membership churn (each new
/// node gets a fresh namespace): linearizable, recovered, delay left out with
/// a note, and nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netns_chaos_run_is_linearizable_and_cleans_up() {
    if !usable() {
        return;
    }
    let Some(bin) = binary() else { return };
    let out = std::env::temp_dir().join(format!("chaos-netns-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let before = netns::ours();
    let mut cfg = RunConfig::new(
        TargetKind::Dengine,
        3,
        Duration::from_secs(14),
        7,
        out.clone(),
    );
    cfg.binary = Some(bin);
    cfg.net = NetBackend::Netns;
    cfg.families = Family::parse_list_with("all", true).unwrap();
    cfg.workload.keys = 3;
    let summary = run(&cfg).await.expect("run completes");
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    assert!(!summary.nemesis.contains(&Family::Delay));
    assert!(
        summary.notes.iter().any(|n| n.contains("delay")),
        "{:?}",
        summary.notes
    );
    assert!(summary.faults_total >= 2, "faults were injected");
    assert!(summary.ops_total > 100, "the workload ran");
    assert_eq!(summary.verdict, "linearizable");
    assert!(summary.recovered);
    assert_eq!(summary.exit_code, 0);
    let mine = format!("dch-{}-", std::process::id());
    let left: Vec<String> = netns::ours()
        .into_iter()
        .filter(|n| {
            !before.contains(n)
                && (n.starts_with(&mine) || n.starts_with(&format!("dch{}x", std::process::id())))
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&out);
}
