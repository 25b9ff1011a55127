//! d-engine's wire protocol: the `.proto` files under `proto/dengine/v1/` compiled
//! into prost messages and tonic clients and servers.
//!
//! - [`v1::raft_peer_server`] / [`v1::raft_peer_client`]: the peer service (votes,
//!   the replication stream, snapshot streaming, timeout-now).
//! - [`v1::kv_server`] / [`v1::kv_client`]: the client key-value service.
//! - [`v1::cluster_admin_server`] / [`v1::cluster_admin_client`]: membership,
//!   leadership transfer, snapshots and status.
//!
//! The size bounds the `.proto` comments name are the constants in [`limits`].

pub mod limits;

/// Version 1 of the protocol (protobuf package `dengine.v1`).
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("dengine.v1");
}

/// A wire-compatible subset of etcd's v3 API (KV, Watch and Maintenance.Status), so the
/// bench and chaos tools can drive etcd beside d-engine.
pub mod etcd {
    pub mod mvccpb {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("etcdserverpb");
    }
}

pub use limits::{DecodeError, decode_bounded};

/// The encoded `FileDescriptorSet` of every `.proto` file, for gRPC reflection and for
/// tests that enumerate the messages.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dengine_v1_descriptor.bin"));
