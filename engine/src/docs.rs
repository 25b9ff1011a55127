//! Guides, as rustdoc.
//!
//! # Running a node
//!
//! A node is configured by a TOML file (every key is listed with its default in
//! `engine/config/example.toml`), by `DENGINE__SECTION__KEY` environment variables,
//! or by a [`Config`](crate::config::Config) value passed to
//! [`NodeBuilder::from_config`](crate::NodeBuilder::from_config). `dengine serve
//! --config FILE` runs one node as a process.
//!
//! # Consistency of reads
//!
//! - `Linearizable` (the default): the leader confirms it still leads with one round of
//!   heartbeats to a quorum (ReadIndex), then serves the read once its state machine
//!   has applied everything committed when the read arrived.
//! - `Lease`: served by the leader without that round while its lease holds: the lease
//!   lasts the minimum election timeout minus `read.clock_drift_margin_ms` from the
//!   last confirmed round. Correct as long as clocks drift less than the margin. Off
//!   unless `read.lease_enabled`; while off, a lease read is not refused but served
//!   as a linearizable one.
//! - `Serializable`: served by any node from its own state machine; may be stale.
//!
//! # Writes and retries
//!
//! A write is acknowledged only once its entry is durable on a quorum and applied. A
//! write carrying a client session is applied at most once however often it is retried
//! (the Rust client does this for you).
//!
//! # Membership
//!
//! Add learners (they receive the log without voting), promote them once caught up,
//! remove nodes: each request may name several nodes and goes through joint consensus.
