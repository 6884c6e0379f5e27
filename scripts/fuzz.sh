#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while: scripts/fuzz.sh TARGET [SECONDS]
# The corpus starts from the project's example manifests (for `manifest`).
set -euo pipefail
target=${1:?usage: scripts/fuzz.sh manifest|mutf7 [seconds]}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
if [ "$target" = manifest ]; then
    cp -n "$root"/examples/*.yaml "$corpus"/ 2>/dev/null || true
fi
cd "$root/fuzz"
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=1048576
