#!/usr/bin/env bash
# Runs the AWS-client conformance suite: pytest (boto3, raw CBOR/JSON) and the AWS CLI script,
# each against a fresh `rheo serve` on free loopback ports. Usage, from anywhere:
#
#   tests/aws/run.sh                    # uses target/debug/rheo (build it: cargo build -p rheo)
#   RHEO_BIN=target/release/rheo tests/aws/run.sh
#   tests/aws/run.sh -k cbor            # extra arguments go to pytest
#
# The venv lives in target/aws-venv (created on first use).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

export RHEO_BIN="${RHEO_BIN:-target/debug/rheo}"
case "$RHEO_BIN" in /*) ;; *) RHEO_BIN="$ROOT/$RHEO_BIN" ;; esac
[[ -x "$RHEO_BIN" ]] || { echo "run.sh: no rheo binary at $RHEO_BIN (cargo build -p rheo)" >&2; exit 1; }
unset KINESIS_ENDPOINT  # run.sh always tests a server it starts

VENV=target/aws-venv
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/aws/requirements.txt

status=0
timeout 600 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/aws "$@" || status=$?

echo "== AWS CLI (tests/aws/cli.sh)"
PATH="$ROOT/$VENV/bin:$PATH" timeout 300 "$VENV/bin/python" tests/aws/rheo_server.py -- \
  bash tests/aws/cli.sh || status=$?

exit "$status"
