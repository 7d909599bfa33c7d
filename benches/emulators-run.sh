#!/usr/bin/env bash
# Rheo's Kinesis HTTP/JSON front end beside the local emulators users run today, driven by the
# same client (`http-load`, benches/src/bin/http_load.rs) with the same workload, one server
# after the other, in one run of this script. From anywhere:
#
#   benches/emulators-run.sh                 # one round, 20 s of puts per server
#   DURATION=10 ROUNDS=3 benches/emulators-run.sh
#
# Servers (each on its own loopback port, started fresh for its run and killed after it):
#   rheo               target/release/rheo serve --no-limits, durability `sync` (the default:
#                      every acknowledged record is fdatasynced), data under target/
#   kinesalite         npm kinesalite, default in-memory store (memdown)
#   kinesalite-leveldb npm kinesalite --path <dir under target/> (LevelDB, writes not synced)
#   kinesis-mock       npm kinesis-local (etspaceman/kinesis-mock's Scala.js build on node),
#                      defaults: in memory, SHOULD_PERSIST_DATA=false, plain HTTP port
#
# Environment: DURATION (s of puts, default 20), ROUNDS (default 1), SERVERS (space-separated
# subset of the names above), HTTP_LOAD_ARGS (extra http-load flags, e.g. "--producers 16"),
# QUIET_WAIT (before each server, wait up to this many s for 10 s without rustc/cc/ld; 0),
# EMU_DIR (npm install dir, reused if already installed; default a temp dir), OUT (default
# target/emulators-run). Needs cargo, node and npm. Every http-load run is bounded by `timeout`;
# a trap kills every server still running and removes the data directories on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-1}
SERVERS=${SERVERS:-"rheo kinesalite kinesalite-leveldb kinesis-mock"}
HTTP_LOAD_ARGS=${HTTP_LOAD_ARGS:-}
OUT=${OUT:-$root/target/emulators-run}
KINESALITE_VERSION=3.3.3
KINESIS_LOCAL_VERSION=0.6.2
mkdir -p "$OUT"

pids=()
scratch=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for dir in "${scratch[@]}"; do rm -rf "$dir"; done
    if [[ -n ${emu_tmp:-} ]]; then rm -rf "$emu_tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building rheo and http-load (release)"
cargo build --release -p rheo -p rheo-benches --bin rheo --bin http-load
rheo_bin=$root/target/release/rheo
load_bin=$root/target/release/http-load

if [[ -z ${EMU_DIR:-} ]]; then
    emu_tmp=$(mktemp -d /tmp/rheo-emulators-XXXXXX)
    EMU_DIR=$emu_tmp
fi
if [[ ! -f $EMU_DIR/node_modules/kinesalite/cli.js || ! -f $EMU_DIR/node_modules/kinesis-local/main.js ]]; then
    echo "== npm install kinesalite@$KINESALITE_VERSION kinesis-local@$KINESIS_LOCAL_VERSION into $EMU_DIR"
    timeout 600 npm install --prefix "$EMU_DIR" --no-audit --no-fund --loglevel=error \
        "kinesalite@$KINESALITE_VERSION" "kinesis-local@$KINESIS_LOCAL_VERSION"
fi
echo "== node $(node --version), kinesalite $KINESALITE_VERSION, kinesis-local $KINESIS_LOCAL_VERSION"

# Waits (at most 30 s) until something accepts TCP connections on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listening on port $1 after 30 s" >&2
    return 1
}

# Starts server $1 on port $2 in the background (its output in $OUT/<name>-<round>.log);
# sets $server_pid.
start_server() {
    local name=$1 port=$2 dir
    case $name in
        rheo)
            dir=$(mktemp -d "$root/target/http-load-rheo-XXXXXX")
            scratch+=("$dir")
            "$rheo_bin" serve --data-dir "$dir" --listen "127.0.0.1:$port" \
                --metrics-listen "127.0.0.1:$((port + 1))" --no-limits --durability sync \
                >"$OUT/$name-$round.log" 2>&1 &
            ;;
        kinesalite)
            node "$EMU_DIR/node_modules/kinesalite/cli.js" --port "$port" \
                >"$OUT/$name-$round.log" 2>&1 &
            ;;
        kinesalite-leveldb)
            dir=$(mktemp -d "$root/target/http-load-leveldb-XXXXXX")
            scratch+=("$dir")
            node "$EMU_DIR/node_modules/kinesalite/cli.js" --port "$port" --path "$dir/db" \
                >"$OUT/$name-$round.log" 2>&1 &
            ;;
        kinesis-mock)
            # main.js reads its TLS certificate (server.json) from the working directory.
            (cd "$EMU_DIR/node_modules/kinesis-local" &&
                KINESIS_MOCK_PLAIN_PORT=$port KINESIS_MOCK_TLS_PORT=$((port + 1)) \
                exec node main.js) >"$OUT/$name-$round.log" 2>&1 &
            ;;
        *) echo "unknown server $name" >&2; return 1 ;;
    esac
    server_pid=$!
    pids+=("$server_pid")
    wait_port "$port"
}

