//! Compiles proto/dengine/v1/*.proto with protox (a pure-Rust protobuf compiler), so
//! building needs no system `protoc`. The file descriptor set is kept too, for tests
//! that enumerate every message and for gRPC reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/dengine/v1/common.proto",
        "proto/dengine/v1/raft.proto",
        "proto/dengine/v1/client.proto",
        "proto/dengine/v1/admin.proto",
        // A wire-compatible subset of etcd's v3 API, for the comparison tools.
        "proto/etcd/kv.proto",
        "proto/etcd/rpc.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("dengine_v1_descriptor.bin"), fds.encode_to_vec())?;
    // `bytes(".")`: every bytes field is a `bytes::Bytes`, so entries and values are
    // shared with the engine without copying.
    tonic_prost_build::configure()
        .bytes(".")
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
