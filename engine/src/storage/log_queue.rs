//! What the log backends share in front of their writer threads: the request type,
//! the bounded queue (a request that cannot be queued fails at once, `Busy` or
//! `Closed`), and the thread's lifetime (closing the queue lets the writer finish what
//! was queued, then exit; dropping the engine waits for it).

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use super::completion::Callback;
use super::error::{Result, StorageError};
use crate::core::types::{Entry, HardState, LogIndex, SnapshotMeta};

/// A queued request for a log writer thread (see `StorageEngine` for each one's
/// contract).
pub(crate) enum LogOp {
    Append {
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        done: Callback<LogIndex>,
    },
    Truncate {
        from: LogIndex,
        done: Callback<()>,
    },
    Purge {
        snapshot: SnapshotMeta,
        done: Callback<()>,
    },
}

impl LogOp {
    /// Reports `err` to the request's callback.
    pub fn fail(self, err: StorageError) {
        match self {
            LogOp::Append { done, .. } => done(Err(err)),
            LogOp::Truncate { done, .. } | LogOp::Purge { done, .. } => done(Err(err)),
        }
    }
}

/// The bounded queue to a writer thread, and the thread.
pub(crate) struct LogQueue {
    tx: Option<SyncSender<LogOp>>,
    writer: Option<JoinHandle<()>>,
    capacity: usize,
}

impl LogQueue {
    /// Starts thread `name` running `body` on a queue of `capacity` requests.
    /// `dir` names the store in the error if no thread can be started.
    pub fn spawn(
        name: &str,
        capacity: usize,
        dir: &Path,
        body: impl FnOnce(Receiver<LogOp>) + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let writer = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(rx))
            .map_err(|e| StorageError::io("spawning the log writer for", dir, e))?;
        Ok(LogQueue {
            tx: Some(tx),
            writer: Some(writer),
            capacity,
        })
    }

    /// Queues `op`, or fails it at once: `Busy` when the queue is full, `Closed` when
    /// the writer is gone.
    pub fn submit(&self, op: LogOp) {
        let Some(tx) = &self.tx else {
            return op.fail(StorageError::Closed);
        };
        match tx.try_send(op) {
            Ok(()) => {}
            Err(TrySendError::Full(op)) => op.fail(StorageError::Busy {
                capacity: self.capacity,
            }),
            Err(TrySendError::Disconnected(op)) => op.fail(StorageError::Closed),
        }
    }

    /// Closes the queue and waits for the writer to finish what was queued.
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(h) = self.writer.take() {
            // Dropped from a completion callback (on the writer itself): it exits on
            // its own once the queue is drained; joining would deadlock.
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for LogQueue {
    fn drop(&mut self) {
        self.close();
    }
}
