//! Running a node: [`NodeBuilder`] assembles storage, the state machine and the
//! configuration; [`Node::run`] drives the Raft core on the current tokio task.
//!
//! ```no_run
//! # async fn quick_start(path: std::path::PathBuf) {
//! use std::sync::Arc;
//! use d_engine::{FileStateMachine, FileStorageEngine, NodeBuilder};
//! let (_graceful_tx, graceful_rx) = tokio::sync::watch::channel(());
//! let node = NodeBuilder::new(None, graceful_rx.clone())
//!     .storage_engine(Arc::new(FileStorageEngine::new(path.join("storage")).unwrap()))
//!     .state_machine(Arc::new(FileStateMachine::new(path.join("state_machine"), 1).await.unwrap()))
//!     .build()
//!     .start_rpc_server()
//!     .await
//!     .ready()
//!     .expect("start node failed.");
//! node.run().await.unwrap();
//! # }
//! ```
//!
//! The event loop, the peer links and the RPC server all run on the runtime that calls
//! [`Node::run`] (a current-thread runtime is enough); storage writes and the state
//! machine each have a thread of their own.

mod apply;
mod bootstrap;
mod event_loop;
mod persist;
pub(crate) mod request;
mod server;
pub mod status;
mod tick_clock;
mod waiters;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

pub use bootstrap::core_config;
pub use status::{NodeStatus, PeerStatus};

use crate::config::Config;
use crate::error::Error;
use crate::storage::{StateMachine, StorageEngine};

/// Assembles a node. See the module docs for the Quick Start.
pub struct NodeBuilder {
    config: Result<Config, Error>,
    shutdown: watch::Receiver<()>,
    storage: Option<Arc<dyn StorageEngine>>,
    state_machine: Option<Arc<dyn StateMachine>>,
}

impl NodeBuilder {
    /// A builder whose configuration comes from the TOML file at `config_path`, or, if
    /// `None`, from the file named by `CONFIG_PATH`, else the defaults (a single node on
    /// 127.0.0.1 that elects itself); `DENGINE__*` environment variables override both.
    /// The node shuts down gracefully when `shutdown` changes or its sender is dropped.
    pub fn new(config_path: Option<&str>, shutdown: watch::Receiver<()>) -> Self {
        let config = Config::load(config_path.map(std::path::Path::new)).map_err(Error::from);
        NodeBuilder {
            config,
            shutdown,
            storage: None,
            state_machine: None,
        }
    }

    /// A builder with a configuration given directly (validated when built).
    pub fn from_config(config: Config, shutdown: watch::Receiver<()>) -> Self {
        let config = config.validate().map(|()| config).map_err(Error::from);
        NodeBuilder {
            config,
            shutdown,
            storage: None,
            state_machine: None,
        }
    }

    /// The durable log. Without one, `build` opens the backend the config names.
    pub fn storage_engine<S: StorageEngine>(mut self, storage: Arc<S>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The replicated state machine. Without one, `build` opens the config's backend.
    pub fn state_machine<M: StateMachine>(mut self, sm: Arc<M>) -> Self {
        self.state_machine = Some(sm);
        self
    }

    /// The same, for storage already behind a trait object.
    pub fn storage_engine_dyn(mut self, storage: Arc<dyn StorageEngine>) -> Self {
        self.storage = Some(storage);
        self
    }

    pub fn state_machine_dyn(mut self, sm: Arc<dyn StateMachine>) -> Self {
        self.state_machine = Some(sm);
        self
    }

    /// Binds the configured address, then recovers the durable state and builds the
    /// Raft core. Errors are reported by [`StartedNode::ready`], so the Quick Start's
    /// call chain stays unbroken.
    ///
    /// Binding comes first so that a second node started on a live node's port fails
    /// before it opens any storage it was not given. (A second node on the same data
    /// directory with other ports is refused by the storage's directory lock.)
    pub fn build(self) -> BuiltNode {
        let NodeBuilder {
            config,
            shutdown,
            storage,
            state_machine,
        } = self;
        let inner = config.and_then(|config| {
            let listener = server::bind(&config.node.listen_addr)?;
            let parts = bootstrap::build(Ok(config), shutdown, storage, state_machine)?;
            Ok((parts, listener))
        });
        BuiltNode { inner }
    }
}

/// A node whose state is recovered and whose address is bound, not yet serving.
pub struct BuiltNode {
    inner: Result<(bootstrap::Parts, std::net::TcpListener), Error>,
}

impl BuiltNode {
    /// Starts serving peers, clients and operators on the address bound by `build`.
    pub async fn start_rpc_server(self) -> StartedNode {
        let inner = match self.inner {
            Ok((parts, listener)) => server::start(parts, listener).await,
            Err(e) => Err(e),
        };
        StartedNode { inner }
    }
}

/// A node that is serving RPCs; [`ready`](Self::ready) hands it over or says why not.
pub struct StartedNode {
    inner: Result<Node, Error>,
}

impl StartedNode {
    pub fn ready(self) -> Result<Node, Error> {
        self.inner
    }
}

/// A running node. [`run`](Self::run) drives it until shutdown.
pub struct Node {
    pub(crate) event_loop: event_loop::EventLoop,
    pub(crate) local_addr: SocketAddr,
    pub(crate) server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Node {
    /// The address the RPC server listens on (useful with port 0 in the config).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.event_loop.raft.id()
    }

    /// Runs the event loop until the shutdown signal; then stops serving, answers
    /// waiting requests with SHUTTING_DOWN and waits for queued writes to be durable.
    pub async fn run(self) -> Result<(), Error> {
        let Node {
            event_loop, server, ..
        } = self;
        let span = event_loop.span.clone();
        let result = tracing::Instrument::instrument(event_loop.run(), span).await;
        // The server stops on the same signal and drains: requests in flight get the
        // answers the loop just gave them. Wait for that, briefly: long-lived peer
        // streams would hold a full drain open indefinitely. After a fatal
        // error the server got no signal, so stop it outright.
        let mut server = server;
        if result.is_ok() {
            if tokio::time::timeout(std::time::Duration::from_millis(500), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        } else {
            server.abort();
        }
        result
    }
}
