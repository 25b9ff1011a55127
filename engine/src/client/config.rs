//! How a [`Client`](super::Client) connects and retries.

use std::time::Duration;

/// Client settings. [`ClientConfig::new`] gives defaults suited to a local cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Addresses (`host:port` or `http://host:port`) of some nodes of the cluster.
    pub endpoints: Vec<String>,
    /// Sent with every request; 0 = do not check (for tools that do not know it).
    pub cluster_id: u64,
    /// The whole time one operation may take, retries included.
    pub deadline: Duration,
    /// The time one attempt may take before the client tries again.
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
    /// Backoff between attempts, doubling from `backoff_min` up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Attach a session to writes so retries are applied at most once. Turning this
    /// off makes a retried write able to apply twice; it exists for measurements only.
    pub sessions: bool,
    /// Concurrent calls to one node share `Batch` RPCs, with at most this many batches
    /// outstanding per node; 0 sends every call on its own RPC. Batching changes no
    /// semantics (each operation is run and answered on its own), only the cost per
    /// call. See [`Batcher`](super::Batcher).
    pub batch_in_flight: usize,
}

impl ClientConfig {
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            cluster_id: 0,
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(500),
            sessions: true,
            batch_in_flight: 4,
        }
    }

    pub fn cluster_id(mut self, id: u64) -> Self {
        self.cluster_id = id;
        self
    }

    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Batches outstanding per node (0 = no batching).
    pub fn batch_in_flight(mut self, n: usize) -> Self {
        self.batch_in_flight = n;
        self
    }

    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }
}