# SIGTERM, then SIGKILL if the server is still there after 15 s.
stop_server() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# With QUIET_WAIT=N: wait (at most N s) until no compiler or linker has run for 10 s in a row.
wait_quiet() {
    local waited=0 quiet=0
    while ((quiet < 10 && waited < ${QUIET_WAIT:-0})); do
        if ps -eo comm= | grep -Eqx 'rustc|cargo|cc|cc1|cc1plus|collect2|ld|ld.lld|mold'; then
            quiet=0
        else
            quiet=$((quiet + 1))
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# Busy CPU seconds of the whole machine so far (user+nice+system+irq+softirq, USER_HZ 100):
# minus the client's and the server's own, what other processes (other builds) took.
machine_busy() { awk '/^cpu /{print ($2 + $3 + $4 + $7 + $8) / 100}' /proc/stat; }

summaries=$OUT/summaries.jsonl
: >"$summaries"
port=$((42000 + RANDOM % 2000 * 4))
for round in $(seq 1 "$ROUNDS"); do
    for name in $SERVERS; do
        port=$((port + 4))
        wait_quiet
        echo "== round $round: $name on 127.0.0.1:$port ($(date -u +%H:%M:%S) UTC)"
        start_server "$name" "$port"
        sleep 1
        out=$OUT/$name-$round.txt
        busy0=$(machine_busy)
        # shellcheck disable=SC2086 # HTTP_LOAD_ARGS is a list of flags
        timeout $((DURATION + 400)) "$load_bin" --endpoint "http://127.0.0.1:$port" \
            --label "$name" --duration-secs "$DURATION" --server-pid "$server_pid" \
            --read-timeout-secs 300 $HTTP_LOAD_ARGS >"$out" 2>&1 || echo "(http-load exit $?)" >>"$out"
        busy=$(awk -v a="$busy0" -v b="$(machine_busy)" 'BEGIN{print b - a}')
        grep -v '^SUMMARY' "$out" | sed 's/^/   /'
        echo "   machine busy CPU seconds during the run: $busy"
        grep '^SUMMARY' "$out" |
            sed "s/^SUMMARY //; s/^{/{\"round\":$round,\"machine_busy_cpu_secs\":$busy,/" \
                >>"$summaries" || true
        stop_server "$server_pid"
        for dir in "${scratch[@]}"; do rm -rf "$dir"; done
    done
done

echo
echo "== results (machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
    "load average now $(cut -d' ' -f1-3 /proc/loadavg))"
node - "$summaries" <<'EOF'
const rows = require('fs').readFileSync(process.argv[2], 'utf8').trim().split('\n')
  .filter(Boolean).map(JSON.parse);
const pad = (s, n) => String(s).padStart(n);
const f = (x, d = 0) => (x ?? 0).toFixed(d);
console.log(['round', 'server', 'put rec/s', 'put MB/s', 'put p50/p99 ms', 'get rec/s', 'get MB/s',
  'get p50/p99 ms', 'failed', 'http err', 'read = acked', 'srv cpu put/get', 'others cpu']
  .map((h, i) => i < 2 ? h.padEnd(i ? 18 : 5) : pad(h, 12)).join(' '));
for (const r of rows) {
  const p = r.put, g = r.get;
  console.log([String(r.round).padEnd(5), r.label.padEnd(18), pad(f(p.records_per_s), 12),
    pad(f(p.mb_per_s, 2), 12), pad(`${f(p.p50_ms, 1)}/${f(p.p99_ms, 1)}`, 12),
    pad(f(g.records_per_s), 12), pad(f(g.mb_per_s, 2), 12), pad(`${f(g.p50_ms, 1)}/${f(g.p99_ms, 1)}`, 12),
    pad(p.failed_records, 12), pad(p.http_errors + g.http_errors, 12),
    pad(r.read_matches_acknowledged ? 'yes' : 'NO', 12),
    pad(`${f(p.cpu_secs.server, 1)}/${f(g.cpu_secs.server, 1)}`, 12),
    pad(`${f(Math.max(0, r.machine_busy_cpu_secs - p.cpu_secs.server - g.cpu_secs.server - p.cpu_secs.client
      - g.cpu_secs.client), 1)}/${f(p.seconds + g.seconds, 0)}`, 12)].join(' '));
}
console.log('(cpu in seconds; others cpu = CPU seconds taken by other processes / put+get wall seconds)');
console.log('\nratios rheo / emulator, same round (put records/s, get MB/s):');
for (const rheo of rows.filter(r => r.label === 'rheo')) {
  for (const e of rows.filter(r => r.round === rheo.round && r.label !== 'rheo')) {
    const put = rheo.put.records_per_s / e.put.records_per_s, get = rheo.get.mb_per_s / e.get.mb_per_s;
    console.log(`  round ${rheo.round} vs ${e.label.padEnd(18)} put ${put.toFixed(1)}x  get ${get.toFixed(1)}x`);
  }
}
EOF
echo "(per run: http-load output in $OUT/<server>-<round>.txt, server output in"
echo " $OUT/<server>-<round>.log; summary lines in $summaries)"
