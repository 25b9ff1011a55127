//! Membership drivers, by target.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::exec::{MembershipFuture, Phase};
use super::{MembershipDriver, MembershipOp};
use crate::client::{AdminOp, KvClient, MembershipView};
use crate::cluster::{LocalCluster, TargetKind};

/// Bound on one admin call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on adding a learner or removing a node, retries included.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on promoting a learner: it must catch up and stay caught up for
/// `learner_promote_sustain_ms` (1 s by default) under the workload's load.
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two attempts of a change.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// The membership driver of a target, if it has one. etcd has none: its
/// MoveLeader and member APIs are outside the subset of its protocol that
/// `d_engine_proto::etcd` compiles.
pub fn driver_for(kind: TargetKind) -> Option<Box<dyn MembershipDriver>> {
    match kind {
        TargetKind::Dengine => Some(Box::new(Dengine)),
        TargetKind::Etcd => None,
    }
}

/// d-engine, through its ClusterAdmin service.
struct Dengine;

impl MembershipDriver for Dengine {
    fn apply<'a>(
        &'a mut self,
        cluster: &'a mut LocalCluster,
        op: &'a MembershipOp,
        phases: &'a mut Vec<Phase>,
    ) -> MembershipFuture<'a> {
        Box::pin(async move {
            match op {
                MembershipOp::TransferLeader(to) => transfer(cluster, *to, phases).await,
                MembershipOp::Replace { slot } => replace(cluster, *slot, phases).await,
            }
        })
    }
}

async fn transfer(
    cluster: &mut LocalCluster,
    to: usize,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let from = cluster
        .leader()
        .await
        .context("no leader to transfer from")?;
    // The schedule cannot know the leader; move to the next node then.
    let to = if from == to {
        (to + 1) % cluster.len()
    } else {
        to
    };
    let (from_id, to_id) = (cluster.node_id(from), cluster.node_id(to));
    if from != to {
        cluster
            .client(from)?
            .transfer_leader(to_id, ADMIN_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!("transfer leader: {}", e.message))?;
    }
    phases.push(Phase {
        start,
        end: Instant::now(),
        targets: vec![from_id, to_id],
        detail: if from == to {
            "transfer: a single node, nothing to transfer".into()
        } else {
            format!("transfer leadership n{from_id} -> n{to_id}")
        },
    });
    Ok(())
}

/// Add a learner with a fresh id, promote it, remove the node in `slot`;
/// the new node takes the slot. See [`MembershipOp::Replace`].
async fn replace(
    cluster: &mut LocalCluster,
    slot: usize,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<()> {
    let old_id = cluster.node_id(slot);
    if !cluster.extra_ids().is_empty() {
        bail!(
            "an earlier replacement left extra members {:?}: no new node",
            cluster.extra_ids()
        );
    }
    leader_view(cluster)
        .await
        .context("no leader: no membership change")?;

    let start = Instant::now();
    let joining = cluster.start_joining().await?;
    let new_id = joining.id;
    let added = change(
        cluster,
        AdminOp::AddLearner(new_id, joining.addr.clone()),
        CHANGE_TIMEOUT,
    )
    .await;
    if let Err(e) = added {
        cluster.retire(joining.node).await?;
        return Err(e.context(format!("add learner n{new_id}")));
    }
    phases.push(Phase {
        start,
        end: Instant::now(),
        targets: vec![new_id],
        detail: format!(
            "add-learner n{new_id} (fresh data dir) at {}, to replace n{old_id}",
            joining.addr
        ),
    });

    let start = Instant::now();
    if let Err(e) = change(cluster, AdminOp::Promote(new_id), PROMOTE_TIMEOUT).await {
        // Take the learner out again; it never counted towards a quorum.
        let undone = change(cluster, AdminOp::Remove(new_id), CHANGE_TIMEOUT).await;
        if undone.is_ok() {
            cluster.retire(joining.node).await?;
        }
        return Err(e.context(format!(
            "promote n{new_id} (taken out again: {})",
            undone.is_ok()
        )));
    }
    phases.push(Phase {
        start,
        end: Instant::now(),
        targets: vec![new_id],
        detail: format!("promote n{new_id} to voter"),
    });

    let start = Instant::now();
    if let Err(e) = change(cluster, AdminOp::Remove(old_id), CHANGE_TIMEOUT).await {
        return Err(e.context(format!(
            "remove n{old_id}; n{new_id} stays as an extra voter"
        )));
    }
    let old = cluster.assign_slot(slot, joining.node);
    cluster.retire(old).await?;
    phases.push(Phase {
        start,
        end: Instant::now(),
        targets: vec![old_id],
        detail: format!(
            "remove n{old_id} (stopped; its id is never reused), n{new_id} takes slot {}",
            slot + 1
        ),
    });
    Ok(())
}

/// The membership as the current leader sees it: (leader id, view).
async fn leader_view(cluster: &LocalCluster) -> Option<(u64, MembershipView)> {
    let clients = cluster.member_clients().ok()?;
    let probes = clients.iter().map(|(_, c)| c.membership(ADMIN_TIMEOUT));
    crate::util::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .filter(|(s, _)| s.is_leader())
        .max_by_key(|(s, _)| s.term)
        .map(|(s, view)| (s.id, view))
}

/// True when the view of leader `leader` shows `op` done and no joint
/// configuration pending. A removed leader steps down only once the final
/// configuration commits, so a removal counts as done when another node leads:
/// then the node can be stopped without the cluster ever needing it.
fn done(op: &AdminOp, leader: u64, view: &MembershipView) -> bool {
    if !view.voters_outgoing.is_empty() {
        return false;
    }
    match op {
        AdminOp::AddLearner(id, _) => view.learners.contains(id) || view.voters.contains(id),
        AdminOp::Promote(id) => view.voters.contains(id),
        AdminOp::Remove(id) => {
            leader != *id && !view.voters.contains(id) && !view.learners.contains(id)
        }
    }
}

/// Sends `op` to the leader until the leader's view shows it done (so an
/// attempt whose reply was lost is not repeated blindly), within `bound`.
async fn change(cluster: &LocalCluster, op: AdminOp, bound: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + bound;
    let mut last = String::from("no leader");
    loop {
        if let Some((leader, view)) = leader_view(cluster).await {
            if done(&op, leader, &view) {
                return Ok(());
            }
            let client: Option<KvClient> = cluster
                .member_clients()?
                .into_iter()
                .find(|(id, _)| *id == leader)
                .map(|(_, c)| c);
            // A change that committed its joint step still has to leave it:
            // only send when no change is under way.
            let removed = matches!(op, AdminOp::Remove(id) if !view.voters.contains(&id));
            if let Some(client) = client
                && view.voters_outgoing.is_empty()
                && !removed
            {
                match client.admin(&op, ADMIN_TIMEOUT).await {
                    Ok(_) => last = "sent; waiting for the final configuration".into(),
                    Err(e) => last = e.message,
                }
            }
        }
        if Instant::now() >= deadline {
            bail!("{op:?} not done after {bound:?}: {last}");
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
