//! `bench compare`: one workload against several targets in one command. The measured
//! time is split into rounds and the targets take turns (A B, B A, A B, ...), so a
//! drift of the machine (another job, thermal throttling, page cache) hits all targets
//! alike. Each target gets its own subdirectory (`<out>/<target>/summary.json`, its
//! time series and hlog across all rounds); `<out>/compare.md` holds the table.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::run::{RunOptions, RunOutcome, TargetRun, TargetSpec, measure_floors};
use crate::runner::{Load, StopAt};
use crate::summary::Summary;
use crate::target::{DengineTarget, EtcdTarget, NoopTarget, TargetError};

/// What to compare.
#[derive(Clone)]
pub struct CompareSpec {
    pub targets: Vec<TargetSpec>,
    /// The run settings; the duration (or op count) is per target, split over rounds.
    pub options: RunOptions,
    pub rounds: u32,
}

/// A built target of any kind, kept across rounds.
enum Built {
    Noop(Arc<NoopTarget>),
    Etcd(Arc<EtcdTarget>),
    Dengine(Arc<DengineTarget>),
    Failed(TargetError),
}

fn build(spec: &TargetSpec, opts: &RunOptions) -> Built {
    match spec {
        TargetSpec::Noop => Built::Noop(Arc::new(NoopTarget)),
        TargetSpec::Etcd { endpoints } => {
            EtcdTarget::new(endpoints).map_or_else(Built::Failed, |t| Built::Etcd(Arc::new(t)))
        }
        TargetSpec::Dengine { endpoints } => {
            DengineTarget::new(endpoints, opts.dengine_batch_in_flight)
                .map_or_else(Built::Failed, |t| Built::Dengine(Arc::new(t)))
        }
    }
}

/// Runs the comparison into `out`; returns each target's outcome (in the order given)
/// and the comparison table (also written to `out/compare.md`).
pub async fn compare(spec: &CompareSpec, out: &Path) -> anyhow::Result<(Vec<RunOutcome>, String)> {
    anyhow::ensure!(!spec.targets.is_empty(), "no targets to compare");
    anyhow::ensure!(spec.rounds >= 1, "rounds must be at least 1");
    let mut names: Vec<&str> = spec.targets.iter().map(TargetSpec::name).collect();
    names.dedup();
    anyhow::ensure!(
        names.len() == spec.targets.len(),
        "a target is listed twice"
    );
    spec.options
        .spec
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid run settings: {e}"))?;
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let floors = measure_floors(&spec.options).await;
    let per_round = split(spec.options.spec.stop, spec.rounds);
    let built: Vec<Built> = spec
        .targets
        .iter()
        .map(|t| build(t, &spec.options))
        .collect();
    let mut runs = Vec::new();
    for (t, b) in spec.targets.iter().zip(&built) {
        let mut run =
            TargetRun::create(t, &out.join(t.name()), &spec.options.spec, floors.clone())?;
        if let Built::Failed(e) = b {
            run.failed = Some(format!("{}: {e}", t.name()));
        }
        runs.push(run);
    }
    for round in 0..spec.rounds {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let stop = per_round[round as usize];
            let r = &mut runs[i];
            // Failures are kept in the run and reported in its summary.
            let _ = match &built[i] {
                Built::Noop(t) => r.round(t, &spec.options, stop).await,
                Built::Etcd(t) => r.round(t, &spec.options, stop).await,
                Built::Dengine(t) => r.round(t, &spec.options, stop).await,
                Built::Failed(_) => Ok(()),
            };
        }
    }
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.finish(&spec.options)?);
    }
    let table = table(&outcomes, spec);
    std::fs::write(out.join("compare.md"), &table)
        .with_context(|| format!("write {}", out.join("compare.md").display()))?;
    Ok((outcomes, table))
}

