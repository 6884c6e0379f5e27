#!/usr/bin/env bash
# The main job, for a newcomer: a whole domain moved between private servers on loopback,
# in a few minutes. It installs what it needs and starts an "old" Dovecot holding three
# sample mailboxes (English, German and Vietnamese folder names, no SPECIAL-USE) and an empty
# "new" one, each behind its own Postfix, and a BIND server for the domain's zone. Then it
# shows mailshift's plan and applies it to convergence: MX TTL lowered, mailboxes copied and
# verified, the old TTL waited out, the old server turned into a gateway to the new one and a
# probe message sent through it, MX switched, a delta sync, TTL restored. It ends with the
# status, a verification of every mailbox and the zone as an outside resolver sees it.
# Everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh >/dev/null
echo "== building mailshift (release)"
cargo build --release --locked --quiet -p mailshift -p mailshift-harness
ms=target/release/mailshift

work=$(mktemp -d /tmp/mailshift-demo.XXXXXX)
mkfifo "$work/control"
# The servers live as long as this script holds the control pipe open.
target/release/mailshift-demo-servers "$work" <"$work/control" >"$work/servers.log" 2>&1 &
servers=$!
exec 3>"$work/control"
cleanup() {
    exec 3>&-
    wait "$servers" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 240); do
    grep -q '^ready$' "$work/servers.log" 2>/dev/null && break
    kill -0 "$servers" 2>/dev/null || { cat "$work/servers.log"; exit 1; }
    sleep 0.5
done
grep -q '^ready$' "$work/servers.log" || { echo "servers did not start"; cat "$work/servers.log"; exit 1; }

manifest="$work/migration.yaml"
# shellcheck disable=SC1091
. "$work/servers.env"
mx() { dig +noall +answer @127.0.0.1 -p "$DNS_PORT" example.com MX; }
state=(--state "$work/state")
step() { printf '\n== %s\n' "$*"; }

step "the manifest ($manifest)"
cat "$manifest"

step "mailshift validate   (inline test passwords are only warned about)"
"$ms" validate "$manifest"

step "the domain's MX before: the old server, TTL 45 s"
mx

step "mailshift plan   (exit 2: changes pending)"
set +e; "$ms" plan -f "$manifest" "${state[@]}"; code=$?; set -e
echo "(exit status $code)"

step "mailshift apply   (runs the loop until the servers match the manifest; waits out the old TTL)"
"$ms" apply -f "$manifest" "${state[@]}"

step "mailshift status"
"$ms" status -f "$manifest" "${state[@]}"

step "mailshift verify   (compares every folder of every mailbox on both servers)"
"$ms" verify -f "$manifest"

step "the domain's MX after: the new server, TTL restored"
mx

step "mailshift plan   (exit 0: nothing left to do)"
"$ms" plan -f "$manifest" "${state[@]}"
echo "(exit status $?)"
