#!/usr/bin/env bash
# The main job, for a newcomer: build mailshift and show what it does today.
# (This grows into a full local migration between private Dovecot servers as the reconcile
# loop lands; see README "Status".)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet
ms=target/release/mailshift

echo "== mailshift validate examples/   (every example manifest is valid)"
"$ms" validate examples/
echo "ok"
echo
echo "== mailshift validate on a broken manifest: every mistake by file, line, column and field"
"$ms" validate tests/fixtures/invalid/semantic-errors.yaml || echo "(exit status $?: invalid)"
echo
echo "== mailshift crd | head   (the CustomResourceDefinition generated from the types)"
"$ms" crd | head -n 20
