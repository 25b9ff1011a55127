#!/usr/bin/env bash
# The chaos suite CI runs on every change: a few seeds x 30 s of every nemesis family
# (for d-engine that includes membership churn: add a learner, promote it, remove
# another node) against a local cluster, through the fault-injecting proxy, or with
# NET=netns (root) in network namespaces with nftables. Each run must end
# linearizable and recovered (exit 0); the run directories stay under $OUT for the
# report and for replaying a failure (`dengine chaos ... --seed N` prints the command).
#
#   ci/chaos-suite.sh [TARGET]          TARGET = etcd (default) | dengine
#
# Environment: SEEDS ("1 2 3"), DURATION (30s), NODES (3), NEMESIS (all),
# CONSISTENCY (linearizable), NET (proxy | netns), OUT (target/chaos-suite), DENGINE
# (path of a built dengine binary; default: build target/release/dengine).
# Soak: SEEDS="$(seq 1 10)" DURATION=60s NODES=5 ci/chaos-suite.sh dengine
# netns: NET=netns SEEDS=1 ci/chaos-suite.sh dengine   (root; iproute2 and nftables)
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-${TARGET:-etcd}}
seeds=${SEEDS:-"1 2 3"}
duration=${DURATION:-30s}
nodes=${NODES:-3}
nemesis=${NEMESIS:-all}
consistency=${CONSISTENCY:-linearizable}
net=${NET:-proxy}
out=${OUT:-target/chaos-suite}

if [[ -z "${DENGINE:-}" ]]; then
  cargo build --release -p dengine
  DENGINE=${CARGO_TARGET_DIR:-target}/release/dengine
fi
if [[ "$target" == etcd ]] && ! command -v "${ETCD_BIN:-etcd}" >/dev/null; then
  echo "chaos-suite: etcd not found (apt-get install etcd-server, or set ETCD_BIN)" >&2
  exit 2
fi

mkdir -p "$out"
failed=()
started=$(date +%s)
for seed in $seeds; do
  dir="$out/$target-$net-n$nodes-seed$seed"
  rm -rf "$dir"
  echo "== $target net=$net nodes=$nodes seed=$seed duration=$duration nemesis=$nemesis"
  set +e
  DENGINE_BIN="$DENGINE" "$DENGINE" chaos --target "$target" --nodes "$nodes" \
    --duration "$duration" --nemesis "$nemesis" --seed "$seed" \
    --consistency "$consistency" --net "$net" --out "$dir"
  code=$?
  set -e
  if [[ $code -ne 0 ]]; then
    failed+=("seed $seed (exit $code, $dir)")
  fi
done

echo
echo "== chaos suite: target=$target net=$net seeds=[$seeds] in $(( $(date +%s) - started ))s"
for seed in $seeds; do
  s="$out/$target-$net-n$nodes-seed$seed/summary.json"
  [[ -f "$s" ]] || continue
  python3 - "$s" <<'PY' 2>/dev/null || cat "$s"
import json, sys
s = json.load(open(sys.argv[1]))
print(f"seed {s['seed']:>6}: {s['verdict']:<17} recovered={s['recovered']!s:<5} ops={s['ops_total']:<6} "
      f"faults={s['faults_total']:<3} longest_unavailability={s['longest_unavailability_ms']}ms check={s['check_ms']:.0f}ms "
      f"final_nodes={s.get('final_node_ids')} faults_by_kind={s['faults']}")
PY
done
if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all runs linearizable and recovered"
