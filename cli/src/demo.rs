//! `dengine demo`: the whole product end to end. A local 3-node d-engine
//! cluster (file storage) under a mixed linearizable workload, with the
//! leader killed, a partition, a pause and the final heal; the history is
//! checked for linearizability and a report is rendered.
//!
//! Exit code: 0 when linearizable and recovered, 1 when not, 2 when the
//! checker could not decide (or on a setup error), 130 when interrupted.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use d_engine_chaos::client::Consistency;
use d_engine_chaos::cluster::TargetKind;
use d_engine_chaos::nemesis::{Family, Fault, Partition, Schedule, Targets, Timing};
use d_engine_chaos::prng::Rng;
use d_engine_chaos::run::{RunConfig, parse_duration, run_interruptible};

/// Run the whole product end to end: local cluster, load, faults, check, report.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Run directory (default: a new directory under the system temp dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How long the workload and the faults run (e.g. 60s, 2m).
    #[arg(long, default_value = "60s")]
    pub duration: String,
    /// Seed of the fault schedule and the workload (random if absent; printed).
    #[arg(long)]
    pub seed: Option<u64>,
}

const FAMILIES: [Family; 3] = [Family::Kill, Family::Partition, Family::Pause];

/// The generated schedule, with the first fault a leader kill and at least
/// one partition and one pause when there is room for them.
fn schedule(seed: u64, duration: std::time::Duration) -> (Schedule, Timing) {
    let timing = Timing::for_duration(duration);
    let mut s = Schedule::generate(seed, 3, &FAMILIES, duration, &timing);
    if let Some(first) = s.steps.first_mut() {
        first.fault = Fault::Kill(Targets::Leader);
    }
    for (family, fault) in [
        (
            Family::Partition,
            Fault::Partition(Partition::IsolateLeader),
        ),
        (Family::Pause, Fault::Pause(Targets::Leader)),
    ] {
        let count = |s: &Schedule, f: Family| {
            s.steps
                .iter()
                .skip(1)
                .filter(|st| st.fault.family() == f)
                .count()
        };
        if count(&s, family) > 0 {
            continue;
        }
        // Replace a step whose family is covered elsewhere.
        let spare = (1..s.steps.len()).find(|&i| {
            let f = s.steps[i].fault.family();
            f == Family::Kill || count(&s, f) > 1
        });
        if let Some(i) = spare {
            s.steps[i].fault = fault;
        }
    }
    (s, timing)
}

pub fn run(args: DemoArgs) -> anyhow::Result<u8> {
    let started = Instant::now();
    let seed = args.seed.unwrap_or_else(Rng::seed_from_time);
    let duration = parse_duration(&args.duration)?;
    let out = args.out.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("dengine-demo-{seed}-{}", std::process::id()))
    });
    let mut cfg = RunConfig::new(TargetKind::Dengine, 3, duration, seed, out.clone());
    cfg.families = FAMILIES.to_vec();
    let (schedule, timing) = schedule(seed, duration);
    cfg.schedule = Some(schedule);
    cfg.timing = Some(timing);
    cfg.workload.consistency = Consistency::Linearizable;
    cfg.extra = vec![("storage.backend".into(), "file".into())];
    println!(
        "demo: 3-node d-engine cluster (file storage), {} of linearizable reads, writes and cas \
         under leader kill, partition and pause; seed {seed}; run dir {}",
        args.duration,
        out.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = match runtime.block_on(run_interruptible(&cfg)) {
        Ok(s) => s,
        Err(e)
            if format!("{e}").starts_with("interrupted")
                || format!("{e}").starts_with("terminated") =>
        {
            eprintln!("demo: {e}");
            return Ok(130);
        }
        Err(e) => return Err(e),
    };
    drop(runtime);
    let report = d_engine_reports::render(&out);
    let faults = summary
        .faults
        .iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!();
    println!("  ops                    {}", summary.ops_total);
    println!(
        "  faults                 {} ({faults})",
        summary.faults_total
    );
    println!(
        "  longest unavailability {} ms (at {} ms)",
        summary.longest_unavailability_ms, summary.longest_unavailability_at_ms
    );
    println!(
        "  recovered after heal   {}{}",
        summary.recovered,
        summary
            .recovery_ms
            .map(|ms| format!(" ({ms} ms)"))
            .unwrap_or_default()
    );
    println!("  verdict                {}", summary.verdict);
    match &report {
        Ok(paths) => println!("  report                 {}", paths.index.display()),
        Err(e) => eprintln!("  report                 failed: {e:#}"),
    }
    println!(
        "  took                   {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if report.is_err() && summary.exit_code == 0 {
        return Ok(2);
    }
    Ok(summary.exit_code)
}
