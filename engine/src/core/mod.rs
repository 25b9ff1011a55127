//! The pure Raft core: a deterministic state machine with no I/O.
//!
//! No clock (time is [`Event::Tick`]), no randomness but a seeded [`rng::Rng`], no
//! files, sockets or threads. The runtime (`node/`) in production and the simulator in
//! tests feed it [`Event`]s and perform the [`Action`]s it emits, in order.
//!
//! # Driver loop
//!
//! ```ignore
//! let mut raft = Raft::new(id, RaftConfig::default(), seed, restored_from_storage)?;
//! loop {
//!     let event = next_event();            // tick timer, peer message, client request,
//!     raft.step(event);                    // storage "persisted up to", "applied up to"…
//!     for action in raft.take_actions() {  // in order:
//!         match action {
//!             Action::PersistHardState(_) | Action::PersistEntries { .. } => storage.write(..),
//!             Action::Send { when: SendWhen::Now, .. } => network.send(..),
//!             Action::Send { when: SendWhen::AfterPersist, .. } => hold_until_synced(..),
//!             Action::Apply { entries } => state_machine.apply(entries),  // then Event::Applied
//!             _ => ..,
//!         }
//!     }
//! }
//! ```
//!
//! # Events → actions
//!
//! ```text
//!  Tick ───────────────┬─ follower timeout ─► Send(PreVote) ─► … ─► PersistHardState
//!                      │                                           Send(Vote, AfterPersist)
//!                      └─ leader ───────────► Send(Heartbeat{read ctx}); check quorum
//!  Propose ─(leader)──────────────────────► PersistEntries + Send(Append, Now)  (parallel)
//!                                             ProposeResult(index, term)
//!  Message(Append) ─(follower)────────────► PersistEntries{truncate_from?}
//!                                             Send(AppendResp, AfterPersist)
//!  Message(AppendResp) ─(leader)──────────► more Send(Append); commit ─► Apply
//!  Persisted{index, term} ────────────────► leader counts itself; commit ─► Apply
//!  Read ─► heartbeat round ─► quorum acks ─► ReadResult (once applied ≥ read index)
//!  Applied{index} ────────────────────────► ReadResult; TakeSnapshot (policy)
//!  SnapshotBuilt ─────────────────────────► SaveSnapshotMeta, CompactLog
//!  Message(InstallSnapshot) ──────────────► InstallSnapshot ─► SnapshotInstalled ─►
//!                                             Send(AppendResp)
//!  ChangeMembership ──────────────────────► PersistEntries(Config C_old,new) … C_new
//!  TransferLeader ────────────────────────► Send(Append…) ─► Send(TimeoutNow)
//! ```
//!
//! # Design decisions
//!
//! - **The log lives in memory** ([`log::RaftLog`]) from the compaction point to the
//!   last index; storage is the durable copy, written when the core emits a persist
//!   action. On restart the runtime loads hard state, snapshot meta and entries and
//!   passes them as [`Restored`]. Compaction keeps a trailing window
//!   (`compaction_trailing_entries`) behind each snapshot, bounding memory.
//! - **Durability ordering.** Persist actions must be performed in order. A message sent
//!   `AfterPersist` may leave only once every persist action emitted before it is
//!   durable: vote grants and a candidate's vote requests (the vote and term are
//!   durable first), follower acknowledgements (a follower acknowledges only durable
//!   entries). The leader sends appends `Now`, while its own write is in flight, and
//!   counts itself towards a quorum only after [`Event::Persisted`].
//! - **Commit rule.** Only entries of the leader's own term are committed by counting
//!   replicas (Raft Figure 8); each new leader appends a no-op.
//! - **Apply** hands out entries that are committed *and* locally durable.
//! - **Reads.** `Linearizable` = ReadIndex (one heartbeat quorum round confirms a batch),
//!   `Lease` = leader lease of `election_timeout_ticks_min - lease_drift_margin_ticks`
//!   measured from the start of a confirmed round (requires `check_quorum`, whose
//!   stickiness makes followers refuse to elect anyone else during that time; a node
//!   that restarts refuses votes for one election timeout for the same reason),
//!   `Serializable` = local applied index.
//! - **Snapshots are metadata** to the core; the runtime builds, stores and streams
//!   the data, chunked by the network layer.
//! - **Client sessions**: see [`session`]; the apply layer admits each `(client, seq)`
//!   at most once.
//! - **Hostile or corrupt peer input** is refused, never a panic (`refusal.rs`): no term
//!   or index of `u64::MAX` (so `+ 1` never overflows), entries consecutive after
//!   `prev_index`, one leader per term, answers within the leader's log. Each refusal
//!   is ignored and counted in [`Raft::refusals`].
//! - **Membership** changes by joint consensus (`membership.rs`): one request may add,
//!   promote and remove several nodes; C_old,new is followed by C_new automatically; a
//!   leader outside C_new steps down once it commits. Learners are promoted when
//!   `learner_promotion` holds (on request, or on their own with
//!   `learner_auto_promote`).
//!
//! # Testing
//!
//! - Unit tests (`core/tests.rs`) assert the exact action lists of the main transitions.
//! - `engine/tests/sim.rs`: the deterministic simulator (`SIM_SEEDS=N`, `SIM_SEED=S`,
//!   `SIM_TRACE=1`), invariants one per file under `engine/tests/sim/invariants/`, and
//!   tests proving that each [`Bugs`] switch is caught.
//! - `engine/tests/scenarios.rs`: scripts in `engine/testdata/*.txt` with golden output
//!   (`REWRITE=1` rewrites it).
//! - `engine/benches/core.rs`: committed entries per second, 3 in-memory nodes.

mod election;
mod follower;
mod membership;
mod read_index;
mod replication;
mod snapshot;
mod transfer;

pub mod action;
pub mod config;
pub mod event;
pub mod inflights;
pub mod log;
pub mod message;
pub mod progress;
pub mod quorum;
pub mod raft;
pub mod refusal;
pub mod rng;
pub mod session;
pub mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_hostile;

pub use action::{Action, MembershipError, ProposeError, ReadError, Role, SendWhen, TransferError};
pub use config::{Bugs, ConfigError, LearnerPromotion, RaftConfig, SnapshotPolicy};
pub use event::{ConfChange, Event, Proposal, ReadConsistency};
pub use message::{Append, AppendResp, Body, Message};
pub use raft::{Raft, Restored};
pub use refusal::{Refusal, Refusals};
pub use session::ClientSessions;
pub use snapshot::SNAPSHOT_RETRY_TIMEOUTS;
pub use types::*;