/// The stop condition of each round: the total split as evenly as possible.
fn split(stop: StopAt, rounds: u32) -> Vec<StopAt> {
    let n = u64::from(rounds);
    match stop {
        StopAt::Duration(d) => (0..rounds).map(|_| StopAt::Duration(d / rounds)).collect(),
        StopAt::Ops(total) => (0..n)
            .map(|i| StopAt::Ops(total / n + u64::from(i < total % n)))
            .collect(),
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn peak_rss(s: &Summary) -> String {
    if s.nodes.is_empty() {
        return "-".into();
    }
    let v: Vec<String> = s.nodes.iter().map(|n| mib(n.peak_rss_kib)).collect();
    v.join(" / ")
}

/// `a / b` with about three significant digits; small ratios as `1/Nx`.
fn ratio(a: f64, b: f64) -> String {
    if !(a > 0.0 && b > 0.0) {
        return "-".into();
    }
    let r = a / b;
    match r {
        r if r >= 100.0 => format!("{r:.0}x"),
        r if r >= 10.0 => format!("{r:.1}x"),
        r if r >= 0.1 => format!("{r:.2}x"),
        r => format!("1/{:.0}x", 1.0 / r),
    }
}

/// The Markdown comparison table.
fn table(outcomes: &[RunOutcome], spec: &CompareSpec) -> String {
    let run = &spec.options.spec;
    let w = &run.workload;
    let load = match run.load {
        Load::Closed { clients } => format!("{clients} clients (closed loop)"),
        Load::Open {
            rate,
            max_in_flight,
        } => format!("{rate} ops/s (open loop, {max_in_flight} in flight max)"),
    };
    let length = match run.stop {
        StopAt::Duration(d) => format!("{:?} per target", d),
        StopAt::Ops(n) => format!("{n} ops per target"),
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# bench compare: {} workload\n\n{load}, {}-byte values, {} over {} keys, {length} in {} alternating rounds, warm-up {:?} per round.\n",
        w.kind.as_str(),
        w.value_size,
        w.distribution.name(),
        w.keys,
        spec.rounds,
        run.warmup
    );
    let _ = writeln!(
        s,
        "| target | status | ops/s | p50 us | p99 us | p999 us | max us | errors | peak RSS MiB per node |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---|");
    for o in outcomes {
        let m = &o.summary;
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            m.target,
            m.status,
            m.ops_per_sec,
            m.latency_us.p50,
            m.latency_us.p99,
            m.latency_us.p999,
            m.latency_us.max,
            m.errors.total,
            peak_rss(m)
        );
    }
    if let Some(first) = outcomes.first() {
        let a = &first.summary;
        for o in &outcomes[1..] {
            let b = &o.summary;
            let _ = writeln!(
                s,
                "\n{} / {}: ops/s {}, p50 {}, p99 {}",
                a.target,
                b.target,
                ratio(a.ops_per_sec, b.ops_per_sec),
                ratio(a.latency_us.p50 as f64, b.latency_us.p50 as f64),
                ratio(a.latency_us.p99 as f64, b.latency_us.p99 as f64),
            );
        }
        if let Some(noop) = outcomes.iter().find(|o| o.summary.target == "noop") {
            for o in outcomes.iter().filter(|o| o.summary.target != "noop") {
                let _ = writeln!(
                    s,
                    "\nGenerator headroom: the no-op target ran {} the ops/s of {} with the same settings (>= 10x: the generator is not the bottleneck).",
                    ratio(noop.summary.ops_per_sec, o.summary.ops_per_sec),
                    o.summary.target
                );
            }
        }
        if let Some(f) = &a.floors {
            let _ = writeln!(
                s,
                "\nFloors (same run): fdatasync p50 {} us / p99 {} us in {}; no-op gRPC ping p50 {} us / p99 {} us; single-client write floor p50 {} us, {} us with a follower round trip.",
                f.fdatasync_us.p50,
                f.fdatasync_us.p99,
                f.disk_dir,
                f.grpc_ping_us.p50,
                f.grpc_ping_us.p99,
                f.write_floor_p50_us,
                f.replicated_write_floor_p50_us
            );
            if a.clients == 1 && f.replicated_write_floor_p50_us > 0 {
                for o in outcomes.iter().filter(|o| o.summary.target != "noop") {
                    let _ = writeln!(
                        s,
                        "{} single-client p50 is {} the replicated write floor.",
                        o.summary.target,
                        ratio(
                            o.summary.latency_us.p50 as f64,
                            f.replicated_write_floor_p50_us as f64
                        )
                    );
                }
            }
        }
    }
    for o in outcomes {
        if let Some(e) = &o.summary.error {
            let _ = writeln!(s, "\n{}: {e}", o.summary.target);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ratios_read_well_at_any_scale() {
        assert_eq!(ratio(5.0, 1.0), "5.00x");
        assert_eq!(ratio(1500.0, 1.0), "1500x");
        assert_eq!(ratio(1.0, 1382.0), "1/1382x");
        assert_eq!(ratio(1.0, 0.0), "-");
    }

    #[test]
    fn splits_keep_the_total() {
        let ops: u64 = split(StopAt::Ops(10), 3)
            .iter()
            .map(|s| match s {
                StopAt::Ops(n) => *n,
                StopAt::Duration(_) => 0,
            })
            .sum();
        assert_eq!(ops, 10);
        assert_eq!(
            split(StopAt::Duration(Duration::from_secs(30)), 3)[2],
            StopAt::Duration(Duration::from_secs(10))
        );
    }
}
