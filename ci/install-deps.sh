#!/usr/bin/env bash
# Installs the system packages the tests need, when they are missing (Debian; root).
#   librocksdb-dev libsnappy-dev libclang-dev: the `rocksdb` storage backend links
#     Debian's RocksDB 7.8 instead of compiling the bundled C++ (20+ minutes on 2 cores).
#   etcd-server: the etcd binary the bench and chaos tests compare against.
#     The tests find it as `$ETCD_BIN` or `etcd` on the PATH (/usr/bin/etcd).
#   iproute2 nftables: `dengine chaos --net netns` (network namespaces, nftables rules).
#   procps: `kill`, which the process tests use to send SIGTERM.
# Under CI (`CI` set) a test whose prerequisite is missing fails instead of skipping.
# Nothing else: the protocol is compiled in pure Rust (no protoc).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(librocksdb-dev libsnappy-dev libclang-dev etcd-server iproute2 nftables procps)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for component in rustfmt clippy; do
  sub=${component/rustfmt/fmt}
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; ci/test.sh falls back to cargo test"
fi
