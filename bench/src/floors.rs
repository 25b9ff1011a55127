//! Latency floors, measured on this machine in the same run as the workload, so a
//! single-client write latency can be judged against what the hardware allows:
//!
//! - a raw `write` + `fdatasync` loop writing small records one after the other into a
//!   preallocated file on the data disk (what a durable log append costs at least);
//! - a no-op unary gRPC call to a tiny tonic server on 127.0.0.1 (what one client round
//!   trip through the same stack costs at least).

use std::fs::OpenOptions;
use std::io::{Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use d_engine_proto::etcd::etcdserverpb::maintenance_client::MaintenanceClient;
use d_engine_proto::etcd::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use d_engine_proto::etcd::etcdserverpb::{StatusRequest, StatusResponse};
use hdrhistogram::Histogram;

use crate::output::new_histogram;
use crate::summary::{Floors, LatencyStats};

/// Bounds of each floor loop: whichever comes first.
pub const FLOOR_ITERATIONS_MAX: u64 = 2_000;
pub const FLOOR_TIME_MAX: Duration = Duration::from_secs(2);

/// Measures both floors. `disk_dir` must be on the disk the nodes write to.
pub async fn measure(disk_dir: &Path, record_bytes: usize) -> Result<Floors, String> {
    let dir = disk_dir.to_path_buf();
    let fsync = tokio::task::spawn_blocking(move || fdatasync_loop(&dir, record_bytes))
        .await
        .map_err(|e| format!("fdatasync loop panicked: {e}"))?
        .map_err(|e| format!("fdatasync loop in {}: {e}", disk_dir.display()))?;
    let ping = grpc_ping_loop().await?;
    let fdatasync_us = LatencyStats::from_histogram(&fsync);
    let grpc_ping_us = LatencyStats::from_histogram(&ping);
    Ok(Floors {
        disk_dir: disk_dir.display().to_string(),
        fdatasync_bytes: record_bytes,
        write_floor_p50_us: fdatasync_us.p50 + grpc_ping_us.p50,
        replicated_write_floor_p50_us: fdatasync_us.p50 + 2 * grpc_ping_us.p50,
        fdatasync_us,
        grpc_ping_us,
    })
}

/// Writes `record_bytes` after the previous record and calls `fdatasync`, repeatedly,
/// in a preallocated scratch file that is removed afterwards.
pub fn fdatasync_loop(dir: &Path, record_bytes: usize) -> std::io::Result<Histogram<u64>> {
    std::fs::create_dir_all(dir)?;
    let path: PathBuf = dir.join(format!(".bench-fdatasync-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let record = vec![0x5au8; record_bytes.max(1)];
        // Preallocate, as log segments are (etcd's WAL, d-engine's segments): an
        // fdatasync that must also commit a new file size costs a journal commit more
        // and would overstate the floor.
        // Zeros written, not `set_len`: a sparse file would allocate blocks on write.
        let prealloc = record.len() * FLOOR_ITERATIONS_MAX as usize;
        f.write_all(&vec![0u8; prealloc])?;
        f.sync_all()?;
        f.seek(std::io::SeekFrom::Start(0))?;
        let mut h = new_histogram();
        let start = Instant::now();
        for _ in 0..FLOOR_ITERATIONS_MAX {
            let t = Instant::now();
            f.write_all(&record)?;
            f.sync_data()?;
            h.saturating_record((t.elapsed().as_micros() as u64).max(1));
            if start.elapsed() >= FLOOR_TIME_MAX {
                break;
            }
        }
        Ok(h)
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Answers `Status` with an empty reply: the cheapest unary call we have a service for.
struct Ping;

#[tonic::async_trait]
impl Maintenance for Ping {
    async fn status(
        &self,
        _req: tonic::Request<StatusRequest>,
    ) -> Result<tonic::Response<StatusResponse>, tonic::Status> {
        Ok(tonic::Response::new(StatusResponse::default()))
    }
}

/// Serves [`Ping`] on 127.0.0.1 (a free port) until the returned sender is dropped.
pub async fn start_ping_server() -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind the ping server: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MaintenanceServer::new(Ping))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            }),
    );
    Ok((addr, tx))
}

/// Round trips of a no-op unary call to an in-process server over 127.0.0.1.
pub async fn grpc_ping_loop() -> Result<Histogram<u64>, String> {
    let (addr, shutdown) = start_ping_server().await?;
    let url = format!("http://{addr}");
    let channel = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("connect to the ping server: {e}"))?;
    let mut client = MaintenanceClient::new(channel);
    // Warm the connection (HTTP/2 settings, first-call allocations) before timing.
    for _ in 0..20 {
        client
            .status(StatusRequest {})
            .await
            .map_err(|e| format!("ping: {e}"))?;
    }
    let mut h = new_histogram();
    let start = Instant::now();
    for _ in 0..FLOOR_ITERATIONS_MAX {
        let t = Instant::now();
        client
            .status(StatusRequest {})
            .await
            .map_err(|e| format!("ping: {e}"))?;
        h.saturating_record((t.elapsed().as_micros() as u64).max(1));
        if start.elapsed() >= FLOOR_TIME_MAX {
            break;
        }
    }
    drop(shutdown);
    Ok(h)
}
