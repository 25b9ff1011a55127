//! `dengine serve`: run one node as a process.

use std::path::PathBuf;

use anyhow::Context;
use d_engine::NodeBuilder;
use d_engine::config::Config;
use tokio::sync::watch;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The node's TOML configuration (see engine/config/example.toml). Without it:
    /// $CONFIG_PATH, else the defaults (a single node on 127.0.0.1:9081).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (after environment overrides) and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    let config = Config::load(args.config.as_deref()).context("loading the configuration")?;
    if args.print_config {
        print!("{}", config.to_toml_string());
        return Ok(0);
    }
    crate::logging::init(&config.logging);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(());
        tokio::spawn(async move {
            crate::signals::terminated().await;
            tracing::info!("signal received; shutting down");
            let _ = stop_tx.send(());
        });
        let node = NodeBuilder::from_config(config, stop_rx)
            .build()
            .start_rpc_server()
            .await
            .ready()
            .context("starting the node")?;
        node.run().await.context("the node stopped on an error")?;
        Ok(0)
    })
}
