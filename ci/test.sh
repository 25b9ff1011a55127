#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): missing system packages, formatting,
# lints, the core purity check, then every test of the workspace in release mode (the simulator and the
# checker's scale tests need optimised code; one profile also means one build).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
started=$(date +%s)

# Free space where the build goes. A CI run once died with the linker killed by SIGBUS
# while writing a build script (what lld does when the disk fills under its mmap'd
# output). With less than 6 GiB free and a larger tmpfs, the build goes to the tmpfs.
target_dir=${CARGO_TARGET_DIR:-target}
step "disk space"
df -h "$(dirname "$(realpath -m "$target_dir")")" /dev/shm 2>/dev/null || true
avail_kib() { df -Pk "$1" 2>/dev/null | awk 'NR==2 {print $4}'; }
disk_free=$(avail_kib "$(dirname "$(realpath -m "$target_dir")")")
shm_free=$(avail_kib /dev/shm)
if [ -n "$disk_free" ] && [ "$disk_free" -lt $((6 << 20)) ] && [ -n "$shm_free" ] &&
  [ "$shm_free" -gt $((10 << 20)) ]; then
  export CARGO_TARGET_DIR=/dev/shm/dengine-target
  echo "less than 6 GiB free for $target_dir: building in $CARGO_TARGET_DIR instead"
fi

step "system packages"
bash ci/install-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "core purity"
bash ci/check-core-purity.sh

# --release: build scripts and proc macros are then shared with the test build below
# (one build of them instead of two: less time and less disk).
step "cargo clippy"
cargo clippy --workspace --all-targets --all-features --release -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --release --no-fail-fast
else
  cargo test --workspace --all-features --release --no-fail-fast
fi

step "chaos suite (d-engine, 2 seeds x 30 s, every nemesis, through the fault proxy)"
SEEDS=${CHAOS_SEEDS:-"1 2"} DURATION=${CHAOS_DURATION:-30s} bash ci/chaos-suite.sh dengine

# The binary the suite above built; network namespaces and nftables need root.
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && command -v nft >/dev/null; then
  step "chaos suite (d-engine, 1 seed x 30 s, network namespaces + nftables)"
  DENGINE=${CARGO_TARGET_DIR:-target}/release/dengine NET=netns SEEDS=${CHAOS_NETNS_SEEDS:-1} \
    DURATION=${CHAOS_DURATION:-30s} bash ci/chaos-suite.sh dengine
elif [ -n "${CI:-}" ] && [ "${CI}" != false ] && [ "${CI}" != 0 ]; then
  # Under CI nothing is skipped for want of a prerequisite (the tests fail too).
  step "chaos suite over network namespaces: needs root, ip and nft, which CI must provide"
  exit 1
else
  step "chaos suite over network namespaces: skipped (needs root, ip and nft)"
fi

echo "ci/test.sh finished in $(( $(date +%s) - started ))s"
