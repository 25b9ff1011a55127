//! gRPC channels to peers, with the keepalive and timeouts from the config.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::config::NetworkConfig;

/// A lazily connecting channel to `addr` (`host:port`). Lazy, so an unreachable peer
/// costs nothing until used, and tonic reconnects by itself after a failure.
pub(crate) fn peer_channel(addr: &str, net: &NetworkConfig) -> Option<Channel> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .ok()?
        .connect_timeout(Duration::from_millis(net.connect_timeout_ms))
        .http2_keep_alive_interval(Duration::from_millis(net.keepalive_interval_ms))
        .keep_alive_timeout(Duration::from_millis(net.keepalive_timeout_ms))
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    Some(endpoint.connect_lazy())
}
