#!/usr/bin/env bash
# Put throughput against the number of shards, for one or more builds of `rheo`, interleaved.
#
#   benches/shards-run.sh OLD/rheo NEW/rheo              # MODE=scaling (default)
#   MODE=many-shards benches/shards-run.sh NEW/rheo      # 10,000 shards, kill -9 and restart
#
# MODE=scaling: for each round, each shard count in $SHARDS, each client path in $PATHS and each
# binary in turn, a fresh `rheo serve --no-limits --durability sync` on a fresh data directory
# under $SCRATCH (keep it on the disk under test, not a tmpfs), then one load run:
#   http: http-load (Kinesis JSON over HTTP/1.1): CreateStream, $PRODUCERS producers x PutRecords
#         of $BATCH x $RECORD_SIZE B (a distinct partition key per record) for $DURATION s, then
#         a catch-up read of every shard checked against what was acknowledged.
#   grpc: `rheo bench` (gRPC) with the same producers, batch, size and duration, --consumers 0,
#         then its catch-up read (2 consumers). Keys cycle through 1024 per producer.
# While the client runs, the server's threads, open fds and VmRSS are sampled every 0.5 s, and
# its /proc/PID/io write_bytes is read before the client starts and when the client prints its
# put line (the end of the put phase). Write amplification = write_bytes delta / (records
# acknowledged x RECORD_SIZE); write_bytes counts page-cache dirtying by the server, so journal
# and segment bytes both count, and the delta includes the (small) stream creation.
# "others CPU" = machine busy CPU-s (/proc/stat) in the put window minus the server's and the
# client's: other processes (builds) and kernel threads.
# Output: a row per run on stdout, JSON lines in $OUT/results.jsonl (field run_id tells runs of
# this invocation apart), per-run client and server logs and `top` snapshots in $OUT, and at the
# end medians per path, binary and shard count with the ratios.
#
# MODE=many-shards (first binary only): raises the fd soft limit to the hard limit, starts the
# server, creates $STREAMS streams of $STREAM_SHARDS shards (`rheo stream create`), puts
# $RECORDS_PER_STREAM short records into each (`rheo put`, distinct keys, so nearly every shard
# gets some), reports RSS/threads/fds, then kill -9 + restart on the same directory (time to
# /readyz 200, RSS/threads/fds, read-back of a few streams), then SIGTERM + restart (the same).
# JSON lines in $OUT/many-shards.jsonl.
#
# Environment: SHARDS ("4 64 256 1024"), ROUNDS (2), DURATION (20), PATHS ("http grpc"),
# HTTP_LOAD (default: http-load beside the first binary), GRPC_CLIENT (the `rheo` whose `bench`
# subcommand drives the grpc path; default: the last binary), LABELS (default: from each path,
# /x/old-target/release/rheo -> old), OUT (target/shards-run), SCRATCH (/work/bench/scratch),
# PORT (45870; metrics on PORT+1), PRODUCERS (8), BATCH (500), RECORD_SIZE (1024),
# STREAMS (100), STREAM_SHARDS (100), RECORDS_PER_STREAM (1000), FD_LIMIT (many-shards: set the
# hard and soft fd limits to this instead of raising the soft limit to the hard one; needs root).
# Every wait is bounded; a trap stops every server and client this script started.
set -euo pipefail

MODE=${MODE:-scaling}
SHARDS=${SHARDS:-"4 64 256 1024"}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-20}
PATHS=${PATHS:-"http grpc"}
OUT=${OUT:-target/shards-run}
SCRATCH=${SCRATCH:-/work/bench/scratch}
PORT=${PORT:-45870}
MPORT=$((PORT + 1))
PRODUCERS=${PRODUCERS:-8}
BATCH=${BATCH:-500}
RECORD_SIZE=${RECORD_SIZE:-1024}
STREAMS=${STREAMS:-100}
STREAM_SHARDS=${STREAM_SHARDS:-100}
RECORDS_PER_STREAM=${RECORDS_PER_STREAM:-1000}
READY_TIMEOUT=${READY_TIMEOUT:-120}

