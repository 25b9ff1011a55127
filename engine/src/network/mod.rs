//! The network layer: tonic services for peers, clients and operators, and the
//! outbound peer links. It converts between the wire protocol and the core's types
//! and checks every incoming message before Raft sees it.

pub mod address_book;
pub(crate) mod admin_service;
mod backoff;
mod channel;
pub(crate) mod client_context;
pub mod convert;
pub(crate) mod kv_service;
pub(crate) mod peer_link;
#[cfg(test)]
mod peer_link_tests;
pub(crate) mod peer_service;
pub(crate) mod snapshot_sender;

pub use address_book::{AddressBook, RESERVED_KEY_PREFIX};
pub use client_context::LeaderView;
pub use peer_service::RefusedCounters;
