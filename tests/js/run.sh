#!/usr/bin/env bash
# Runs the AWS SDK for JavaScript v3 suite (tests/js/kinesis.test.mjs) against a fresh
# `rheo serve`, every call over HTTP/2 (h2c). Usage, from anywhere:
#
#   tests/js/run.sh                          # uses target/debug/rheo (cargo build -p rheo)
#   RHEO_BIN=target/release/rheo tests/js/run.sh
#   tests/js/run.sh --test-reporter=spec     # extra arguments go to `node --test`
#
# Needs Node.js >= 20 and npm with access to the npm registry (first run only: the exact
# versions of package-lock.json are installed into tests/js/node_modules with `npm ci`).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

command -v node >/dev/null || { echo "run.sh: node (Node.js >= 20) is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "run.sh: npm is required" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
if (( node_major < 20 )); then
  echo "run.sh: Node.js >= 20 is required, found $(node --version)" >&2
  exit 1
fi

# RHEO_BIN: absolute, or relative to the caller's directory if it exists there, else to the
# repo root.
RHEO_BIN="${RHEO_BIN:-target/debug/rheo}"
case "$RHEO_BIN" in
  /*) ;;
  *) if [[ -e "$PWD/$RHEO_BIN" ]]; then RHEO_BIN="$PWD/$RHEO_BIN"; else RHEO_BIN="$ROOT/$RHEO_BIN"; fi ;;
esac
[[ -x "$RHEO_BIN" ]] || { echo "run.sh: no rheo binary at $RHEO_BIN (cargo build -p rheo)" >&2; exit 1; }
export RHEO_BIN

# Install (npm ci) only when node_modules is missing or was installed from another
# package.json / package-lock.json or by another Node.js major version.
cd "$HERE"
stamp=node_modules/.rheo-install-stamp
want=$(node -e '
  const { createHash } = require("node:crypto");
  const { readFileSync } = require("node:fs");
  const h = createHash("sha256");
  for (const f of ["package.json", "package-lock.json"]) h.update(readFileSync(f));
  h.update(process.versions.node.split(".")[0]);
  console.log(h.digest("hex"));
')
if [[ ! -d node_modules || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "== npm ci (tests/js)"
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi

cd "$ROOT"
echo "== node --test tests/js/kinesis.test.mjs (rheo: $RHEO_BIN)"
if command -v timeout >/dev/null; then
  exec timeout 300 node --test "$@" tests/js/kinesis.test.mjs
fi
exec node --test "$@" tests/js/kinesis.test.mjs
