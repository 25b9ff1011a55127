#!/usr/bin/env bash
# Memory soak of the replicated session table (issue 14): a 3-node local cluster takes
# writes that each open a client session of their own (a fresh client id), as a crowd
# of short-lived clients would, while every node's RSS is sampled once a second.
# Prints each node's RSS after 100k, 250k, 500k and 1M writes and at the end (the bar:
# the end within 1.2x of the 100k figure, with at least 1,000,000 writes).
# SESSIONS_FLAG= (empty) runs the same load without sessions, as the baseline.
# KEYS=N distinct keys (default 10,000: every key is written within the first 100k
# writes, so the figures compare the engine's memory, not a data set that still grows;
# with 100,000 keys a third of them are first written between 100k and 500k writes).
# SNAPSHOT_EVERY=N snapshots every N entries (default: the engine's 100,000, so the
# 100k figure is taken before the first snapshot cycle).
#
#   bench/scripts/session-soak.sh [DURATION] [OUT]     e.g. 75s runs/session-soak
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-90s}
out=${2:-runs/session-soak}
bin=${DENGINE_BIN:-target/release/dengine}
[ -x "$bin" ] || cargo build --release -p dengine
rm -rf "$out"
mkdir -p "$out"
"$bin" bench --target dengine --cluster local:3 --workload write --clients 64 --keys "${KEYS:-10000}" \
  --duration "$duration" --warmup 0s --no-floors --progress quiet \
  ${SESSIONS_FLAG---dengine-fresh-sessions} ${SNAPSHOT_EVERY:+--dengine-set snapshot.entries_since_last=$SNAPSHOT_EVERY} \
  --out "$out/bench" >"$out/bench.log" 2>&1 &
bench=$!
: >"$out/rss.tsv"
while kill -0 "$bench" 2>/dev/null; do
  now=$(date +%s.%N)
  for pid in $(pgrep -f "serve --config $(realpath -m "$out")" || true); do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && printf '%s\t%s\t%s\n' "$now" "$pid" "$rss" >>"$out/rss.tsv"
    [ -e "$out/cmd.$pid" ] || tr '\0' ' ' <"/proc/$pid/cmdline" >"$out/cmd.$pid" 2>/dev/null || true
  done
  sleep 1
done
status=0
wait "$bench" || status=$?
date +%s.%N >"$out/bench.end"
[ "$status" -eq 0 ] || { echo "bench failed ($status):"; tail -20 "$out/bench.log"; exit 1; }
python3 - "$out" <<'PY'
import collections, csv, sys
out = sys.argv[1]
rss = collections.defaultdict(list)  # pid -> [(time, KiB)]
for line in open(f"{out}/rss.tsv"):
    t, pid, kib = line.split()
    rss[pid].append((float(t), int(kib)))
rows = list(csv.DictReader(open(f"{out}/bench/timeseries.csv")))
# Place each measured second on the clock: the last one ended when the bench exited
# (its cluster shutdown after that is not counted: a second at most).
end = float(open(f"{out}/bench.end").read()) - 1.0
t, marks = end, []
for row in reversed(rows):
    marks.append((t, int(row["ops"])))
    t -= float(row["length_s"])
marks.reverse()
points = [100_000, 250_000, 500_000, 1_000_000]
total, at = 0, {}
for when, ops in marks:
    total += ops
    for p in points:
        if p not in at and total >= p:
            at[p] = when
print(f"writes acknowledged: {total}")
for pid, samples in sorted(rss.items()):
    def rss_at(when):
        after = [kib for t, kib in samples if t >= when]
        return after[0] / 1024 if after else float("nan")
    first, last = rss_at(at[100_000]), samples[-1][1] / 1024
    peak = max(k for _, k in samples) / 1024
    marks_txt = ", ".join(f"{p // 1000}k: {rss_at(at[p]):.1f}" for p in points if p in at)
    try:
        config = open(f"{out}/cmd.{pid}").read().split("--config")[1].split()[0]
    except (OSError, IndexError):
        config = "?"
    try:
        log = open(config.rsplit("/", 1)[0] + "/node.log", errors="replace").read()
        config += " (leader)" if "role=Leader" in log else ""
    except OSError:
        pass
    print(f"node {config} (pid {pid}): RSS MiB after {marks_txt}; end {last:.1f} (peak {peak:.1f}); "
          f"end/100k {last / first:.2f}")
PY
