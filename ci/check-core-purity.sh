#!/usr/bin/env bash
# The Raft core must stay deterministic: no async runtime, no clock, no file or socket
# I/O, no threads, no global randomness. This greps engine/src/core for the ways those
# usually sneak in, and fails naming each offending line.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='tokio|std::time|Instant::|SystemTime|std::fs|std::net|std::thread|thread_rng|rand::|getrandom|std::process|std::env'
if hits=$(grep -rnE "$pattern" engine/src/core --include='*.rs' | grep -vE '^\S+:\s*//' ); then
  if [ -n "$hits" ]; then
    echo "engine/src/core must stay pure (no I/O, clock, threads or global randomness):" >&2
    echo "$hits" >&2
    exit 1
  fi
fi
echo "core purity: ok"
