//! The Quick Start of d-engine's documentation, compiled verbatim (between the markers
//! below) so it can never drift from the API.
//!
//! Run it: `cargo run -p d-engine --example quick_start` starts a single node on
//! 127.0.0.1:9081 (or as `CONFIG_PATH` says) with its data under `./db`; Ctrl-C stops it.
//! With `QUICK_START_SELF_TEST=1` it also writes and reads a key through the client,
//! prints the value and shuts itself down: `engine/tests/quick_start.rs` runs it so.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use d_engine::client::{Client, ClientConfig, ReadConsistency};
use d_engine::config::Config;
use d_engine::{FileStateMachine, FileStorageEngine, NodeBuilder};
use tokio::sync::watch;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), d_engine::Error> {
    let path = PathBuf::from(std::env::var("QUICK_START_DIR").unwrap_or_else(|_| "./db".into()));
    let (graceful_tx, graceful_rx) = watch::channel(());
    tokio::spawn(async move {
        if std::env::var_os("QUICK_START_SELF_TEST").is_some() {
            self_test().await;
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = graceful_tx.send(());
    });

    // ---- Quick Start, verbatim ----
    let node = NodeBuilder::new(None, graceful_rx.clone())
        .storage_engine(Arc::new(
            FileStorageEngine::new(path.join("storage")).unwrap(),
        ))
        .state_machine(Arc::new(
            FileStateMachine::new(path.join("state_machine"), 1)
                .await
                .unwrap(),
        ))
        .build()
        .start_rpc_server()
        .await
        .ready()
        .expect("start node failed.");
    node.run().await
    // ---- end of the Quick Start ----
}

/// Writes and reads one key through the client, against the address the node's
/// configuration names.
async fn self_test() {
    let config = Config::load(None).expect("config");
    let client = Client::connect(
        ClientConfig::new([config.node.listen_addr]).deadline(Duration::from_secs(10)),
    )
    .expect("client");
    client.put("quick", "start").await.expect("put");
    let value = client
        .get("quick", ReadConsistency::Linearizable)
        .await
        .expect("get");
    println!(
        "quick = {}",
        String::from_utf8_lossy(&value.expect("the key was written"))
    );
}
