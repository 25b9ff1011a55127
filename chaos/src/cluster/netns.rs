//! `--net netns` (root only): every node in its own network namespace, all on
//! one bridge, with partitions and loss as nftables rules inside the nodes'
//! namespaces. No proxy: peers talk to each other directly.
//!
//! ```text
//!  root ns                 dch-P-S-hub                     dch-P-S-nI (one per node)
//!  dchPxS 10.231.X.254 ─ host0 ─ br0 ─ vI ───────────────── eth0 10.231.X.I:7000
//!  (harness, clients)                                      table inet dch: output drops
//! ```
//!
//! - Every address lives on an interface the harness created: the nodes'
//!   `eth0` inside their namespaces, and one veth end in the root namespace
//!   (`dchPxS`, IPv6 off) through which the harness and its clients reach the
//!   nodes. The /24 is chosen so that no address or route of the root
//!   namespace already mentions it. Nothing is sent anywhere else.
//! - A blocked link `a → b` is `ip daddr B drop` in the output chain of a's
//!   namespace (TCP then loses a's data and acks towards b; a one-way
//!   partition is exactly that). Loss `p` is `ip daddr B numgen random mod
//!   100 < 100p drop`. Delay needs netem, which this kernel lacks: a run with
//!   `--net netns` leaves the delay family out and says so.
//! - Names carry the harness pid (P) and a per-process sequence (S):
//!   namespaces `dch-P-S-hub` and `dch-P-S-nI`, the root link `dchPxS`.
//!   Teardown (`Drop`, so also on panic and when an interrupted run is
//!   dropped) deletes the namespaces and the root link; the nftables tables
//!   live inside the namespaces and go with them. [`sweep`] removes what a
//!   harness that was SIGKILLed left (names whose pid is gone); every new
//!   [`Netns`] runs it first.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

use crate::proxy::LinkFault;

/// The prefix of every name the backend creates.
pub const PREFIX: &str = "dch";
/// The port every node listens on (each has its own address).
pub const PORT: u16 = 7000;
/// Node ids map to the last byte of their address.
const ID_MAX: u64 = 250;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs a command, returns its stdout; an error carries its stderr.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args, None)
}

/// Why the backend cannot run here, if it cannot: not root, or no `ip`/`nft`.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("--net netns needs root (network namespaces, nftables)".into());
    }
    if run("ip", &["-V"], None).is_err() {
        return Some("--net netns needs `ip` (Debian package iproute2)".into());
    }
    if run("nft", &["--version"], None).is_err() {
        return Some("--net netns needs `nft` (Debian package nftables)".into());
    }
    None
}

