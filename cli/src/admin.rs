//! `dengine admin`: membership, leadership transfer and snapshots.

use anyhow::Context;
use d_engine::client::{Client, ClientConfig};

#[derive(clap::Args)]
pub struct AdminArgs {
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:9081")]
    pub endpoints: Vec<String>,
    #[command(subcommand)]
    pub op: AdminOp,
}

#[derive(clap::Subcommand)]
pub enum AdminOp {
    /// Add learners, each as ID=HOST:PORT.
    AddLearner { learners: Vec<String> },
    /// Promote learners to voters (one joint-consensus change).
    Promote { ids: Vec<u64> },
    /// Remove nodes (one joint-consensus change).
    Remove { ids: Vec<u64> },
    /// Hand leadership to a node (0 = the most up-to-date voter).
    TransferLeader { target: u64 },
    /// Take a snapshot on the leader now.
    Snapshot,
}

pub fn run(args: AdminArgs) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = Client::connect(ClientConfig::new(args.endpoints.clone()))?;
        let admin = client.admin();
        let index = match args.op {
            AdminOp::AddLearner { learners } => {
                let parsed = learners
                    .iter()
                    .map(|l| {
                        let (id, addr) = l
                            .split_once('=')
                            .with_context(|| format!("`{l}` is not ID=HOST:PORT"))?;
                        Ok((
                            id.parse::<u64>()
                                .with_context(|| format!("bad node id in `{l}`"))?,
                            addr.to_string(),
                        ))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                admin.add_learners(&parsed).await?
            }
            AdminOp::Promote { ids } => admin.promote(&ids).await?,
            AdminOp::Remove { ids } => admin.remove(&ids).await?,
            AdminOp::TransferLeader { target } => admin.transfer_leader(target).await?,
            AdminOp::Snapshot => admin.snapshot_now().await?,
        };
        println!("OK index={index}");
        Ok(0)
    })
}
