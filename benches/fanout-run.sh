#!/usr/bin/env bash
# One fan-out measurement from the repository root, after `cargo build --release -p rheo`:
# a fresh server (sync durability, limits off), `rheo bench-fanout --consumers $1`, the output
# kept in target/fanout-$1-$2.txt and its summary printed. Usage: benches/fanout-run.sh 20 a
# With DISK_FLOOR=1 the bench also measures the disk's floor for the same puts (in /tmp, beside
# the server's data directory) and prints the ratios of the run's p99s to it. RHEO_BIN names
# another server binary (before/after comparisons); the bench is always target/release/rheo.
# BENCH_ARGS adds flags to the bench (a higher load, say: BENCH_ARGS="--rate 10000 --producers 20").
set -euo pipefail
bin=${RHEO_BIN:-target/release/rheo}
c=$1; port=$((45000 + RANDOM % 1000)); mport=$((46000 + RANDOM % 1000))
dir=$(mktemp -d /tmp/fan-XXXX)
$bin serve --data-dir $dir --listen 127.0.0.1:$port --metrics-listen 127.0.0.1:$mport --no-limits 2>/dev/null &
pid=$!
for i in $(seq 1 100); do curl -sf http://127.0.0.1:$mport/readyz >/dev/null && break; sleep 0.1; done
# A random port can be taken (by an ephemeral port of an earlier run, say): say so and stop.
kill -0 $pid 2>/dev/null || { echo "the server did not start on port $port or $mport: run again" >&2; exit 1; }
target/release/rheo bench-fanout --endpoint http://127.0.0.1:$port --server-pid $pid --consumers $c ${DISK_FLOOR:+--disk-floor /tmp} ${BENCH_ARGS:-} > target/fanout-$c-$2.txt 2>&1 || true
kill -TERM $pid; wait $pid || true
rm -rf $dir
grep -i -E 'put-to-delivery|server cpu|complete|floor' target/fanout-$c-$2.txt | head -9
