//! The Rust client of a d-engine cluster.
//!
//! A [`Client`] is given some endpoints of one cluster and finds the leader itself: a
//! node that is not the leader answers NOT_LEADER with the leader's address, and the
//! client goes there. Failed attempts are retried with exponential backoff until the
//! request's deadline ([`ClientConfig::deadline`]).
//!
//! Writes are safe to retry. Each write carries a client session (client id, lane and
//! sequence number) that the cluster stores in its replicated state, so an attempt that
//! was applied but whose reply was lost is answered from that record on retry instead
//! of being applied again. A process has one client id; each write it has in flight at
//! once uses a lane of its own (the client keeps a pool of them, as many as its peak
//! concurrency), which is what lets the cluster keep just the last sequence number and
//! reply per lane.
//!
//! Concurrent calls to the same node share `Batch` RPCs ([`Batcher`],
//! [`ClientConfig::batch_in_flight`]): each is still its own operation, validated,
//! proposed and answered on its own, so batching changes costs and nothing else.
//!
//! Every error says whether the operation may have taken effect
//! ([`ClientError::outcome_unknown`]): a history recorder writes those as `info`, and
//! definite failures as `fail`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), d_engine::client::ClientError> {
//! use d_engine::client::{Client, ClientConfig, ReadConsistency};
//! let client = Client::connect(ClientConfig::new(["127.0.0.1:9081", "127.0.0.1:9082"]))?;
//! client.put("greeting", "hello").await?;
//! let value = client.get("greeting", ReadConsistency::Linearizable).await?;
//! assert_eq!(value.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```

mod admin;
mod batch;
mod config;
mod error;
mod kv;
mod retry;
mod session;

pub use admin::{AdminClient, NodeStatus};
pub use batch::{BATCH_OP_BYTES_MAX, BatchStats, Batcher};
pub use config::ClientConfig;
pub use error::ClientError;
pub use kv::{CasOutcome, Client, ReadConsistency, ScanPage, WriteAck};
