#!/usr/bin/env bash
# mailshift's benchmark: the command that produces the README's benchmark table.
#
# Builds the release binaries, generates a deterministic corpus, loads it into a private
# source Dovecot on loopback, then, for each tool (mailshift, mbsync from isync, and
# `doveadm backup` with the imapc backend), starts a fresh, empty destination Dovecot, times
# the full copy (wall clock, CPU, peak RSS via GNU time), times a second, no-change run,
# verifies the destination against the source with doveadm (counts, sizes, Message-IDs,
# INTERNALDATEs, flags per folder; differences are reported, not fatal) and prints the
# tables: messages/s, MB/s, peak RSS, re-sync time, and mailshift's ratios to each peer.
# A scaling run repeats this for single-folder mailboxes of growing size.
#
# Never part of the test suite. Must run as root (the servers drop to their own users).
#
# Usage: scripts/bench.sh [mailshift-bench run options]
#   --messages N      messages in the multi-folder corpus (default 3000, ~180 MB)
#   --scale A,B,C     single-folder mailbox sizes for the scaling run (default 500,2000,5000;
#                     "" to skip)
#   --scale-sizes P   realistic (default; 1 KB..5 MB, mean ~60 KB) | small (1-10 KB only)
#   --tools LIST      mailshift,mbsync,doveadm (default: all three)
#   --repeat N        full copies per tool and case, each into a fresh destination, in
#                     rotating tool order; times are medians (default 3)
#   --seed N          corpus seed (default 42)
#   --dest-fsync M    destination Dovecot mail_fsync (default never: measure tools, not disks)
#   --out DIR         where results.md, results.tsv and per-run logs go (default target/bench)
#   --resync-runs N   no-change runs after each full copy; their median is reported (default 3)
#   --timeout SECS    per tool run (default 1800)
#   --rtt LIST        the WAN case: every case again for each round-trip time in ms (e.g.
#                     0,50,100), the source reached through a delaying, rate-limited proxy
#                     (tests/harness/src/link.rs; no netem on this kernel); the destination
#                     stays local
#   --rate-mbit N     the WAN link's rate each way (default 100; 0 for no limit)
# Environment: BENCH_SKIP_DEPS=1 skips scripts/install-deps.sh; BENCH_SKIP_BUILD=1 skips
# cargo build (use the binaries already in the target dir); BENCH_TMPDIR=DIR keeps the
# servers' data in DIR instead of /dev/shm.
#
# The defaults take a few minutes on a 2-core machine. For a longer, steadier run:
#   scripts/bench.sh --messages 10000 --scale 1000,5000,20000 --repeat 5
# and a quick look: scripts/bench.sh --messages 1000 --scale "" --repeat 1
# Across a WAN (bench/RESULTS.md): scripts/bench.sh --messages 2000 --scale "" --rtt 0,50,100
#
# The reconcile loop at scale (mailbox-only `apply` against `sync` + `verify`, logins per
# mailbox from the servers' logs, peak RSS):
#   scripts/bench.sh loop --mailboxes 10,100,1000 [--messages-per 3] [--concurrency 4]
# The pure planner alone: cargo bench --bench planner
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bench: must run as root (private Dovecot instances switch to the dovecot user)" >&2
    exit 1
fi
if [ "${BENCH_SKIP_DEPS:-0}" != 1 ]; then
    scripts/install-deps.sh
fi

target="${CARGO_TARGET_DIR:-target}"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "bench: cargo build --release (mailshift, mailshift-bench)"
    cargo build --release --locked -p mailshift -p mailshift-harness --bins
fi

echo "bench: git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty)')" >&2
# The servers keep their data on tmpfs by default: the benchmark measures the tools and
# Dovecot, not a disk shared with other work. BENCH_TMPDIR=/var/tmp (say) puts it on disk.
export TMPDIR="${BENCH_TMPDIR:-/dev/shm}"
if [ "${1:-}" = loop ]; then
    # The reconcile loop at scale: `scripts/bench.sh loop [--mailboxes 10,100,1000]`.
    shift
    exec "$target/release/mailshift-bench" loop --mailshift "$target/release/mailshift" "$@"
fi
exec "$target/release/mailshift-bench" run --mailshift "$target/release/mailshift" "$@"
