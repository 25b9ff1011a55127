//! `--cluster local:N`: fresh local clusters started with the chaos crate's launcher
//! (`d_engine_chaos::cluster::LocalCluster`: N processes on 127.0.0.1, own ports and
//! data dirs under the run directory, fsync on), one per target, stopped at the end.
//! In a compare all clusters run for the whole command, so the targets can take turns;
//! an idle cluster only exchanges heartbeats.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use d_engine_chaos::cluster::{ClusterSpec, LocalCluster, TargetKind};

use crate::run::{MemorySource, TargetSpec};
use crate::summary::NodeMemory;

/// Parses `local:N`.
pub fn parse_local(s: &str) -> anyhow::Result<usize> {
    let n = s
        .strip_prefix("local:")
        .and_then(|n| n.parse::<usize>().ok())
        .with_context(|| format!("--cluster {s:?}: expected local:N"))?;
    if n == 0 {
        bail!("--cluster local:0: a cluster needs at least one node");
    }
    Ok(n)
}

/// The running clusters of a command, by target name.
#[derive(Clone, Default)]
pub struct LocalClusters {
    clusters: Arc<Mutex<Vec<(String, LocalCluster)>>>,
}

impl LocalClusters {
    /// Starts an `nodes`-node cluster for `target` (`etcd` or `dengine`) under
    /// `dir/cluster-<target>` and returns the target with its endpoints. `extra`:
    /// config keys for every node (see [`ClusterSpec::extra`]).
    pub async fn start(
        &self,
        target: &str,
        nodes: usize,
        dir: &Path,
        extra: &[(String, String)],
    ) -> anyhow::Result<TargetSpec> {
        let kind = TargetKind::parse(target)
            .with_context(|| format!("no local cluster for target {target}"))?;
        let mut spec = ClusterSpec::new(kind, nodes, dir.join(format!("cluster-{target}")));
        spec.extra = extra.to_vec();
        eprintln!(
            "starting a local {target} cluster of {nodes} nodes in {}",
            spec.dir.display()
        );
        let cluster = LocalCluster::start(spec)
            .await
            .with_context(|| format!("start the local {target} cluster"))?;
        let endpoints = cluster.client_endpoints();
        self.clusters
            .lock()
            .expect("clusters lock")
            .push((target.to_string(), cluster));
        Ok(match kind {
            TargetKind::Etcd => TargetSpec::Etcd { endpoints },
            TargetKind::Dengine => TargetSpec::Dengine { endpoints },
        })
    }

    /// Peak RSS per node of the target's cluster, from the launcher's sampler.
    pub fn memory(&self) -> MemorySource {
        let clusters = self.clusters.clone();
        Arc::new(move |target: &str| {
            let clusters = clusters.lock().expect("clusters lock");
            let (_, c) = clusters.iter().find(|(t, _)| t == target)?;
            let endpoints = c.client_endpoints();
            Some(
                (0..c.len())
                    .map(|i| NodeMemory {
                        endpoint: endpoints[i].clone(),
                        peak_rss_kib: Some(c.peak_rss_kib(i)).filter(|k| *k > 0),
                    })
                    .collect(),
            )
        })
    }

    /// Stops every cluster (killing its processes).
    pub async fn stop(&self) {
        let clusters = std::mem::take(&mut *self.clusters.lock().expect("clusters lock"));
        for (_, mut c) in clusters {
            c.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_n_is_parsed_and_bad_forms_are_refused() {
        assert_eq!(parse_local("local:3").unwrap(), 3);
        assert!(parse_local("local:0").is_err());
        assert!(parse_local("remote:3").is_err());
        assert!(parse_local("local:x").is_err());
    }
}
