//! The cluster administration service.

use d_engine_proto::limits::MAX_MEMBERS;
use d_engine_proto::v1 as pb;
use d_engine_proto::v1::cluster_admin_server::ClusterAdmin;
use tonic::{Request, Response, Status};

use super::client_context::ClientContext;
use super::convert::membership_to_pb;
use crate::core::Role;
use crate::node::request::{AdminOp, ClientRequest};
use crate::node::status::NodeStatus;

pub(crate) struct AdminService {
    pub ctx: ClientContext,
}

impl AdminService {
    async fn run(
        &self,
        header: Option<pb::RequestHeader>,
        op: Result<AdminOp, String>,
    ) -> pb::AdminResponse {
        let outcome = async {
            self.ctx.check_cluster(header.as_ref())?;
            let op = op.map_err(|m| self.ctx.error(pb::ErrorCode::InvalidArgument, m))?;
            self.ctx
                .call(header.as_ref(), |reply| ClientRequest::Admin { op, reply })
                .await
                .map_err(|e| match e {
                    Some(e) => self.ctx.request_error(e),
                    None => self.ctx.error(
                        pb::ErrorCode::Timeout,
                        "no answer within the request timeout; outcome unknown",
                    ),
                })
        }
        .await;
        match outcome {
            Ok(index) => pb::AdminResponse {
                header: self.ctx.header(0),
                error: None,
                index,
            },
            Err(error) => pb::AdminResponse {
                header: self.ctx.header(0),
                error,
                index: 0,
            },
        }
    }
}

fn check_ids(ids: &[u64]) -> Result<(), String> {
    if ids.is_empty() {
        return Err("no node ids given".into());
    }
    if ids.len() > MAX_MEMBERS {
        return Err(format!(
            "{} node ids exceed the limit of {MAX_MEMBERS}",
            ids.len()
        ));
    }
    if ids.contains(&0) {
        return Err("node id 0 is reserved".into());
    }
    Ok(())
}

#[tonic::async_trait]
impl ClusterAdmin for AdminService {
    async fn add_learner(
        &self,
        req: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let r = req.into_inner();
        let ids: Vec<u64> = r.learners.iter().map(|l| l.id).collect();
        let op = check_ids(&ids).and_then(|()| {
            for l in &r.learners {
                l.addr
                    .parse::<std::net::SocketAddr>()
                    .map_err(|_| format!("`{}` is not an ip:port address", l.addr))?;
            }
            Ok(AdminOp::AddLearners(
                r.learners.into_iter().map(|l| (l.id, l.addr)).collect(),
            ))
        });
        Ok(Response::new(self.run(r.header, op).await))
    }

    async fn promote(
        &self,
        req: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let r = req.into_inner();
        let op = check_ids(&r.node_ids).map(|()| AdminOp::Promote(r.node_ids));
        Ok(Response::new(self.run(r.header, op).await))
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let r = req.into_inner();
        let op = check_ids(&r.node_ids).map(|()| AdminOp::Remove(r.node_ids));
        Ok(Response::new(self.run(r.header, op).await))
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            self.run(r.header, Ok(AdminOp::TransferLeader(r.target)))
                .await,
        ))
    }

    async fn snapshot_now(
        &self,
        req: Request<pb::SnapshotNowRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            self.run(r.header, Ok(AdminOp::SnapshotNow)).await,
        ))
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let r = req.into_inner();
        if let Err(error) = self.ctx.check_cluster(r.header.as_ref()) {
            return Ok(Response::new(pb::StatusResponse {
                header: self.ctx.header(0),
                error,
                ..Default::default()
            }));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self
            .ctx
            .requests
            .try_send(ClientRequest::Status { reply: tx })
            .is_err()
        {
            return Ok(Response::new(pb::StatusResponse {
                header: self.ctx.header(0),
                error: self.ctx.error(pb::ErrorCode::Busy, "request queue full"),
                ..Default::default()
            }));
        }
        let status = tokio::time::timeout(self.ctx.request_timeout, rx)
            .await
            .map_err(|_| Status::deadline_exceeded("status timed out"))?
            .map_err(|_| Status::unavailable("node shutting down"))?;
        Ok(Response::new(status_to_pb(&self.ctx, &status)))
    }
}

fn status_to_pb(ctx: &ClientContext, s: &NodeStatus) -> pb::StatusResponse {
    let role = match s.role {
        _ if s.learner => pb::Role::Learner,
        Role::Follower => pb::Role::Follower,
        Role::PreCandidate => pb::Role::PreCandidate,
        Role::Candidate => pb::Role::Candidate,
        Role::Leader => pb::Role::Leader,
    };
    pb::StatusResponse {
        header: Some(pb::ResponseHeader {
            cluster_id: s.cluster_id,
            node_id: s.id,
            term: s.term,
            leader_id: s.leader.unwrap_or(0),
            applied_index: s.applied_index,
        }),
        error: None,
        role: role as i32,
        commit_index: s.commit_index,
        applied_index: s.applied_index,
        first_index: s.first_index,
        last_index: s.last_index,
        snapshot_index: s.snapshot_index,
        no_space: s.no_space,
        membership: Some(membership_to_pb(&s.membership)),
        peers: s
            .peers
            .iter()
            .map(|p| pb::PeerProgress {
                id: p.id,
                addr: p.addr.clone(),
                voter: p.voter,
                state: pb::ProgressState::Unspecified as i32,
                match_index: p.match_index,
                next_index: p.next_index,
                lag: p.lag,
                last_contact_ms: 0,
            })
            .collect(),
        addr: ctx.book.get(s.id).unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}
