//! End-to-end chaos runs against `dengine serve` processes on 127.0.0.1.
//!
//! They need a built `dengine` binary: `$DENGINE_BIN`, or `dengine` in the
//! target directory of this test (`cargo build --release -p dengine` first; the
//! workspace test run builds it). Without one they fail under CI (`CI` set) or
//! with `DENGINE_REQUIRE_ALL=1`; elsewhere they print a SKIP line and pass.

use std::path::PathBuf;
use std::time::Duration;

use d_engine_chaos::client::Consistency;
use d_engine_chaos::cluster::TargetKind;
use d_engine_chaos::nemesis::{Family, Fault, Partition, Schedule, Step, Timing};
use d_engine_chaos::run::{RunConfig, run};

mod support;
use support::binary;

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chaos-e2e-dengine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dengine_with_linearizable_reads_under_all_nemeses_and_leader_transfers_passes() {
    let Some(bin) = binary() else { return };
    let out = out_dir("linearizable");
    let families = Family::parse_list_with("all", true).unwrap();
    let duration = Duration::from_secs(12);
    // The first seed whose schedule has a leader transfer and three kinds of
    // fault, so every run of this test covers the same ground.
    let seed = (0..1000)
        .find(|&seed| {
            let s = Schedule::generate(
                seed,
                3,
                &families,
                duration,
                &Timing::for_duration(duration),
            );
            let kinds = s.counts();
            kinds.contains_key("membership") && kinds.len() >= 3
        })
        .expect("a seed with a leader transfer");
    let mut cfg = RunConfig::new(TargetKind::Dengine, 3, duration, seed, out.clone());
    cfg.binary = Some(bin);
    cfg.families = families;
    cfg.workload.keys = 3;
    let summary = run(&cfg).await.expect("run completes");
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    assert!(
        summary.faults.contains_key("membership"),
        "a leader transfer ran"
    );
    assert!(summary.faults_total >= 3, "faults were injected");
    assert!(summary.ops_total > 200, "the workload ran");
    // The workload's clients share Batch RPCs per node, as the Rust client does: the
    // verdict covers that path.
    let batching = summary.client_batching.expect("d-engine clients batch");
    assert!(
        batching.batches > 0 && batching.ops > batching.batches,
        "{batching:?}"
    );
    assert_eq!(summary.verdict, "linearizable");
    assert!(summary.recovered);
    assert_eq!(summary.exit_code, 0);
    let _ = std::fs::remove_dir_all(&out);
}

/// `--nemesis membership`: nodes are really added (fresh ids), promoted and
/// removed under load, and the history stays linearizable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dengine_membership_churn_replaces_nodes_and_stays_linearizable() {
    use d_engine_chaos::nemesis::MembershipOp;
    let Some(bin) = binary() else { return };
    let out = out_dir("membership");
    let families = Family::parse_list("membership").unwrap();
    let duration = Duration::from_secs(16);
    let timing = Timing::for_duration(duration);
    let replaces = |s: &Schedule| {
        s.steps
            .iter()
            .filter(|st| matches!(st.fault, Fault::Membership(MembershipOp::Replace { .. })))
            .count()
    };
    // The first seed with two replacements and a transfer.
    let seed = (0..1000)
        .find(|&seed| {
            let s = Schedule::generate(seed, 3, &families, duration, &timing);
            replaces(&s) >= 2 && s.steps.len() > replaces(&s)
        })
        .expect("a seed with two replacements");
    let planned = Schedule::generate(seed, 3, &families, duration, &timing);
    let mut cfg = RunConfig::new(TargetKind::Dengine, 3, duration, seed, out.clone());
    cfg.binary = Some(bin);
    cfg.families = families;
    cfg.workload.keys = 3;
    let summary = run(&cfg).await.expect("run completes");
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());

    // The same seed planned the same schedule.
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("schedule.json")).unwrap()).unwrap();
    assert_eq!(written, serde_json::to_value(&planned).unwrap());

    let log = std::fs::read_to_string(out.join("nemesis.jsonl")).unwrap();
    let details: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|e| e["detail"].as_str().map(str::to_owned))
        .collect();
    let count = |word: &str| details.iter().filter(|d| d.starts_with(word)).count();
    assert!(
        !details.iter().any(|d| d.starts_with("error")),
        "every change went through: {details:#?}"
    );
    assert_eq!(count("add-learner"), replaces(&planned), "{details:#?}");
    assert_eq!(count("promote"), replaces(&planned));
    assert_eq!(count("remove"), replaces(&planned));
    let new_ids = summary.final_node_ids.iter().filter(|&&id| id > 3).count();
    assert!(
        new_ids >= 1,
        "new nodes hold slots: {:?}",
        summary.final_node_ids
    );
    let mut ids = summary.final_node_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three distinct members");
    assert!(summary.ops_total > 200, "the workload ran");
    assert_eq!(summary.verdict, "linearizable");
    assert!(summary.recovered);
    assert_eq!(summary.exit_code, 0);
    let _ = std::fs::remove_dir_all(&out);
}

