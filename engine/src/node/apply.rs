//! The apply worker: one thread that owns every call into the state machine, in order.
//!
//! Applying entries, serving reads, building and installing snapshots all go through
//! this one queue, so a read queued after an apply sees it, and a snapshot is never
//! built or installed halfway through a batch. The event loop never blocks on the
//! state machine.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{error, warn};

use super::request::{InstallReply, ReadAnswer, ReadDone, ReadQuery, Reply, RequestError};
use crate::core::{Entry, LogIndex, SnapshotMeta, Term};
use crate::storage::SNAPSHOT_CHUNK_BYTES;
use crate::storage::snapshot_staging::read_chunks;
use crate::storage::{StateMachine, StorageEngine};

pub(crate) enum ApplyJob {
    Entries(Vec<Entry>),
    Read {
        query: ReadQuery,
        reply: Reply<ReadDone>,
    },
    BuildSnapshot,
    /// Replace the state with a received snapshot staged at `path`, then compact the
    /// log to it; answer `done` once both are durable.
    Install {
        meta: SnapshotMeta,
        path: std::path::PathBuf,
        done: InstallReply,
    },
}

/// What the worker reports back to the event loop.
pub(crate) enum Applied {
    Entries {
        items: Vec<(LogIndex, Term, Bytes)>,
    },
    SnapshotBuilt(SnapshotMeta),
    /// Building the snapshot failed; nothing changed.
    SnapshotFailed(crate::storage::StorageError),
    /// Installing the received snapshot failed; the old state is in place.
    InstallFailed(SnapshotMeta),
    SnapshotInstalled(SnapshotMeta),
    /// The state machine or storage failed: the node cannot go on safely.
    Fatal(String),
}

pub(crate) fn spawn(
    node: u64,
    sm: Arc<dyn StateMachine>,
    storage: Arc<dyn StorageEngine>,
    out: mpsc::UnboundedSender<Applied>,
) -> std_mpsc::Sender<ApplyJob> {
    // The channel type has no bound of its own; its content is bounded upstream: the
    // core hands out at most `raft.apply_entries_max` entries (`apply_bytes_max`
    // bytes) beyond what this thread reported applied, reads are bounded by the
    // pending-read limit, and there is one snapshot build or install at a time.
    let (tx, rx) = std_mpsc::channel::<ApplyJob>();
    let m = ApplyMetrics::new(node);
    std::thread::Builder::new()
        .name("dengine-apply".into())
        .spawn(move || {
            for job in rx {
                if let Err(e) = run_job(&*sm, &*storage, job, &out, &m) {
                    error!(error = %e, "state machine failed");
                    let _ = out.send(Applied::Fatal(e));
                    return;
                }
            }
        })
        .expect("spawn the apply thread");
    tx
}

struct ApplyMetrics {
    apply_seconds: metrics::Histogram,
    apply_entries: metrics::Histogram,
    snapshot_build_seconds: metrics::Histogram,
}

impl ApplyMetrics {
    fn new(node: u64) -> Self {
        let n = node.to_string();
        ApplyMetrics {
            apply_seconds: metrics::histogram!(crate::metrics::APPLY_SECONDS, "node" => n.clone()),
            apply_entries: metrics::histogram!(crate::metrics::APPLY_BATCH_ENTRIES, "node" => n.clone()),
            snapshot_build_seconds: metrics::histogram!(crate::metrics::SNAPSHOT_BUILD_SECONDS, "node" => n),
        }
    }
}

fn run_job(
    sm: &dyn StateMachine,
    storage: &dyn StorageEngine,
    job: ApplyJob,
    out: &mpsc::UnboundedSender<Applied>,
    m: &ApplyMetrics,
) -> Result<(), String> {
    match job {
        ApplyJob::Entries(entries) => {
            let started = std::time::Instant::now();
            let results = sm.apply(&entries).map_err(|e| format!("apply: {e}"))?;
            m.apply_seconds.record(started.elapsed().as_secs_f64());
            m.apply_entries.record(entries.len() as f64);
            let items = entries
                .iter()
                .zip(results)
                .map(|(e, r)| (e.index, e.term, r))
                .collect();
            let _ = out.send(Applied::Entries { items });
        }
        ApplyJob::Read { query, reply } => {
            let _ = reply.send(serve_read(sm, query));
        }
        ApplyJob::BuildSnapshot => {
            let started = std::time::Instant::now();
            // Building only reads the state: a failure (a full disk, typically)
            // leaves it whole, so the node goes on and the core asks again later.
            match sm.build_snapshot() {
                Ok(snap) => {
                    m.snapshot_build_seconds
                        .record(started.elapsed().as_secs_f64());
                    let _ = out.send(Applied::SnapshotBuilt(snap.meta));
                }
                Err(e) => {
                    warn!(error = %e, "snapshot build failed; the state machine is unchanged");
                    let _ = out.send(Applied::SnapshotFailed(e));
                }
            }
        }
        ApplyJob::Install { meta, path, done } => {
            let installed = read_chunks(&path, SNAPSHOT_CHUNK_BYTES)
                .and_then(|mut chunks| sm.install_snapshot(&meta, &mut chunks));
            let _ = std::fs::remove_file(&path);
            if let Err(e) = installed {
                // The trait's contract: a failed install leaves the old state whole.
                warn!(error = %e, index = meta.last_index, "snapshot install failed; the old state is kept");
                let _ = done.send(Err(format!("install failed: {e}")));
                let _ = out.send(Applied::InstallFailed(meta));
                return Ok(());
            }
            // A log that cannot be compacted to the new state is a storage failure.
            storage
                .purge_prefix(meta.clone())
                .wait()
                .map_err(|e| format!("compact log to snapshot: {e}"))?;
            let _ = done.send(Ok(()));
            let _ = out.send(Applied::SnapshotInstalled(meta));
        }
    }
    Ok(())
}

fn serve_read(sm: &dyn StateMachine, query: ReadQuery) -> Result<ReadDone, RequestError> {
    let internal = |e: crate::storage::StorageError| RequestError::Internal(e.to_string());
    let applied = sm.last_applied();
    let answer = match query {
        ReadQuery::Get(key) => ReadAnswer::Value(sm.get(&key).map_err(internal)?),
        ReadQuery::Scan {
            prefix: Some(p),
            limit,
            ..
        } => ReadAnswer::Items(sm.prefix_scan(&p, limit).map_err(internal)?),
        ReadQuery::Scan {
            start, end, limit, ..
        } => ReadAnswer::Items(sm.range(&start, end.as_deref(), limit).map_err(internal)?),
    };
    Ok((applied, answer))
}
