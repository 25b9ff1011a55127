//! Applies a schedule to a running cluster and logs each fault window.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::Context;
use d_engine_histories::{NemesisEvent, write_nemesis_event};

use super::{Fault, MembershipOp, Schedule, Step, Targets};
use crate::cluster::LocalCluster;
use crate::prng::Rng;
use crate::proxy::LinkFault;

/// What a membership driver returns once it is done (its phases are in the
/// vector it was given, also when it fails half-way).
pub type MembershipFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// One phase of a membership change, logged as its own `membership` event.
#[derive(Debug, Clone)]
pub struct Phase {
    pub start: Instant,
    pub end: Instant,
    /// Ids of the nodes it acted on.
    pub targets: Vec<u64>,
    /// One line; its first word names the phase (`add-learner`, `promote`,
    /// `remove`, `transfer`).
    pub detail: String,
}

/// A target's membership operations (add learner, promote, remove, transfer
/// leadership), driven through its admin API. Implement it for a target to
/// enable the `membership` nemesis family; it pushes each phase it completed
/// to `phases`, for the log.
pub trait MembershipDriver: Send {
    fn apply<'a>(
        &'a mut self,
        cluster: &'a mut LocalCluster,
        op: &'a MembershipOp,
        phases: &'a mut Vec<Phase>,
    ) -> MembershipFuture<'a>;
}

/// Runs a [`Schedule`] against a cluster.
pub struct Executor {
    schedule: Schedule,
    /// Time zero of the run, shared with the history so both time axes agree.
    t0: Instant,
    log: BufWriter<File>,
    events: Vec<NemesisEvent>,
    rng: Rng,
    membership: Option<Box<dyn MembershipDriver>>,
}

/// Nodes are named by id in the log (`n5`): a slot's node changes when it is replaced.
fn node_name(cluster: &LocalCluster, slot: usize) -> String {
    format!("n{}", cluster.node_id(slot))
}

