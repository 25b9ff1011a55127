//! The outbound link against a peer that accepts connections and drops them at once:
//! the link must redial it at the pace of `network.reconnect_backoff_ms_*`, not on
//! every heartbeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::address_book::AddressBook;
use super::peer_link::{LinkContext, Peers};
use crate::config::NetworkConfig;
use crate::core::{Body, Message};
use crate::storage::MemStateMachine;

/// Accepts connections on a local port and closes each at once; counts them.
async fn dropping_peer() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            drop(socket);
        }
    });
    (addr, accepted)
}

/// Heartbeats to peer 2 every `every` for `total`; the connections the peer saw.
async fn connections_while_heartbeating(
    net: NetworkConfig,
    every: Duration,
    total: Duration,
) -> usize {
    let (addr, accepted) = dropping_peer().await;
    let (inbound, _inbound_rx) = mpsc::channel(16);
    let mut peers = Peers::new(LinkContext {
        me: 1,
        cluster_id: 1,
        book: AddressBook::new([(2, addr)]),
        net,
        inbound,
        sm: Arc::new(MemStateMachine::new()),
        snapshot_chunk_bytes: 1024,
    });
    let started = Instant::now();
    while started.elapsed() < total {
        let hb = Body::Heartbeat {
            commit: 0,
            read_ctx: 0,
        };
        peers.send(2, Message { term: 1, body: hb });
        tokio::time::sleep(every).await;
    }
    accepted.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_is_redialled_with_backoff_not_per_heartbeat() {
    let net = NetworkConfig {
        reconnect_backoff_ms_min: 20,
        reconnect_backoff_ms_max: 200,
        ..NetworkConfig::default()
    };
    // 150 heartbeats in 750 ms. Attempts may start at 0, 20, 60, 140, 300, 500 and
    // 700 ms: 7 dials (a dial may take one more connection inside the channel).
    let n =
        connections_while_heartbeating(net, Duration::from_millis(5), Duration::from_millis(750))
            .await;
    assert!(n >= 2, "the link gave up redialling: {n} connections");
    assert!(n <= 20, "{n} connections for 150 heartbeats: no backoff");
}

/// The measure above can fail: without a backoff the same peer sees a dial per
/// heartbeat or so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_backoff_the_same_peer_is_redialled_per_heartbeat() {
    let net = NetworkConfig {
        reconnect_backoff_ms_min: 0,
        reconnect_backoff_ms_max: 0,
        ..NetworkConfig::default()
    };
    let n =
        connections_while_heartbeating(net, Duration::from_millis(5), Duration::from_millis(750))
            .await;
    assert!(n > 40, "only {n} connections without backoff");
}