/// The harness pid in one of our names (`dch-P-…` or `dchPx…`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Names of the network namespaces (`ip netns list`).
pub fn namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Names of the links of the root namespace.
pub fn root_links() -> Vec<String> {
    ip(&["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_owned())
        .collect()
}

/// Our namespaces and root links (current and leftover), for tests and sweeps.
pub fn ours() -> Vec<String> {
    let ns = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{PREFIX}-")));
    let links = root_links()
        .into_iter()
        .filter(|n| n.starts_with(PREFIX) && owner_pid(n).is_some());
    ns.chain(links).collect()
}

/// Deletes namespaces and root links left by harness processes that are gone.
/// Returns what it deleted.
pub fn sweep() -> Vec<String> {
    let mut gone = Vec::new();
    for name in ours() {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let deleted = if name.starts_with(&format!("{PREFIX}-")) {
            ip(&["netns", "del", &name])
        } else {
            ip(&["link", "del", &name])
        };
        if deleted.is_ok() {
            gone.push(name);
        }
    }
    gone
}

/// The namespaces, bridge and links of one cluster. See the module docs.
#[derive(Debug)]
pub struct Netns {
    tag: String,
    subnet: u8,
    host_link: String,
    hub: String,
    /// Node ids whose namespace exists.
    nodes: Vec<u64>,
    /// The last ruleset written per node id, to skip unchanged ones.
    written: std::collections::HashMap<u64, String>,
}

/// An exclusive lock held while a harness chooses its /24 and puts its
/// address on the root link, so two harnesses never pick the same one.
/// Released when the file is dropped (closed).
fn subnet_lock() -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("dch-netns-subnet.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; blocks until the lock is ours.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context("flock");
    }
    Ok(file)
}

/// A /24 of 10.231.0.0/16 that no address or route of the root namespace mentions.
fn free_subnet() -> anyhow::Result<u8> {
    let taken = format!(
        "{}\n{}",
        ip(&["-4", "-o", "addr", "show"])?,
        ip(&["-4", "route", "show", "table", "all"])?
    );
    let start = (std::process::id() % 200) as u16 + 20;
    (0..250u16)
        .map(|k| ((start + k) % 250 + 1) as u8)
        .find(|x| !taken.contains(&format!("10.231.{x}.")) && !taken.contains("10.231.0.0/16"))
        .context("no free 10.231.x.0/24 subnet")
}

impl Netns {
    /// Sweeps leftovers, then creates the hub namespace with its bridge and
    /// the root link with the harness address.
    pub fn create() -> anyhow::Result<Netns> {
        if let Some(why) = unavailable() {
            bail!(why);
        }
        for name in sweep() {
            eprintln!("chaos: removed leftover {name} of a harness that is gone");
        }
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{pid}-{seq}");
        let _lock = subnet_lock()?;
        let mut me = Netns {
            hub: format!("{PREFIX}-{tag}-hub"),
            host_link: format!("{PREFIX}{pid}x{seq}"),
            tag,
            subnet: free_subnet()?,
            nodes: Vec::new(),
            written: Default::default(),
        };
        // From here on, Drop cleans up whatever was created.
        me.create_hub()?;
        Ok(me)
    }

    fn create_hub(&mut self) -> anyhow::Result<()> {
        let hub = self.hub.as_str();
        ip(&["netns", "add", hub])?;
        ip(&["-n", hub, "link", "set", "lo", "up"])?;
        ip(&["-n", hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", hub, "link", "set", "br0", "up"])?;
        let host = self.host_link.as_str();
        ip(&[
            "link", "add", host, "type", "veth", "peer", "name", "host0", "netns", hub,
        ])?;
        // No IPv6 link-local address on our link in the root namespace.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6"), "1");
        ip(&["-n", hub, "link", "set", "host0", "master", "br0", "up"])?;
        let cidr = format!("{}/24", self.host_addr());
        ip(&["addr", "add", &cidr, "dev", host])?;
        ip(&["link", "set", host, "up"])?;
        Ok(())
    }

    /// The harness's address (root namespace).
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.subnet, 254)
    }

    /// Node `id`'s address.
    pub fn addr(&self, id: u64) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.subnet, id as u8)
    }

    /// Node `id`'s namespace.
    pub fn ns_name(&self, id: u64) -> String {
        format!("{PREFIX}-{}-n{id}", self.tag)
    }

    /// Every namespace and root link of this cluster.
    pub fn names(&self) -> Vec<String> {
        let mut v = vec![self.hub.clone(), self.host_link.clone()];
        v.extend(self.nodes.iter().map(|&id| self.ns_name(id)));
        v
    }

    /// Creates node `id`'s namespace, on the bridge, with its address.
    pub fn add_node(&mut self, id: u64) -> anyhow::Result<Ipv4Addr> {
        anyhow::ensure!(
            (1..=ID_MAX).contains(&id),
            "--net netns supports node ids 1..={ID_MAX}"
        );
        let ns = self.ns_name(id);
        ip(&["netns", "add", &ns])?;
        self.nodes.push(id);
        let veth = format!("v{id}");
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &self.hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        ip(&["-n", &self.hub, "link", "set", &veth, "master", "br0", "up"])?;
        let cidr = format!("{}/24", self.addr(id));
        ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(self.addr(id))
    }

    /// Deletes node `id`'s namespace (its process must be gone).
    pub fn remove_node(&mut self, id: u64) -> anyhow::Result<()> {
        self.nodes.retain(|&n| n != id);
        self.written.remove(&id);
        ip(&["-n", &self.hub, "link", "del", &format!("v{id}")]).ok();
        ip(&["netns", "del", &self.ns_name(id)])?;
        Ok(())
    }

    /// The nftables ruleset of one node: drops towards `peers` (id, fault).
    pub fn ruleset(&self, peers: &[(u64, LinkFault)]) -> String {
        let mut rules = String::new();
        for (peer, fault) in peers {
            let dst = self.addr(*peer);
            // numgen's values are 0..=99: `< 100` is refused, and means a block.
            let pct = (fault.loss * 100.0).round().clamp(0.0, 100.0) as u32;
            if fault.blocked || pct >= 100 {
                rules.push_str(&format!("    ip daddr {dst} drop\n"));
            } else if fault.loss > 0.0 {
                let pct = pct.max(1);
                rules.push_str(&format!(
                    "    ip daddr {dst} numgen random mod 100 < {pct} drop\n"
                ));
            }
        }
        format!(
            "table inet dch\ndelete table inet dch\ntable inet dch {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n{rules}  }}\n}}\n"
        )
    }

    /// Puts node `id`'s rules in force (one nft transaction; skipped when unchanged).
    pub fn apply(&mut self, id: u64, peers: &[(u64, LinkFault)]) -> anyhow::Result<()> {
        let text = self.ruleset(peers);
        if self.written.get(&id) == Some(&text) {
            return Ok(());
        }
        let ns = self.ns_name(id);
        run("ip", &["netns", "exec", &ns, "nft", "-f", "-"], Some(&text))
            .with_context(|| format!("nftables in {ns}"))?;
        self.written.insert(id, text);
        Ok(())
    }

    /// The rules in force in node `id`'s namespace (`nft list ruleset`).
    pub fn list_rules(&self, id: u64) -> anyhow::Result<String> {
        run(
            "ip",
            &["netns", "exec", &self.ns_name(id), "nft", "list", "ruleset"],
            None,
        )
    }

    /// The command line that runs `program args…` inside node `id`'s namespace.
    pub fn wrap(&self, id: u64, program: &std::path::Path, args: &[String]) -> Vec<String> {
        let mut v = vec![
            "netns".to_owned(),
            "exec".to_owned(),
            self.ns_name(id),
            program.display().to_string(),
        ];
        v.extend(args.iter().cloned());
        v
    }

    fn teardown(&mut self) {
        for id in std::mem::take(&mut self.nodes) {
            let _ = ip(&["netns", "del", &self.ns_name(id)]);
        }
        // Deleting one end of a veth pair deletes both.
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.hub]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner_pid() {
        assert_eq!(owner_pid("dch-1234-0-hub"), Some(1234));
        assert_eq!(owner_pid("dch-77-3-n12"), Some(77));
        assert_eq!(owner_pid("dch1234x0"), Some(1234));
        assert_eq!(owner_pid("docker0"), None);
        assert_eq!(owner_pid("dch-x"), None);
    }

    #[test]
    fn rulesets_drop_blocked_and_lossy_links_only() {
        let n = Netns {
            tag: "1-0".into(),
            subnet: 9,
            host_link: "dch1x0".into(),
            hub: "dch-1-0-hub".into(),
            nodes: Vec::new(),
            written: Default::default(),
        };
        let blocked = LinkFault {
            blocked: true,
            ..LinkFault::default()
        };
        let lossy = LinkFault {
            loss: 0.05,
            ..LinkFault::default()
        };
        let text = n.ruleset(&[(2, blocked), (3, lossy), (4, LinkFault::default())]);
        assert!(text.contains("ip daddr 10.231.9.2 drop\n"), "{text}");
        assert!(
            text.contains("ip daddr 10.231.9.3 numgen random mod 100 < 5 drop"),
            "{text}"
        );
        assert!(!text.contains("10.231.9.4"), "{text}");
        std::mem::forget(n); // nothing was created: no teardown
    }
}
