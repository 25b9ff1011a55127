//! Binding the listener and wiring the services to the event loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use d_engine_proto::limits::{MAX_CLIENT_MESSAGE_BYTES, MAX_PEER_MESSAGE_BYTES};
use d_engine_proto::v1::cluster_admin_server::ClusterAdminServer;
use d_engine_proto::v1::kv_server::KvServer;
use d_engine_proto::v1::raft_peer_server::RaftPeerServer;
use tokio::sync::mpsc;
use tracing::info;

use super::Node;
use super::bootstrap::Parts;
use super::event_loop::EventLoop;
use crate::error::{Error, NetworkError};
use crate::network::admin_service::AdminService;
use crate::network::client_context::ClientContext;
use crate::network::kv_service::KvService;
use crate::network::peer_link::{LinkContext, Peers};
use crate::network::peer_service::PeerService;
use crate::network::{LeaderView, RefusedCounters};

/// Peer messages waiting for the event loop; senders wait when it is full.
const PEER_QUEUE: usize = 4096;
/// Largest client message tonic decodes: twice the protocol's MAX_CLIENT_MESSAGE_BYTES.
/// The services check the key, value and batch bounds and answer TOO_LARGE; decoding
/// beyond the message bound lets a request somewhat over it (a 2 MiB value, say) get
/// that typed answer rather than tonic's OUT_OF_RANGE status, while still capping what
/// a client can make the node buffer.
const CLIENT_DECODE_BYTES_MAX: usize = 2 * MAX_CLIENT_MESSAGE_BYTES;

/// Binds the node's address (blocking, before the runtime serves anything: see
/// `NodeBuilder::build` for why this comes before storage is opened).
pub(crate) fn bind(addr: &str) -> Result<std::net::TcpListener, Error> {
    let bind_err = |source| NetworkError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    // tokio drives the socket; it must not block the runtime's thread.
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok(listener)
}