/// Serializable reads are served by any node from its own state, so a node
/// cut off from the majority answers stale values: the checker must say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dengine_with_serializable_reads_under_isolation_is_caught() {
    let Some(bin) = binary() else { return };
    let mut verdicts = Vec::new();
    for seed in [31u64, 32, 33] {
        let out = out_dir(&format!("serializable-{seed}"));
        let mut cfg = RunConfig::new(
            TargetKind::Dengine,
            3,
            Duration::from_secs(9),
            seed,
            out.clone(),
        );
        cfg.binary = Some(bin.clone());
        cfg.families = vec![Family::Partition];
        let steps = (0..3)
            .map(|i| Step {
                at_ms: 500 + i as u64 * 2800,
                duration_ms: 2300,
                fault: Fault::Partition(Partition::IsolateOne((i + seed as usize) % 3)),
            })
            .collect();
        cfg.schedule = Some(Schedule {
            seed,
            nodes: 3,
            steps,
        });
        cfg.workload.keys = 2;
        cfg.workload.clients_per_key = 6;
        cfg.workload.read_fraction = 0.8;
        cfg.workload.consistency = Consistency::Serializable;
        let summary = run(&cfg).await.expect("run completes");
        println!(
            "seed {seed}: verdict {}, exit {}",
            summary.verdict, summary.exit_code
        );
        verdicts.push(summary.verdict.clone());
        let _ = std::fs::remove_dir_all(&out);
        if summary.verdict == "not linearizable" {
            assert_eq!(summary.exit_code, 1);
            return;
        }
    }
    panic!(
        "no stale read detected in {} attempts: {verdicts:?}",
        verdicts.len()
    );
}

/// The set workload on d-engine (adds are puts, reads prefix scans), under
/// kills, pauses and partitions: no acknowledged element lost, none made up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dengine_set_under_kills_and_partitions_loses_nothing() {
    let Some(bin) = binary() else { return };
    let out = out_dir("set");
    let mut cfg = RunConfig::new(
        TargetKind::Dengine,
        3,
        Duration::from_secs(10),
        4,
        out.clone(),
    );
    cfg.binary = Some(bin);
    cfg.families = Family::parse_list("kill,pause,partition").unwrap();
    cfg.workload.kind = d_engine_chaos::workload::WorkloadKind::Set;
    cfg.workload.keys = 3;
    cfg.workload.clients_per_key = 4;
    let summary = run(&cfg).await.expect("run completes");
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    let adds = summary.ops["add"].get("ok").copied().unwrap_or(0);
    let reads = summary.ops["read"].get("ok").copied().unwrap_or(0);
    assert!(adds > 100 && reads > 100, "adds {adds}, reads {reads}");
    assert!(summary.faults_total >= 2, "faults were injected");
    assert_eq!(summary.verdict, "valid", "{:?}", summary.findings);
    assert!(summary.recovered);
    assert_eq!(summary.exit_code, 0);
    let _ = std::fs::remove_dir_all(&out);
}

/// Lease reads under pauses, kills and partitions (pauses are where a lease
/// goes wrong: a stopped leader must not believe in its lease when it
/// resumes): the history stays linearizable, with most reads served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dengine_lease_reads_under_pauses_kills_and_partitions_stay_linearizable() {
    let Some(bin) = binary() else { return };
    let out = out_dir("lease");
    let mut cfg = RunConfig::new(
        TargetKind::Dengine,
        3,
        Duration::from_secs(12),
        6,
        out.clone(),
    );
    cfg.binary = Some(bin);
    cfg.families = Family::parse_list("pause,kill,partition").unwrap();
    cfg.workload.keys = 3;
    cfg.workload.read_fraction = 0.7;
    cfg.workload.consistency = Consistency::Lease;
    let summary = run(&cfg).await.expect("run completes");
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
    assert_eq!(serde_json::to_value(summary.consistency).unwrap(), "lease");
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("read.lease_enabled=true")),
        "leases were turned on: {:?}",
        summary.notes
    );
    let reads = summary.ops["read"].get("ok").copied().unwrap_or(0);
    assert!(reads > 200, "lease reads served: {reads}");
    assert!(summary.faults_total >= 2, "faults were injected");
    assert_eq!(summary.verdict, "linearizable");
    assert!(summary.recovered);
    assert_eq!(summary.exit_code, 0);
    let _ = std::fs::remove_dir_all(&out);
}
