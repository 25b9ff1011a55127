//! Cluster administration through the same leader-finding, retrying client.

use d_engine_proto::v1::cluster_admin_client::ClusterAdminClient;
use d_engine_proto::v1::*;

use super::kv::OpKind;
use super::{Client, ClientError};

/// A node's view of itself and (if it leads) of its peers.
pub type NodeStatus = StatusResponse;

/// Admin calls; get one with [`Client::admin`].
pub struct AdminClient<'a> {
    client: &'a Client,
}

impl Client {
    pub fn admin(&self) -> AdminClient<'_> {
        AdminClient { client: self }
    }
}

impl AdminClient<'_> {
    fn header(&self) -> Option<RequestHeader> {
        Some(RequestHeader {
            cluster_id: self.client.inner.config.cluster_id,
            session: None,
            timeout_ms: 0,
        })
    }

    async fn leader_call<F, Fut>(&self, call: F) -> Result<u64, ClientError>
    where
        F: Fn(ClusterAdminClient<tonic::transport::Channel>, Option<RequestHeader>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<AdminResponse>, tonic::Status>>,
    {
        let header = self.header();
        // Membership changes are idempotent at the leader (adding a learner that is
        // already one, promoting a voter), so retrying them is safe.
        let r = self
            .client
            .inner
            .execute(OpKind::Write, |ch| {
                call(ClusterAdminClient::new(ch.channel), header)
            })
            .await?;
        Ok(r.index)
    }

    /// Adds learners (`(id, address)` pairs); returns the log index of the change.
    pub async fn add_learners(&self, learners: &[(u64, String)]) -> Result<u64, ClientError> {
        let learners: Vec<NodeAddress> = learners
            .iter()
            .map(|(id, addr)| NodeAddress {
                id: *id,
                addr: addr.clone(),
            })
            .collect();
        self.leader_call(|mut c, header| {
            let req = AddLearnerRequest {
                header,
                learners: learners.clone(),
            };
            async move { c.add_learner(req).await }
        })
        .await
    }

    /// Promotes learners to voters, all in one joint-consensus change.
    pub async fn promote(&self, node_ids: &[u64]) -> Result<u64, ClientError> {
        let node_ids = node_ids.to_vec();
        self.leader_call(|mut c, header| {
            let req = PromoteRequest {
                header,
                node_ids: node_ids.clone(),
            };
            async move { c.promote(req).await }
        })
        .await
    }

    /// Removes nodes (voters or learners), all in one joint-consensus change.
    pub async fn remove(&self, node_ids: &[u64]) -> Result<u64, ClientError> {
        let node_ids = node_ids.to_vec();
        self.leader_call(|mut c, header| {
            let req = RemoveNodeRequest {
                header,
                node_ids: node_ids.clone(),
            };
            async move { c.remove_node(req).await }
        })
        .await
    }

    /// Hands leadership to `target` (0 = the most up-to-date voter).
    pub async fn transfer_leader(&self, target: u64) -> Result<u64, ClientError> {
        self.leader_call(|mut c, header| {
            let req = TransferLeaderRequest { header, target };
            async move { c.transfer_leader(req).await }
        })
        .await
    }

    /// Asks the leader to take a snapshot now; returns the snapshot's last index.
    pub async fn snapshot_now(&self) -> Result<u64, ClientError> {
        self.leader_call(|mut c, header| {
            let req = SnapshotNowRequest { header };
            async move { c.snapshot_now(req).await }
        })
        .await
    }

    /// The status of one node, asked directly (no leader redirection).
    pub async fn status_of(&self, endpoint: &str) -> Result<NodeStatus, ClientError> {
        let addr = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let channel = self.client.inner.channel(&addr)?;
        let timeout = self.client.inner.config.attempt_timeout;
        let req = StatusRequest {
            header: self.header(),
        };
        match tokio::time::timeout(timeout, ClusterAdminClient::new(channel).status(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(ClientError::Unavailable {
                last: format!("{endpoint}: {status}"),
            }),
            Err(_) => Err(ClientError::Unavailable {
                last: format!("{endpoint}: timed out"),
            }),
        }
    }
}