if [[ $# -lt 1 ]]; then
    echo "usage: $0 RHEO_BINARY [RHEO_BINARY...]   (see the header for the environment)" >&2
    exit 2
fi
BINS=()
for bin in "$@"; do
    [[ -x $bin ]] || { echo "not an executable: $bin" >&2; exit 2; }
    BINS+=("$(realpath "$bin")")
done
HTTP_LOAD=${HTTP_LOAD:-$(dirname "${BINS[0]}")/http-load}
GRPC_CLIENT=${GRPC_CLIENT:-${BINS[${#BINS[@]} - 1]}}
for tool in jq curl ss; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

read -r -a LABEL_LIST <<<"${LABELS:-}"
if [[ ${#LABEL_LIST[@]} -eq 0 ]]; then
    for bin in "${BINS[@]}"; do
        name=$(basename "$(dirname "$(dirname "$bin")")")
        LABEL_LIST+=("${name%-target}")
    done
fi
[[ ${#LABEL_LIST[@]} -eq ${#BINS[@]} ]] || { echo "LABELS needs one label per binary" >&2; exit 2; }

mkdir -p "$OUT" "$SCRATCH"
OUT=$(realpath "$OUT")
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)-$$
LOG=$OUT/run-$RUN_ID.log

SERVER_PID=""
CLIENT_PID=""
SAMPLER_PID=""
DATA_DIR=""

cleanup() {
    local pid
    # The client runs under timeout(1), which passes SIGTERM on to it.
    if [[ -n $CLIENT_PID ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then
        kill -TERM "$CLIENT_PID" 2>/dev/null || true
    fi
    for pid in "$SAMPLER_PID" "$SERVER_PID"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n $DATA_DIR && -d $DATA_DIR && -z ${KEEP_DATA:-} ]]; then
        rm -rf -- "$DATA_DIR"
    fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

now() { date +%s.%N; }
note() { echo "[$(date -u +%T)] $*" | tee -a "$LOG" >&2; }

# Server-side figures from /proc (empty where the process is gone).
write_bytes() { awk '/^write_bytes:/ {print $2}' "/proc/$1/io" 2>/dev/null || true; }
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
fds_of() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# utime + stime in clock ticks.
cpu_ticks() {
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    rest=${stat##*") "}
    awk '{print $12 + $13}' <<<"$rest"
}
# Busy ticks of the whole machine: user nice system irq softirq steal.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# shellcheck disable=SC2009 # pgrep cannot match names this long in one pattern
builds_running() { ps -eo comm= | grep -c -x -E 'rustc|cargo|cc1|cc1plus|ld|clippy-driver|rust-lld' || true; }

snapshot_top() {
    {
        echo "=== $(date -u +%FT%TZ) $*"
        top -bn1 | head -15
    } >>"$OUT/top-$RUN_ID.log"
}

port_free() { [[ -z $(ss -Hltn "sport = :$1") ]]; }

# start_server BIN DIR LOGFILE: starts it in the background, sets SERVER_PID and START_TIME.
start_server() {
    local bin=$1 dir=$2 log=$3 waited=0
    while ! port_free "$PORT" || ! port_free "$MPORT"; do
        ((waited++ < 100)) || { note "ports $PORT/$MPORT still busy"; return 1; }
        sleep 0.1
    done
    START_TIME=$(now)
    "$bin" serve --data-dir "$dir" --no-limits --durability sync \
        --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$MPORT" >>"$log" 2>&1 &
    SERVER_PID=$!
}

# wait_ready: seconds from START_TIME until /readyz answers 200 (or fails after READY_TIMEOUT).
wait_ready() {
    local code deadline
    deadline=$(($(date +%s) + READY_TIMEOUT))
    while (($(date +%s) < deadline)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            note "server $SERVER_PID exited before it was ready"
            return 1
        fi
        code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$MPORT/readyz" || true)
        if [[ $code == 200 ]]; then
            READY_SECS=$(awk -v a="$START_TIME" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}')
            return 0
        fi
        sleep 0.05
    done
    note "server not ready after ${READY_TIMEOUT}s"
    return 1
}

# stop_server: SIGTERM, SIGKILL after 10 s; sets STOP_SECS and STOP_HOW.
stop_server() {
    local started i
    STOP_HOW=gone
    STOP_SECS=0
    [[ -n $SERVER_PID ]] || return 0
    started=$(now)
    if kill -TERM "$SERVER_PID" 2>/dev/null; then
        STOP_HOW=term
        for ((i = 0; i < 200; i++)); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            STOP_HOW="kill"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    STOP_SECS=$(awk -v a="$started" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
    SERVER_PID=""
}

# sampler SERVER CLIENT CLIENT_OUT DIR: until DIR/stop exists, every 0.5 s a line
# "time phase threads fds rss_kib" in DIR/samples, and once the client has printed its put line,
# "time write_bytes busy_ticks server_ticks client_ticks" in DIR/put-end.
sampler() {
    local server=$1 client=$2 out=$3 dir=$4 i=0 phase=put builds=0 b
    while [[ ! -e $dir/stop ]]; do
        if [[ $phase == put ]] && grep -q '^put:' "$out" 2>/dev/null; then
            echo "$(now) $(write_bytes "$server") $(busy_ticks) $(cpu_ticks "$server") $(cpu_ticks "$client")" >"$dir/put-end"
            phase="get"
        fi
        if ((i % 5 == 0)); then
            echo "$(now) $phase $(threads_of "$server") $(fds_of "$server") $(rss_kib "$server")" >>"$dir/samples"
            b=$(builds_running)
            ((b > builds)) && builds=$b
            echo "$builds" >"$dir/builds"
        fi
        i=$((i + 1))
        sleep 0.1
    done
}

# max of column N of the sample lines of a phase ("" for all phases).
sample_max() {
    awk -v col="$2" -v phase="$3" 'phase == "" || $2 == phase {if ($col + 0 > m) m = $col + 0} END {print m + 0}' "$1"
}

# one_run ROUND SHARDS PATH INDEX: a fresh server, one client run, one JSON line.
one_run() {
    local round=$1 shards=$2 path=$3 index=$4
    local bin=${BINS[$index]} label=${LABEL_LIST[$index]}
    local tag="$path-$label-s$shards-r$round"
    local dir="$OUT/$RUN_ID/$tag" client_out server_log rc=0
    mkdir -p "$dir"
    client_out=$dir/client.txt
    server_log=$dir/server.log
    DATA_DIR=$(mktemp -d "$SCRATCH/run-XXXXXX")
    snapshot_top "before $tag"
    start_server "$bin" "$DATA_DIR" "$server_log" || return 1
    READY_SECS=""
    if ! wait_ready; then
        stop_server
        rm -rf -- "$DATA_DIR"
        DATA_DIR=""
        return 1
    fi
    local wb0 busy0 scpu0 t0
    wb0=$(write_bytes "$SERVER_PID")
    busy0=$(busy_ticks)
    scpu0=$(cpu_ticks "$SERVER_PID")
    t0=$(now)
    local client_timeout=$((DURATION + 420))
    if [[ $path == http ]]; then
        timeout -k 5 "$client_timeout" "$HTTP_LOAD" --endpoint "http://127.0.0.1:$PORT" \
            --label "$label" --shards "$shards" --producers "$PRODUCERS" --batch "$BATCH" \
            --record-size "$RECORD_SIZE" --duration-secs "$DURATION" --server-pid "$SERVER_PID" \
            --read-timeout-secs 300 >"$client_out" 2>&1 &
    else
        timeout -k 5 "$client_timeout" "$GRPC_CLIENT" bench --endpoint "http://127.0.0.1:$PORT" \
            --shards "$shards" --producers "$PRODUCERS" --batch "$BATCH" \
            --record-bytes "$RECORD_SIZE" --duration "${DURATION}s" --consumers 0 \
            >"$client_out" 2>&1 &
    fi
    CLIENT_PID=$!
    # The client's own pid (timeout forks it) for its CPU time.
    local real_client=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        real_client=$(pgrep -P "$CLIENT_PID" | head -1 || true)
        [[ -n $real_client ]] && break
        sleep 0.02
    done
    sampler "$SERVER_PID" "${real_client:-$CLIENT_PID}" "$client_out" "$dir" &
    SAMPLER_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    touch "$dir/stop"
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    local server_alive=true
    kill -0 "$SERVER_PID" 2>/dev/null || server_alive=false
    stop_server
    rm -rf -- "$DATA_DIR"
    DATA_DIR=""

    # Client figures.
    local rps="" p50="" p99="" acked="" failed="" errors="" read="" matches="" first_error=""
    if [[ $path == http ]]; then
        local summary
        summary=$(sed -n 's/^SUMMARY //p' "$client_out" | tail -1)
        if [[ -n $summary ]]; then
            rps=$(jq -r '.put.records_per_s' <<<"$summary")
            p50=$(jq -r '.put.p50_ms' <<<"$summary")
            p99=$(jq -r '.put.p99_ms' <<<"$summary")
            acked=$(jq -r '.put.records' <<<"$summary")
            failed=$(jq -r '.put.failed_records' <<<"$summary")
            errors=$(jq -r '.put.http_errors + .get.http_errors + .get.corrupt_records' <<<"$summary")
            read=$(jq -r '.get.records' <<<"$summary")
            matches=$(jq -r '.read_matches_acknowledged' <<<"$summary")
            first_error=$(jq -r '.put.first_error // .get.first_error // ""' <<<"$summary")
        fi
    else
        local put_line lat_line
        put_line=$(grep -m1 '^put:' "$client_out" || true)
        lat_line=$(grep -m1 '^PutRecords latency:' "$client_out" || true)
        if [[ -n $put_line ]]; then
            acked=$(sed -E 's/^put: ([0-9]+) records.*/\1/' <<<"$put_line")
            rps=$(sed -E 's/.* = ([0-9]+) records\/s.*/\1/' <<<"$put_line")
            failed=$(sed -E 's/.*; ([0-9]+) failed;.*/\1/' <<<"$put_line")
        fi
        if [[ -n $lat_line ]]; then
            p50=$(sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' <<<"$lat_line")
            p99=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$lat_line")
        fi
        read=$(sed -nE 's/^catch-up read: ([0-9]+) records.*/\1/p' "$client_out" | tail -1)
        errors=$(grep -c -E 'put failed|^Error|error:' "$client_out" || true)
        if [[ -n $read && -n $acked ]]; then
            if [[ $read == "$acked" ]]; then matches=true; else matches=false; fi
        fi
        first_error=$(grep -m1 -E 'put failed|^Error|error:' "$client_out" || true)
    fi

    # Server figures.
    local wb1="" busy1="" scpu1="" ccpu1="" wa="" others="" server_cpu="" client_cpu=""
    local put_secs=""
    if [[ -s $dir/put-end ]]; then
        read -r _ wb1 busy1 scpu1 ccpu1 <"$dir/put-end"
        put_secs=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 "$dir/put-end")" 'BEGIN {printf "%.2f", b - a}')
        server_cpu=$(awk -v a="$scpu0" -v b="$scpu1" 'BEGIN {printf "%.2f", (b - a) / 100}')
        client_cpu=$(awk -v b="$ccpu1" 'BEGIN {printf "%.2f", b / 100}')
        others=$(awk -v a="$busy0" -v b="$busy1" -v s="$server_cpu" -v c="$client_cpu" \
            'BEGIN {printf "%.2f", (b - a) / 100 - s - c}')
        if [[ -n $acked && $acked -gt 0 && -n $wb1 && -n $wb0 ]]; then
            wa=$(awk -v a="$wb0" -v b="$wb1" -v n="$acked" -v s="$RECORD_SIZE" \
                'BEGIN {printf "%.3f", (b - a) / (n * s)}')
        fi
    fi
    local threads=0 fds=0 rss=0 threads_all=0 fds_all=0 rss_all=0
    if [[ -s $dir/samples ]]; then
        threads=$(sample_max "$dir/samples" 3 put)
        fds=$(sample_max "$dir/samples" 4 put)
        rss=$(sample_max "$dir/samples" 5 put)
        threads_all=$(sample_max "$dir/samples" 3 "")
        fds_all=$(sample_max "$dir/samples" 4 "")
        rss_all=$(sample_max "$dir/samples" 5 "")
    fi
    local builds server_warn
    builds=$(cat "$dir/builds" 2>/dev/null || echo 0)
    server_warn=$(grep -c -E 'WARN|ERROR|panicked' "$server_log" || true)

    jq -nc --arg run_id "$RUN_ID" --arg ts "$(date -u +%FT%TZ)" --argjson round "$round" \
        --arg path "$path" --arg lab "$label" --arg bin "$bin" --argjson shards "$shards" \
        --argjson duration "$DURATION" --argjson producers "$PRODUCERS" --argjson batch "$BATCH" \
        --argjson record_size "$RECORD_SIZE" --arg rps "$rps" --arg p50 "$p50" --arg p99 "$p99" \
        --arg acked "$acked" --arg failed "$failed" --arg errors "$errors" --arg read "$read" \
        --arg matches "$matches" --arg first_error "$first_error" --arg wb0 "$wb0" \
        --arg wb1 "$wb1" --arg wa "$wa" --arg put_secs "$put_secs" \
        --arg server_cpu "$server_cpu" --arg client_cpu "$client_cpu" --arg others "$others" \
        --argjson threads "$threads" --argjson fds "$fds" --argjson rss "$rss" \
        --argjson threads_all "$threads_all" --argjson fds_all "$fds_all" \
        --argjson rss_all "$rss_all" --arg ready "$READY_SECS" --arg stop_secs "$STOP_SECS" \
        --arg stop_how "$STOP_HOW" --argjson builds "$builds" --argjson client_rc "$rc" \
        --argjson server_warn "$server_warn" --argjson server_alive "$server_alive" '
        def num: if . == "" or . == "null" then null else tonumber end;
        {run_id: $run_id, ts: $ts, round: $round, path: $path, "label": $lab, bin: $bin,
         shards: $shards, duration_secs: $duration, producers: $producers, batch: $batch,
         record_size: $record_size, records_per_s: ($rps | num), p50_ms: ($p50 | num),
         p99_ms: ($p99 | num), acked: ($acked | num), failed_records: ($failed | num),
         errors: ($errors | num), read_back: ($read | num),
         read_matches: (if $matches == "" then null else $matches == "true" end),
         first_error: $first_error, write_bytes_before: ($wb0 | num),
         write_bytes_after_put: ($wb1 | num), write_amplification: ($wa | num),
         put_window_secs: ($put_secs | num), server_cpu_put: ($server_cpu | num),
         client_cpu_put: ($client_cpu | num), others_cpu_put: ($others | num),
         threads_max_put: $threads, fds_max_put: $fds, rss_kib_max_put: $rss,
         threads_max_all: $threads_all, fds_max_all: $fds_all, rss_kib_max_all: $rss_all,
         ready_secs: ($ready | num), stop_secs: ($stop_secs | num), stop_how: $stop_how,
         builds_seen_max: $builds, client_rc: $client_rc, server_warn_lines: $server_warn,
         server_alive_after_client: $server_alive}' >>"$OUT/results.jsonl"
    print_row "$(tail -1 "$OUT/results.jsonl")"
}

ROW_FORMAT='%-4s %-5s %6s %5s %10s %7s %7s %9s %6s %6s %6s %4s %6s %6s %6s %6s %3s %3s\n'
print_header() {
    # shellcheck disable=SC2059
    printf "$ROW_FORMAT" path label shards round records/s p50ms p99ms acked fail readok WA \
        thr fds rssMiB srvCPU othCPU bld rc
}
print_row() {
    # shellcheck disable=SC2046,SC2059
    printf "$ROW_FORMAT" $(jq -r '[.path, .label, .shards, .round,
        (.records_per_s // "-" | tostring), (.p50_ms // "-" | tostring), (.p99_ms // "-" | tostring),
        (.acked // "-" | tostring), ((.failed_records // 0) + (.errors // 0) | tostring),
        (if .read_matches == null then "-" else (.read_matches | tostring) end), (.write_amplification // "-" | tostring),
        .threads_max_put, .fds_max_put, (.rss_kib_max_put / 1024 | floor),
        (.server_cpu_put // "-" | tostring), (.others_cpu_put // "-" | tostring),
        .builds_seen_max, .client_rc] | map(tostring) | join(" ")' <<<"$1")
}

summarize() {
    echo
    echo "== medians, run $RUN_ID (records/s, call p50/p99 ms, write amplification, max threads/fds/RSS MiB in the put phase)"
    jq -rs --arg run_id "$RUN_ID" '
        def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
            else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def r2: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
        [.[] | select(.run_id == $run_id)] | group_by([.path, .label, .shards])[] |
        [.[0].path, .[0].label, (.[0].shards | tostring), (length | tostring),
         ([.[].records_per_s | select(. != null)] | median | r2),
         ([.[].p50_ms | select(. != null)] | median | r2),
         ([.[].p99_ms | select(. != null)] | median | r2),
         ([.[].write_amplification | select(. != null)] | median | r2),
         ([.[].threads_max_put] | median | r2), ([.[].fds_max_put] | median | r2),
         ([.[].rss_kib_max_put / 1024] | median | r2),
         ([.[] | select(.read_matches != true)] | length | tostring),
         ([.[].others_cpu_put | select(. != null)] | median | r2)] | @tsv' "$OUT/results.jsonl" |
        { printf 'path\tlabel\tshards\truns\trecords/s\tp50\tp99\tWA\tthreads\tfds\trss_MiB\tbad_readback\tothers_cpu\n'; cat; } |
        column -t -s $'\t'
    echo
    echo "== ratios of median records/s"
    local min_s max_s
    min_s=$(tr ' ' '\n' <<<"$SHARDS" | grep . | sort -n | head -1)
    max_s=$(tr ' ' '\n' <<<"$SHARDS" | grep . | sort -n | tail -1)
    jq -rs --arg run_id "$RUN_ID" --argjson lo "$min_s" --argjson hi "$max_s" \
        --arg labels "${LABEL_LIST[*]}" '
        def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
            else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def med($p; $l; $s): [.[] | select(.path == $p and .label == $l and .shards == $s)
            | .records_per_s | select(. != null)] | median;
        def ratio($a; $b): if $a == null or $b == null or $b == 0 then "-"
            else ($a / $b * 1000 | round / 1000 | tostring) end;
        [.[] | select(.run_id == $run_id)] as $runs | ($labels | split(" ")) as $ls |
        ($runs | map(.path) | unique)[] as $p |
        (($ls[] as $l | "\($p) \($l): \($hi) shards / \($lo) shards = \(ratio($runs | med($p; $l; $hi); $runs | med($p; $l; $lo)))"),
         (if ($ls | length) > 1 then
            ($runs | map(.shards) | unique)[] as $s |
            "\($p) \($ls[-1]) / \($ls[0]) at \($s) shards = \(ratio($runs | med($p; $ls[-1]; $s); $runs | med($p; $ls[0]; $s)))"
          else empty end))' "$OUT/results.jsonl"
}

scaling() {
    note "run $RUN_ID: SHARDS=\"$SHARDS\" ROUNDS=$ROUNDS DURATION=$DURATION PATHS=\"$PATHS\" producers $PRODUCERS x $BATCH x $RECORD_SIZE B"
    local i
    for i in "${!BINS[@]}"; do note "binary ${LABEL_LIST[$i]}: ${BINS[$i]}"; done
    note "http-load: $HTTP_LOAD; grpc client: $GRPC_CLIENT bench; scratch: $SCRATCH ($(df --output=source "$SCRATCH" | tail -1))"
    note "$(date -u) | nproc $(nproc) | kernel $(uname -r) | builds running now: $(builds_running)"
    print_header
    local round shards path
    for ((round = 1; round <= ROUNDS; round++)); do
        for shards in $SHARDS; do
            for path in $PATHS; do
                for i in "${!BINS[@]}"; do
                    one_run "$round" "$shards" "$path" "$i" ||
                        note "run $path ${LABEL_LIST[$i]} $shards shards round $round failed"
                done
            done
        done
    done
    snapshot_top "end"
    summarize | tee -a "$LOG"
    echo
    echo "all rows: jq -c 'select(.run_id == \"$RUN_ID\")' $OUT/results.jsonl; top snapshots: $OUT/top-$RUN_ID.log"
}

# --- MODE=many-shards -------------------------------------------------------------------------

proc_figures() { echo "rss_kib=$(rss_kib "$SERVER_PID") threads=$(threads_of "$SERVER_PID") fds=$(fds_of "$SERVER_PID")"; }

# read_back STREAM: records read from every shard of the stream (text output: a line each).
read_back() {
    { timeout 120 "${BINS[0]}" read --stream "$1" --endpoint "http://127.0.0.1:$PORT" \
        2>>"$MS_DIR/client-errors.txt" || true; } | wc -l
}

many_shards() {
    local bin=${BINS[0]} soft_before hard soft_after
    soft_before=$(ulimit -Sn)
    hard=$(ulimit -Hn)
    if [[ -n ${FD_LIMIT:-} ]]; then
        # Above the hard limit: needs CAP_SYS_RESOURCE (root), at most fs.nr_open.
        if ulimit -Hn "$FD_LIMIT" 2>/dev/null; then
            ulimit -Sn "$FD_LIMIT"
        else
            note "cannot raise the hard fd limit to $FD_LIMIT (needs CAP_SYS_RESOURCE); using $hard"
            ulimit -Sn "$hard"
        fi
    else
        ulimit -Sn "$hard"
    fi
    soft_after=$(ulimit -Sn)
    MS_DIR=$OUT/$RUN_ID/many-shards
    mkdir -p "$MS_DIR"
    local server_log=$MS_DIR/server.log
    note "many-shards run $RUN_ID: $STREAMS streams x $STREAM_SHARDS shards with $bin"
    note "fd limit: soft $soft_before (hard $hard) -> soft $soft_after (hard $(ulimit -Hn))"
    note "$(date -u) | nproc $(nproc) | kernel $(uname -r) | builds running now: $(builds_running)"
    snapshot_top "many-shards start"
    DATA_DIR=$(mktemp -d "$SCRATCH/many-XXXXXX")
    start_server "$bin" "$DATA_DIR" "$server_log"
    wait_ready || return 1
    local fresh_ready=$READY_SECS endpoint="http://127.0.0.1:$PORT" s name t0 create_secs put_secs
    note "fresh server ready in ${fresh_ready}s: $(proc_figures)"

    t0=$(now)
    local create_failed=0
    for ((s = 0; s < STREAMS; s++)); do
        name=$(printf 'ms-%03d' "$s")
        if ! timeout 60 "$bin" stream create "$name" --shards "$STREAM_SHARDS" \
            --endpoint "$endpoint" >>"$MS_DIR/create.txt" 2>&1; then
            create_failed=$((create_failed + 1))
        fi
    done
    create_secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
    note "created $STREAMS streams in ${create_secs}s ($create_failed failed): $(proc_figures)"

    t0=$(now)
    local put_failed=0 records_put=0 shards_hit=0 out
    for ((s = 0; s < STREAMS; s++)); do
        name=$(printf 'ms-%03d' "$s")
        out=$MS_DIR/put-$name.txt
        if ! seq 1 "$RECORDS_PER_STREAM" | sed "s/^/$name-key-/" |
            timeout 60 "$bin" put --stream "$name" --endpoint "$endpoint" >"$out" 2>>"$MS_DIR/client-errors.txt"; then
            put_failed=$((put_failed + 1))
        fi
        records_put=$((records_put + $(wc -l <"$out")))
        shards_hit=$((shards_hit + $(cut -f1 "$out" | sort -u | wc -l)))
    done
    put_secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
    note "put $records_put records in ${put_secs}s ($put_failed put commands failed), shards holding records: $shards_hit of $((STREAMS * STREAM_SHARDS))"
    sleep 2
    local loaded files
    loaded=$(proc_figures)
    files=$(find "$DATA_DIR" -type f | wc -l)
    note "loaded: $loaded; data dir: $files files, $(du -sh "$DATA_DIR" | cut -f1)"
    local check_streams=("ms-000" "$(printf 'ms-%03d' $((STREAMS / 2)))" "$(printf 'ms-%03d' $((STREAMS - 1)))")
    local read_loaded="" st
    for st in "${check_streams[@]}"; do read_loaded+="$st:$(read_back "$st") "; done
    note "read back before the kill (expect $RECORDS_PER_STREAM each): $read_loaded"

    # kill -9, then restart on the same directory.
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    echo "----- restart after kill -9 -----" >>"$server_log"
    start_server "$bin" "$DATA_DIR" "$server_log"
    READY_SECS=-1
    wait_ready || note "NOT READY after kill -9; server log tail: $(tail -3 "$server_log" | tr '\n' ' ')"
    local kill9_ready=$READY_SECS kill9_figures kill9_settled read_kill9=""
    kill9_figures=$(proc_figures)
    sleep 3
    kill9_settled=$(proc_figures)
    for st in "${check_streams[@]}"; do read_kill9+="$st:$(read_back "$st") "; done
    note "after kill -9: ready in ${kill9_ready}s; at ready: $kill9_figures; 3 s later: $kill9_settled; read back: $read_kill9"

    # Clean stop (SIGTERM), then restart.
    stop_server
    local term_stop_secs=$STOP_SECS term_stop_how=$STOP_HOW
    echo "----- restart after SIGTERM -----" >>"$server_log"
    start_server "$bin" "$DATA_DIR" "$server_log"
    READY_SECS=-1
    wait_ready || note "NOT READY after SIGTERM; server log tail: $(tail -3 "$server_log" | tr '\n' ' ')"
    local term_ready=$READY_SECS term_figures term_settled read_term=""
    term_figures=$(proc_figures)
    sleep 3
    term_settled=$(proc_figures)
    for st in "${check_streams[@]}"; do read_term+="$st:$(read_back "$st") "; done
    note "after SIGTERM (stop took ${term_stop_secs}s, $term_stop_how): ready in ${term_ready}s; at ready: $term_figures; 3 s later: $term_settled; read back: $read_term"
    stop_server
    local final_stop="$STOP_SECS $STOP_HOW"
    local warn
    warn=$(grep -c -E 'WARN|ERROR|panicked' "$server_log" || true)
    note "final stop: $final_stop; server log WARN/ERROR/panic lines: $warn; client errors: $(wc -l <"$MS_DIR/client-errors.txt" 2>/dev/null || echo 0)"
    snapshot_top "many-shards end"
    jq -nc --arg run_id "$RUN_ID" --arg ts "$(date -u +%FT%TZ)" --arg bin "$bin" \
        --argjson streams "$STREAMS" --argjson stream_shards "$STREAM_SHARDS" \
        --arg soft_before "$soft_before" --arg hard "$hard" --arg soft_after "$soft_after" \
        --arg fresh_ready "$fresh_ready" --arg create_secs "$create_secs" \
        --argjson create_failed "$create_failed" --arg put_secs "$put_secs" \
        --argjson records_put "$records_put" --argjson put_failed "$put_failed" \
        --argjson shards_hit "$shards_hit" --arg loaded "$loaded" --argjson files "$files" \
        --arg read_loaded "$read_loaded" --arg kill9_ready "$kill9_ready" \
        --arg kill9_figures "$kill9_figures" --arg kill9_settled "$kill9_settled" \
        --arg read_kill9 "$read_kill9" --arg term_stop "$term_stop_secs $term_stop_how" \
        --arg term_ready "$term_ready" --arg term_figures "$term_figures" \
        --arg term_settled "$term_settled" --arg read_term "$read_term" \
        --argjson server_warn "$warn" \
        '{run_id: $run_id, ts: $ts, bin: $bin, streams: $streams, stream_shards: $stream_shards,
          fd_soft_before: $soft_before, fd_hard: $hard, fd_soft_after: $soft_after,
          fresh_ready_secs: ($fresh_ready | tonumber), create_secs: ($create_secs | tonumber),
          create_failed: $create_failed, put_secs: ($put_secs | tonumber),
          records_put: $records_put, put_failed: $put_failed, shards_with_records: $shards_hit,
          loaded: $loaded, data_files: $files, read_back_loaded: $read_loaded,
          kill9_ready_secs: ($kill9_ready | tonumber), kill9_at_ready: $kill9_figures,
          kill9_after_3s: $kill9_settled, read_back_after_kill9: $read_kill9,
          term_stop: $term_stop, term_ready_secs: ($term_ready | tonumber),
          term_at_ready: $term_figures, term_after_3s: $term_settled,
          read_back_after_term: $read_term, server_warn_lines: $server_warn}' \
        | tee -a "$OUT/many-shards.jsonl"
    rm -rf -- "$DATA_DIR"
    DATA_DIR=""
}

case $MODE in
    scaling) scaling ;;
    many-shards) many_shards ;;
    *) echo "MODE must be scaling or many-shards" >&2; exit 2 ;;
esac
