//! Completion reporting for queued storage writes, without depending on an async runtime.
//!
//! Every queued write takes a [`Callback`]: a boxed `FnOnce` that the storage thread calls
//! exactly once, after the write is durable (or failed). The node runtime passes a
//! closure that forwards the result into its own event channel (for a tokio loop: an
//! unbounded or `try_send` channel sender), so the event loop never blocks on disk.
//! A callback must be quick and must not block: it runs on the storage thread, between
//! group commits.
//!
//! For callers who prefer a handle, [`pending`] makes a callback/receiver pair:
//! [`Pending`] can be waited on from a plain thread ([`Pending::wait`]) or `.await`ed
//! from any executor (it implements `Future`). A tokio oneshot would do the same job but
//! would tie the storage traits to tokio; this ~100-line slot keeps the crate's storage
//! layer runtime-free.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::error::{Result, StorageError};

/// Called once with the outcome of a queued write, on the storage thread.
pub type Callback<T> = Box<dyn FnOnce(Result<T>) + Send + 'static>;

struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

struct SlotState<T> {
    value: Option<Result<T>>,
    waker: Option<Waker>,
}

/// Sets the slot; if dropped without a value (the storage thread died, the request was
/// discarded), completes with [`StorageError::Closed`] so no waiter hangs forever.
struct Completer<T>(Option<Arc<Slot<T>>>);

impl<T> Completer<T> {
    fn complete(&mut self, value: Result<T>) {
        if let Some(slot) = self.0.take() {
            let waker = {
                let mut st = slot.state.lock().unwrap_or_else(|e| e.into_inner());
                st.value = Some(value);
                st.waker.take()
            };
            slot.ready.notify_all();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.complete(Err(StorageError::Closed));
    }
}

/// The receiving half of [`pending`].
pub struct Pending<T>(Arc<Slot<T>>);

/// Makes a callback and the handle that receives what it is called with.
pub fn pending<T: Send + 'static>() -> (Callback<T>, Pending<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            value: None,
            waker: None,
        }),
        ready: Condvar::new(),
    });
    let mut completer = Completer(Some(slot.clone()));
    let cb: Callback<T> = Box::new(move |r| completer.complete(r));
    (cb, Pending(slot))
}

impl<T> Pending<T> {
    /// Blocks the calling thread until the write completes. Not for the event loop.
    pub fn wait(self) -> Result<T> {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = st.value.take() {
                return v;
            }
            st = self.0.ready.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`Pending::wait`] with a deadline; gives the handle back on timeout.
    pub fn wait_timeout(self, timeout: Duration) -> std::result::Result<Result<T>, Self> {
        let value = {
            let st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
            let (mut st, _) = self
                .0
                .ready
                .wait_timeout_while(st, timeout, |s| s.value.is_none())
                .unwrap_or_else(|e| e.into_inner());
            st.value.take()
        };
        value.ok_or(self)
    }

    /// The outcome if the write has completed, without blocking.
    pub fn try_take(&self) -> Option<Result<T>> {
        self.0
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .value
            .take()
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_crosses_threads() {
        let (cb, p) = pending::<u64>();
        std::thread::spawn(move || cb(Ok(42)));
        assert_eq!(p.wait().unwrap(), 42);
    }

    #[test]
    fn dropped_callback_reports_closed() {
        let (cb, p) = pending::<u64>();
        drop(cb);
        assert!(matches!(p.wait(), Err(StorageError::Closed)));
    }

    #[test]
    fn timeout_returns_the_handle() {
        let (cb, p) = pending::<u64>();
        let p = p.wait_timeout(Duration::from_millis(1)).unwrap_err();
        assert!(p.try_take().is_none());
        cb(Ok(1));
        assert_eq!(p.wait().unwrap(), 1);
    }
}
