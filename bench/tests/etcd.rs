//! Against a real etcd (`$ETCD_BIN`, or `etcd` on the PATH: Debian's etcd-server 3.4,
//! which ci/install-deps.sh installs): a short write run, a compare with the no-op
//! target, then a run during which etcd is killed — it must end with a clear error and
//! a partial result, without hanging. Without an etcd binary the tests fail under CI
//! (`CI` set) or with `DENGINE_REQUIRE_ALL=1`, and print a SKIP line elsewhere.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use d_engine_bench::progress::ProgressMode;
use d_engine_bench::summary::Summary;
use d_engine_bench::{
    CompareSpec, Load, RunOptions, RunSpec, StopAt, Target, TargetSpec, compare, run_to_dir,
};

mod support;
use support::etcd_binary;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One etcd process, killed when dropped.
struct Etcd {
    child: Child,
    endpoint: String,
}

impl Etcd {
    fn start(bin: &Path, dir: &Path) -> Etcd {
        let (client, peer) = (free_port(), free_port());
        let c = format!("http://127.0.0.1:{client}");
        let p = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
        let child = Command::new(bin)
            .args(["--name", "n1", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", &format!("n1={p}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        Etcd {
            child,
            endpoint: format!("127.0.0.1:{client}"),
        }
    }

    async fn wait_ready(&self) {
        let t = d_engine_bench::EtcdTarget::new(std::slice::from_ref(&self.endpoint)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = tokio::time::timeout(Duration::from_secs(1), t.probe()).await;
            if matches!(ok, Ok(Ok(()))) {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not start: {ok:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn opts(clients: usize, stop: StopAt) -> RunOptions {
    let mut o = RunOptions::new(RunSpec {
        load: Load::Closed { clients },
        stop,
        warmup: Duration::from_millis(300),
        op_timeout: Duration::from_secs(1),
        abort_after: Duration::from_secs(2),
        ..RunSpec::default()
    });
    o.progress = ProgressMode::Quiet;
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_smoke_compare_and_a_cluster_that_dies_mid_run() {
    let Some(bin) = etcd_binary() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut etcd = Etcd::start(&bin, tmp.path());
    etcd.wait_ready().await;
    let target = TargetSpec::Etcd {
        endpoints: vec![etcd.endpoint.clone()],
    };

    // 2 s of writes (a generous op deadline: a busy CI machine must not turn a slow
    // fsync into an error here).
    let dir = tmp.path().join("smoke");
    let mut o = opts(8, StopAt::Duration(Duration::from_secs(2)));
    o.spec.op_timeout = Duration::from_secs(5);
    let outcome = run_to_dir(&target, &o, &dir).await.unwrap();
    let s = &outcome.summary;
    assert_eq!(outcome.error(), None, "{s:?}");
    assert!(s.ops > 0 && s.ops_per_sec > 0.0);
    assert_eq!(s.errors.total, 0, "{:?}", s.error_samples);
    assert!(s.latency_us.p50 > 0);
    let rss = s.nodes[0]
        .peak_rss_kib
        .expect("etcd's peak RSS is read from /proc");
    assert!(rss > 1024, "etcd peak RSS {rss} KiB");

    // Compare with the no-op target in alternating rounds.
    let out = tmp.path().join("compare");
    let mut options = opts(8, StopAt::Duration(Duration::from_secs(1)));
    options.spec.op_timeout = Duration::from_secs(5);
    options.spec.abort_after = Duration::from_secs(10);
    let spec = CompareSpec {
        targets: vec![target.clone(), TargetSpec::Noop],
        options,
        rounds: 2,
    };
    let (outcomes, table) = compare(&spec, &out).await.unwrap();
    assert!(outcomes.iter().all(|o| o.error().is_none()), "{table}");
    assert!(outcomes.iter().all(|o| o.summary.rounds == 2));
    assert!(
        table.contains("| etcd | ok |") && table.contains("etcd / noop"),
        "{table}"
    );
    for t in ["etcd", "noop"] {
        let text = std::fs::read_to_string(out.join(t).join("summary.json")).unwrap();
        let s: Summary = serde_json::from_str(&text).unwrap();
        assert!(s.ops > 0, "{t}");
    }
    assert!(out.join("compare.md").is_file());

    // Kill etcd 1.5 s into a 30 s run: the run must end soon after, with an error
    // naming the cause and the ops done before the kill.
    let dir = tmp.path().join("killed");
    let o = opts(8, StopAt::Duration(Duration::from_secs(30)));
    let started = Instant::now();
    let run = tokio::spawn({
        let target = target.clone();
        let dir = dir.clone();
        async move { run_to_dir(&target, &o, &dir).await }
    });
    tokio::time::sleep(Duration::from_millis(1800)).await;
    etcd.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the run must not hang after the cluster died")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let err = outcome.error().expect("a dead cluster is an error");
    assert!(err.contains("no operation succeeded"), "{err}");
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let s: Summary = serde_json::from_str(&text).unwrap();
    assert_eq!(s.status, "error");
    assert!(s.ops > 0, "the ops before the kill are kept");
    assert!(s.errors.total > 0);
    let csv = std::fs::read_to_string(dir.join("timeseries.csv")).unwrap();
    assert!(csv.lines().count() >= 2, "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_is_started_measured_and_stopped() {
    if etcd_binary().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let clusters = d_engine_bench::local::LocalClusters::default();
    let target = clusters.start("etcd", 1, tmp.path(), &[]).await.unwrap();
    let endpoint = target.endpoints()[0].clone();
    let mut o = opts(4, StopAt::Duration(Duration::from_secs(1)));
    o.spec.op_timeout = Duration::from_secs(5);
    o.memory = Some(clusters.memory());
    let outcome = run_to_dir(&target, &o, &tmp.path().join("run"))
        .await
        .unwrap();
    assert_eq!(outcome.error(), None);
    let nodes = &outcome.summary.nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].endpoint, endpoint);
    assert!(nodes[0].peak_rss_kib.unwrap_or(0) > 1024, "{nodes:?}");
    clusters.stop().await;
    // Stopped: the endpoint no longer answers.
    let t = d_engine_bench::EtcdTarget::new(&[endpoint]).unwrap();
    let probe = tokio::time::timeout(Duration::from_secs(3), t.probe()).await;
    assert!(
        !matches!(probe, Ok(Ok(()))),
        "the cluster still answers after stop"
    );
}
