#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): missing system packages, formatting,
# lints, the core purity check, then every test of the workspace in release mode (the simulator and the
# checker's scale tests need optimised code; one profile also means one build).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
started=$(date +%s)

step "system packages"
bash ci/install-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "core purity"
bash ci/check-core-purity.sh

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features -- -D warnings

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
else
  step "chaos suite over network namespaces: skipped (needs root, ip and nft)"
fi

echo "ci/test.sh finished in $(( $(date +%s) - started ))s"