impl Executor {
    /// Logs to `log_path` (created or truncated).
    pub fn new(schedule: Schedule, t0: Instant, log_path: &Path) -> anyhow::Result<Executor> {
        let file = File::create(log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let rng = Rng::new(schedule.seed ^ 0x6E65_6D65_7369_7321);
        Ok(Executor {
            schedule,
            t0,
            log: BufWriter::new(file),
            events: Vec::new(),
            rng,
            membership: None,
        })
    }

    pub fn with_membership(mut self, driver: Box<dyn MembershipDriver>) -> Self {
        self.membership = Some(driver);
        self
    }

    /// The fault windows logged so far.
    pub fn events(&self) -> &[NemesisEvent] {
        &self.events
    }

    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn record(&mut self, event: NemesisEvent) -> anyhow::Result<()> {
        write_nemesis_event(&mut self.log, &event)?;
        self.log.flush()?;
        self.events.push(event);
        Ok(())
    }

    /// Runs every step at its time. A step that fails (a node that will not
    /// restart, say) is logged with the error and the schedule goes on.
    pub async fn run(&mut self, cluster: &mut LocalCluster) -> anyhow::Result<()> {
        let steps = self.schedule.steps.clone();
        for step in &steps {
            tokio::time::sleep_until((self.t0 + Duration::from_millis(step.at_ms)).into()).await;
            if let Fault::Membership(op) = &step.fault {
                self.membership(cluster, op).await?;
                tokio::time::sleep(Duration::from_millis(step.duration_ms)).await;
                continue;
            }
            let start_ns = self.now_ns();
            let (targets, mut detail) = match self.apply(cluster, step).await {
                Ok(applied) => applied,
                Err(e) => (Vec::new(), format!("error applying: {e:#}")),
            };
            tokio::time::sleep(Duration::from_millis(step.duration_ms)).await;
            if let Err(e) = self.undo(cluster, step, &targets).await {
                detail.push_str(&format!("; error healing: {e:#}"));
            }
            let event = NemesisEvent {
                start_ns,
                end_ns: Some(self.now_ns()),
                kind: step.fault.kind().to_owned(),
                targets: targets.iter().map(|&i| node_name(cluster, i)).collect(),
                detail: (!detail.is_empty()).then_some(detail),
            };
            self.record(event)?;
        }
        Ok(())
    }

    fn ns_at(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_nanos() as u64
    }

    /// A membership change: each phase is logged as it was done; a failure
    /// is logged as an `error …` event covering the rest of the attempt.
    async fn membership(
        &mut self,
        cluster: &mut LocalCluster,
        op: &MembershipOp,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut phases = Vec::new();
        let result = match self.membership.as_mut() {
            Some(driver) => driver.apply(cluster, op, &mut phases).await,
            None => Err(anyhow::anyhow!("this target has no membership driver")),
        };
        for phase in &phases {
            let event = NemesisEvent {
                start_ns: self.ns_at(phase.start),
                end_ns: Some(self.ns_at(phase.end)),
                kind: "membership".into(),
                targets: phase.targets.iter().map(|id| format!("n{id}")).collect(),
                detail: Some(phase.detail.clone()),
            };
            self.record(event)?;
        }
        if let Err(e) = result {
            let since = phases.last().map_or(started, |p| p.end);
            let event = NemesisEvent {
                start_ns: self.ns_at(since),
                end_ns: Some(self.now_ns()),
                kind: "membership".into(),
                targets: Vec::new(),
                detail: Some(format!("error {op:?}: {e:#}")),
            };
            self.record(event)?;
        }
        Ok(())
    }

    /// The final heal: clear the network, resume paused nodes, start stopped
    /// ones. Logged as a `heal` event.
    pub async fn heal(&mut self, cluster: &mut LocalCluster) -> anyhow::Result<()> {
        let start_ns = self.now_ns();
        cluster.heal().await?;
        let event = NemesisEvent {
            start_ns,
            end_ns: Some(self.now_ns()),
            kind: "heal".into(),
            targets: Vec::new(),
            detail: None,
        };
        self.record(event)
    }

    async fn resolve_leader(&mut self, cluster: &LocalCluster) -> usize {
        match cluster.leader().await {
            Some(l) => l,
            None => self.rng.below(cluster.len() as u64) as usize,
        }
    }

    async fn resolve(&mut self, cluster: &LocalCluster, targets: &Targets) -> Vec<usize> {
        match targets {
            Targets::One(i) => vec![*i],
            Targets::Leader => vec![self.resolve_leader(cluster).await],
            Targets::Minority(v) | Targets::Majority(v) => v.clone(),
        }
    }

    /// Starts the fault; returns the nodes it hit and a description.
    async fn apply(
        &mut self,
        cluster: &mut LocalCluster,
        step: &Step,
    ) -> anyhow::Result<(Vec<usize>, String)> {
        let n = cluster.len();
        match &step.fault {
            Fault::Kill(t) => {
                let nodes = self.resolve(cluster, t).await;
                for &i in &nodes {
                    cluster.kill(i).await?;
                }
                Ok((nodes, describe_targets(t)))
            }
            Fault::GracefulRestart(t) => {
                let nodes = self.resolve(cluster, t).await;
                for &i in &nodes {
                    cluster.terminate(i).await?;
                }
                Ok((nodes, describe_targets(t)))
            }
            Fault::Pause(t) => {
                let nodes = self.resolve(cluster, t).await;
                for &i in &nodes {
                    cluster.pause(i)?;
                }
                Ok((nodes, describe_targets(t)))
            }
            Fault::Partition(shape) => {
                let leader = match shape {
                    super::Partition::IsolateLeader => self.resolve_leader(cluster).await,
                    _ => 0,
                };
                let links = shape.blocked_links(n, leader);
                cluster.update_links(|a, b, l| {
                    if links.contains(&(a, b)) {
                        l.blocked = true;
                    }
                })?;
                let mut nodes: Vec<usize> = links.iter().flat_map(|&(a, b)| [a, b]).collect();
                nodes.sort_unstable();
                nodes.dedup();
                let blocked: Vec<String> = links
                    .iter()
                    .map(|&(a, b)| format!("{}>{}", node_name(cluster, a), node_name(cluster, b)))
                    .collect();
                Ok((
                    nodes,
                    format!("{} blocked {}", shape.name(), blocked.join(" ")),
                ))
            }
            Fault::Delay {
                delay_ms,
                jitter_ms,
            } => {
                if !cluster.supports_delay() {
                    return Ok((Vec::new(), format!("skipped: {}", NO_DELAY)));
                }
                cluster.update_links(|_, _, l| {
                    l.delay_ms = *delay_ms;
                    l.jitter_ms = *jitter_ms;
                })?;
                Ok((
                    (0..n).collect(),
                    format!("delay {delay_ms}ms jitter {jitter_ms}ms on every peer link"),
                ))
            }
            Fault::Loss { p } => {
                cluster.update_links(|_, _, l| l.loss = *p)?;
                let what = if !cluster.supports_delay() {
                    format!("packet drop probability {p} on every peer link (nftables)")
                } else {
                    format!("connection reset probability {p} per chunk on every peer link")
                };
                Ok(((0..n).collect(), what))
            }
            Fault::Membership(_) => unreachable!("membership steps run in Executor::membership"),
        }
    }

    /// Ends the fault started by `apply`.
    async fn undo(
        &mut self,
        cluster: &mut LocalCluster,
        step: &Step,
        nodes: &[usize],
    ) -> anyhow::Result<()> {
        match &step.fault {
            Fault::Kill(_) | Fault::GracefulRestart(_) => {
                for &i in nodes {
                    if !cluster.is_running(i) {
                        cluster.restart(i).await?;
                    }
                }
            }
            Fault::Pause(_) => {
                for &i in nodes {
                    cluster.resume(i)?;
                }
            }
            Fault::Partition(_) | Fault::Delay { .. } | Fault::Loss { .. } => {
                if cluster.net().is_some() {
                    cluster.update_links(|_, _, l| *l = LinkFault::default())?;
                }
            }
            // A membership change is not undone; the cluster must cope.
            Fault::Membership(_) => {}
        }
        Ok(())
    }
}

/// Why a delay step does nothing with `--net netns`.
pub const NO_DELAY: &str =
    "no added delay with --net netns (this kernel has no netem; use the proxy backend)";

fn describe_targets(t: &Targets) -> String {
    match t {
        Targets::One(_) => "one".into(),
        Targets::Leader => "leader".into(),
        Targets::Minority(_) => "minority".into(),
        Targets::Majority(_) => "majority".into(),
    }
}
