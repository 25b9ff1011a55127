//! Peak resident memory of the processes serving local endpoints, read from `/proc`
//! (Linux): the process listening on an endpoint's port is found through
//! `/proc/net/tcp{,6}` (socket inode) and `/proc/<pid>/fd` (who holds it), and its
//! `VmHWM` is the peak RSS. Works for any node on this machine that the bench's user may
//! inspect, whoever started it; `None` where it cannot tell.

use std::fs;

/// Peak RSS in KiB of the process listening on `endpoint`'s port, if it is local.
pub fn peak_rss_kib_of_endpoint(endpoint: &str) -> Option<u64> {
    let pid = listener_pid(endpoint_port(endpoint)?)?;
    peak_rss_kib_of_pid(pid)
}

/// `VmHWM` of `pid`, in KiB.
pub fn peak_rss_kib_of_pid(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, "VmHWM:")
}

fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// The port of `host:port` or `http://host:port[/...]`.
pub fn endpoint_port(endpoint: &str) -> Option<u16> {
    let rest = endpoint.split("://").last()?;
    let hostport = rest.split('/').next()?;
    hostport.rsplit(':').next()?.parse().ok()
}

/// The pid holding the listening socket on `port`.
pub fn listener_pid(port: u16) -> Option<u32> {
    let inode = listening_inode(port)?;
    let needle = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle) {
                return Some(pid);
            }
        }
    }
    None
}

/// The inode of the socket in state LISTEN (0A) on `port`, from /proc/net/tcp{,6}.
fn listening_inode(port: u16) -> Option<u64> {
    let want = format!("{port:04X}");
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            if cols[1].rsplit(':').next() == Some(want.as_str()) {
                return cols[9].parse().ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_parsed_from_both_forms() {
        assert_eq!(endpoint_port("127.0.0.1:2379"), Some(2379));
        assert_eq!(endpoint_port("http://127.0.0.1:9081"), Some(9081));
        assert_eq!(endpoint_port("http://127.0.0.1:9081/x"), Some(9081));
        assert_eq!(endpoint_port("nohost"), None);
    }

    #[test]
    fn our_own_listener_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
        let kib = peak_rss_kib_of_endpoint(&format!("127.0.0.1:{port}")).unwrap();
        assert!(kib > 100, "{kib}");
    }
}
