//! d-engine: a strongly consistent Raft consensus engine.
//!
//! The crate is split the way data flows through it:
//!
//! - [`core`]: the pure Raft state machine. Events in (messages, ticks, proposals,
//!   "storage persisted up to N"), actions out (persist, send, apply, respond). No I/O,
//!   no clock, no global randomness: it is driven by the runtime in production and by
//!   the deterministic simulator in tests.

pub mod core;
