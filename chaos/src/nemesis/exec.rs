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

/// What a membership driver returns: the nodes it acted on and a description.
pub type MembershipFuture<'a> =
    Pin<Box<dyn Future<Output = anyhow::Result<(Vec<usize>, String)>> + Send + 'a>>;

/// A target's membership operations (add learner, promote, remove, transfer
/// leadership), driven through its admin API. Implement it for a target to
/// enable the `membership` nemesis family; it returns the nodes it acted on
/// and a one-line description of what it did, for the log.
pub trait MembershipDriver: Send {
    fn apply<'a>(
        &'a mut self,
        cluster: &'a mut LocalCluster,
        op: &'a MembershipOp,
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

fn node_name(i: usize) -> String {
    format!("n{}", i + 1)
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
                targets: targets.iter().map(|&i| node_name(i)).collect(),
                detail: (!detail.is_empty()).then_some(detail),
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
                let net = cluster.net().context("partitions need a proxied cluster")?;
                let leader = match shape {
                    super::Partition::IsolateLeader => self.resolve_leader(cluster).await,
                    _ => 0,
                };
                let links = shape.blocked_links(n, leader);
                net.update_all(|a, b, l| {
                    if links.contains(&(a, b)) {
                        l.blocked = true;
                    }
                });
                let mut nodes: Vec<usize> = links.iter().flat_map(|&(a, b)| [a, b]).collect();
                nodes.sort_unstable();
                nodes.dedup();
                let blocked: Vec<String> = links
                    .iter()
                    .map(|&(a, b)| format!("{}>{}", node_name(a), node_name(b)))
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
                let net = cluster.net().context("delay needs a proxied cluster")?;
                net.update_all(|_, _, l| {
                    l.delay_ms = *delay_ms;
                    l.jitter_ms = *jitter_ms;
                });
                Ok((
                    (0..n).collect(),
                    format!("delay {delay_ms}ms jitter {jitter_ms}ms on every peer link"),
                ))
            }
            Fault::Loss { p } => {
                let net = cluster.net().context("loss needs a proxied cluster")?;
                net.update_all(|_, _, l| l.loss = *p);
                Ok((
                    (0..n).collect(),
                    format!("connection reset probability {p} per chunk on every peer link"),
                ))
            }
            Fault::Membership(op) => {
                let driver = self
                    .membership
                    .as_mut()
                    .context("this target has no membership driver")?;
                driver.apply(cluster, op).await
            }
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
                if let Some(net) = cluster.net() {
                    net.update_all(|_, _, l| *l = LinkFault::default());
                }
            }
            // A membership change is not undone; the cluster must cope.
            Fault::Membership(_) => {}
        }
        Ok(())
    }
}

fn describe_targets(t: &Targets) -> String {
    match t {
        Targets::One(_) => "one".into(),
        Targets::Leader => "leader".into(),
        Targets::Minority(_) => "minority".into(),
        Targets::Majority(_) => "majority".into(),
    }
}