pub(crate) async fn start(parts: Parts, listener: std::net::TcpListener) -> Result<Node, Error> {
    let Parts {
        config,
        shutdown,
        storage,
        sm,
        raft,
        applied,
        latest_snapshot,
        book,
    } = parts;
    let addr = config.node.listen_addr.clone();
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|source| NetworkError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| NetworkError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let me = raft.id();
    let last_pos = (raft.log().last_index(), raft.log().last_term());
    // With port 0 in the config, peers and redirects must see the real port.
    if book.get(me).is_none_or(|a| a.ends_with(":0")) {
        book.insert(me, local_addr.to_string());
    }

    // Only the id: see `EventLoop::span` for why term and role are not in it.
    let span = tracing::info_span!("node", id = me);
    let _entered = span.clone().entered();
    let (peer_tx, peer_rx) = mpsc::channel(PEER_QUEUE);
    let (client_tx, client_rx) = mpsc::channel(config.raft.proposal_queue_max.max(1));
    let (applied_tx, applied_rx) = mpsc::unbounded_channel();
    let (persisted_tx, persisted_rx) = mpsc::unbounded_channel();
    let view = Arc::new(LeaderView::default());
    view.term
        .store(raft.term(), std::sync::atomic::Ordering::Relaxed);
    view.applied
        .store(applied, std::sync::atomic::Ordering::Relaxed);

    if config.metrics.enabled {
        let addr: std::net::SocketAddr =
            config
                .metrics
                .listen_addr
                .parse()
                .map_err(|_| NetworkError::BadAddress {
                    addr: config.metrics.listen_addr.clone(),
                    reason: "not an ip:port address".into(),
                })?;
        match crate::metrics::install_prometheus(addr) {
            Ok(()) => info!(node = me, %addr, "serving Prometheus metrics at /metrics"),
            Err(e) => tracing::warn!(node = me, %addr, error = %e, "metrics exporter not started"),
        }
    }
    let apply = super::apply::spawn(me, sm.clone(), storage.clone(), applied_tx);
    let link_ctx = LinkContext {
        me,
        cluster_id: config.node.cluster_id,
        book: book.clone(),
        net: config.network.clone(),
        inbound: peer_tx.clone(),
        sm: sm.clone(),
        snapshot_chunk_bytes: config.snapshot.chunk_bytes as usize,
    };
    let client_ctx = ClientContext {
        me,
        cluster_id: config.node.cluster_id,
        book: book.clone(),
        requests: client_tx,
        view: view.clone(),
        request_timeout: Duration::from_millis(config.network.request_timeout_ms),
        value_bytes_max: d_engine_proto::limits::MAX_VALUE_BYTES,
    };
    let peer_service = PeerService {
        me,
        cluster_id: config.node.cluster_id,
        book: book.clone(),
        inbound: peer_tx,
        refused: Arc::new(RefusedCounters::default()),
        term: view.term.clone(),
        staging: crate::storage::snapshot_staging::SnapshotStaging::new(staging_dir(&config, me)),
        inbound_snapshots: Arc::new(tokio::sync::Semaphore::new(
            crate::network::peer_service::INBOUND_SNAPSHOTS_MAX,
        )),
    };
    // tonic refuses messages over these sizes outright; below them the services check
    // the finer limits and answer with typed errors.
    let client_max = CLIENT_DECODE_BYTES_MAX;
    let router = tonic::transport::Server::builder()
        .trace_fn(request_span)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_millis(
            config.network.keepalive_interval_ms,
        )))
        .http2_keepalive_timeout(Some(Duration::from_millis(
            config.network.keepalive_timeout_ms,
        )))
        .add_service(
            RaftPeerServer::new(peer_service)
                .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES),
        )
        .add_service(
            KvServer::new(KvService {
                ctx: client_ctx.clone(),
            })
            .max_decoding_message_size(client_max),
        )
        .add_service(
            ClusterAdminServer::new(AdminService { ctx: client_ctx })
                .max_decoding_message_size(client_max),
        );
    let mut stop = shutdown.clone();
    // Accepted connections need TCP_NODELAY set explicitly (the builder's setting
    // applies only to listeners it binds itself): without it, small replies wait for
    // the peer's delayed ACK, ~40 ms (found by the read benchmark).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let serve = router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop.changed().await;
    });
    let server = tokio::spawn(tracing::Instrument::in_current_span(serve));
    info!(node = me, %local_addr, "serving peers, clients and admin");

    let event_loop = EventLoop {
        raft,
        config,
        storage,
        apply,
        applied_rx,
        persisted_tx,
        persisted_rx,
        client_rx,
        peer_rx,
        peers: Peers::new(link_ctx),
        book,
        view,
        shutdown,
        persist: super::persist::PersistQueue::starting_at(last_pos),
        waiters: Default::default(),
        vote_waiters: HashMap::new(),
        stream_replies: HashMap::new(),
        snapshot_inbox: HashMap::new(),
        latest_snapshot,
        applied_index: applied,
        metrics: crate::metrics::LoopMetrics::new(me),
        ticks_since_publish: 0,
        span,
        election: None,
    };
    Ok(Node {
        event_loop,
        local_addr,
        server,
    })
}

/// One span per RPC, with a process-unique id; the services record the read
/// consistency into it.
fn request_span(req: &tonic::codegen::http::Request<()>) -> tracing::Span {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug_span!(
        "rpc",
        id,
        method = %req.uri().path(),
        consistency = tracing::field::Empty
    )
}

/// Where received snapshots are staged: `<data_dir>/snapshot-inbox`. A node on the
/// memory backend keeps nothing durable and may share the default data dir with other
/// in-process nodes, so it stages in a temporary directory of its own instead.
fn staging_dir(config: &crate::config::Config, me: u64) -> std::path::PathBuf {
    match config.storage.backend {
        crate::config::StorageBackend::Memory => std::env::temp_dir().join(format!(
            "dengine-snapshot-inbox-{}-{me}",
            std::process::id()
        )),
        _ => config.node.data_dir.join("snapshot-inbox"),
    }
}
