//! Membership drivers, by target.

use std::time::Duration;

use anyhow::Context;

use super::exec::MembershipFuture;
use super::{MembershipDriver, MembershipOp};
use crate::cluster::{LocalCluster, TargetKind};

/// Bound on one admin call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

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
    ) -> MembershipFuture<'a> {
        Box::pin(async move {
            match op {
                MembershipOp::TransferLeader(to) => {
                    let from = cluster
                        .leader()
                        .await
                        .context("no leader to transfer from")?;
                    // The schedule cannot know the leader; move to the next node then.
                    let to = if from == *to {
                        (to + 1) % cluster.len()
                    } else {
                        *to
                    };
                    if from == to {
                        return Ok((vec![from], "a single node: nothing to transfer".into()));
                    }
                    let target_id = cluster.endpoint_by_id()[to].0;
                    cluster
                        .client(from)?
                        .transfer_leader(target_id, ADMIN_TIMEOUT)
                        .await
                        .map_err(|e| anyhow::anyhow!("transfer leader: {}", e.message))?;
                    let what = format!("transfer leadership n{} -> n{}", from + 1, to + 1);
                    Ok((vec![from, to], what))
                }
            }
        })
    }
}
