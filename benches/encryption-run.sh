#!/usr/bin/env bash
# What server-side encryption at rest costs: put throughput and catch-up read throughput of
# `rheo bench` on a plain stream against the same on a stream encrypted with
# StartStreamEncryption (AES-256-GCM, each shard's segments sealed on the journal's commit
# thread, opened on read), interleaved in one run. From the repository root:
#
#   benches/encryption-run.sh [RHEO_BINARY]        # default: target/release/rheo
#
# For each round, each shard count in $SHARDS and each mode (plain, encrypted; the order swaps
# every round, so neither mode always meets the disk first), a fresh
# `rheo serve --no-limits --durability sync` on a fresh data directory under $SCRATCH (keep it
# on the disk under test, not a tmpfs; the server's default keyring, <data_dir>/keyring.json,
# holds alias/aws/kinesis), then one `rheo bench` (gRPC): $PRODUCERS producers x PutRecords of
# $BATCH x $RECORD_SIZE B for $DURATION s, no tailing consumers, then a catch-up read of every
# shard from the trim horizon by $CATCH_UP consumers. In the encrypted mode the bench calls
# StartStreamEncryption with $KEY_ID right after creating its stream, before any put; the next
# commit of each shard starts an encrypted segment, so every record of the run is encrypted.
# The script checks that: the number of segment key files (*.key) in the data directory is
# sampled while the client runs (expect 0 plain, at least one per shard encrypted).
# Also recorded per run: put call p50/p99, GetRecords p50/p99, whether the catch-up read
# returned every acknowledged record, the server's CPU-s in the put and the catch-up phases
# (/proc/PID/stat), the other processes' CPU-s in the put window (machine busy minus server and
# client), the 1-minute load average at the start, the most build processes seen, and the
# server log's WARN/ERROR/panic lines (all, and those other than the warning every start gives
# here that the open-file limit lowered shard_limit).
# Output: a row per run on stdout, JSON lines in $OUT/results.jsonl (field run_id tells runs of
# this invocation apart), per-run client and server logs in $OUT/$RUN_ID, and at the end
# medians per shard count and mode, the ratio encrypted/plain of the medians and of each
# round's pair, and the check of the target (encrypted puts >= $TARGET of plain).
#
# Environment: SHARDS ("4 64"), ROUNDS (5), DURATION (15), PRODUCERS (8), BATCH (500),
# RECORD_SIZE (1024), CATCH_UP (2), KEY_ID (alias/aws/kinesis), TARGET (0.90),
# OUT (target/encryption-run), SCRATCH (/work/bench/scratch-enc), PORT (45890; metrics on
# PORT+1), READY_TIMEOUT (120), QUIET_WAIT (0: before each run, wait up to this many seconds
# until no cargo/rustc/cc/ld process has been seen for 5 s; the wait is recorded per run),
# KEEP_DATA (set: keep the last data directory).
# Every wait is bounded; a trap stops every server and client this script started.
set -euo pipefail

SHARDS=${SHARDS:-"4 64"}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-15}
PRODUCERS=${PRODUCERS:-8}
BATCH=${BATCH:-500}
RECORD_SIZE=${RECORD_SIZE:-1024}
CATCH_UP=${CATCH_UP:-2}
KEY_ID=${KEY_ID:-alias/aws/kinesis}
TARGET=${TARGET:-0.90}
OUT=${OUT:-target/encryption-run}
SCRATCH=${SCRATCH:-/work/bench/scratch-enc}
PORT=${PORT:-45890}
MPORT=$((PORT + 1))
READY_TIMEOUT=${READY_TIMEOUT:-120}
QUIET_WAIT=${QUIET_WAIT:-0}

BIN=${1:-target/release/rheo}
[[ -x $BIN ]] || { echo "not an executable: $BIN (usage: $0 [RHEO_BINARY])" >&2; exit 2; }
BIN=$(realpath "$BIN")
for tool in jq curl ss awk; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done

mkdir -p "$OUT" "$SCRATCH"
OUT=$(realpath "$OUT")
SCRATCH=$(realpath "$SCRATCH")
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)-$$
LOG=$OUT/run-$RUN_ID.log

SERVER_PID=""
CLIENT_PID=""
WATCHER_PID=""
DATA_DIR=""

cleanup() {
    local pid
    # The client runs under timeout(1), which passes SIGTERM on to it.
    if [[ -n $CLIENT_PID ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then
        kill -TERM "$CLIENT_PID" 2>/dev/null || true
    fi
    for pid in "$WATCHER_PID" "$SERVER_PID"; do
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
loadavg() { cut -d' ' -f1 /proc/loadavg; }
# utime + stime in clock ticks (0 once the process is gone).
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
# Segment key files (N.key beside each encrypted segment; the data dir's token.key is not one).
key_files() { find "$1/streams" -name '*.key' -type f 2>/dev/null | wc -l; }
port_free() { [[ -z $(ss -Hltn "sport = :$1") ]]; }

# wait_quiet: up to QUIET_WAIT s until no build process for 5 s in a row; sets QUIET_SECS.
wait_quiet() {
    local started quiet=0
    QUIET_SECS=0
    ((QUIET_WAIT > 0)) || return 0
    started=$(date +%s)
    while (($(date +%s) - started < QUIET_WAIT)); do
        if (($(builds_running) == 0)); then
            quiet=$((quiet + 1))
            ((quiet >= 5)) && break
        else
            quiet=0
        fi
        sleep 1
    done
    QUIET_SECS=$(($(date +%s) - started))
}

# start_server DIR LOGFILE: starts it in the background, sets SERVER_PID and START_TIME.
start_server() {
    local dir=$1 log=$2 waited=0
    while ! port_free "$PORT" || ! port_free "$MPORT"; do
        ((waited++ < 100)) || { note "ports $PORT/$MPORT still busy"; return 1; }
        sleep 0.1
    done
    START_TIME=$(now)
    "$BIN" serve --data-dir "$dir" --no-limits --durability sync \
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

# stop_server: SIGTERM, SIGKILL after 20 s; sets STOP_SECS and STOP_HOW.
stop_server() {
    local started i
    STOP_HOW=gone
    STOP_SECS=0
    [[ -n $SERVER_PID ]] || return 0
    started=$(now)
    if kill -TERM "$SERVER_PID" 2>/dev/null; then
        STOP_HOW=term
        for ((i = 0; i < 400; i++)); do
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

# watcher SERVER CLIENT CLIENT_OUT DATA RUNDIR: until RUNDIR/stop exists, every 0.5 s the most
# key files seen in DATA and build processes seen (RUNDIR/keys, RUNDIR/builds); when the client
# prints its put line, "time busy_ticks server_ticks client_ticks" in RUNDIR/put-end.
watcher() {
    local server=$1 client=$2 out=$3 data=$4 dir=$5 i=0 keys=0 builds=0 k b put_seen=false
    while [[ ! -e $dir/stop ]]; do
        if ! $put_seen && grep -q '^put:' "$out" 2>/dev/null; then
            echo "$(now) $(busy_ticks) $(cpu_ticks "$server") $(cpu_ticks "$client")" >"$dir/put-end"
            put_seen=true
        fi
        if ((i % 5 == 0)); then
            k=$(key_files "$data")
            ((k > keys)) && keys=$k
            echo "$keys" >"$dir/keys"
            b=$(builds_running)
            ((b > builds)) && builds=$b
            echo "$builds" >"$dir/builds"
        fi
        i=$((i + 1))
        sleep 0.1
    done
}

# one_run ROUND SHARDS MODE ORDER: a fresh server, one client run, one JSON line.
one_run() {
    local round=$1 shards=$2 mode=$3 order=$4
    local tag="$mode-s$shards-r$round"
    local dir="$OUT/$RUN_ID/$tag" client_out server_log rc=0
    mkdir -p "$dir"
    client_out=$dir/client.txt
    server_log=$dir/server.log
    wait_quiet
    DATA_DIR=$(mktemp -d "$SCRATCH/run-XXXXXX")
    local load0 builds0
    load0=$(loadavg)
    builds0=$(builds_running)
    start_server "$DATA_DIR" "$server_log" || return 1
    READY_SECS=""
    if ! wait_ready; then
        stop_server
        rm -rf -- "$DATA_DIR"
        DATA_DIR=""
        return 1
    fi
    local busy0 scpu0 t0
    busy0=$(busy_ticks)
    scpu0=$(cpu_ticks "$SERVER_PID")
    t0=$(now)
    local encrypt_args=()
    [[ $mode == encrypted ]] && encrypt_args=(--encrypt "$KEY_ID")
    timeout -k 5 $((DURATION + 420)) "$BIN" bench --endpoint "http://127.0.0.1:$PORT" \
        --shards "$shards" --producers "$PRODUCERS" --batch "$BATCH" \
        --record-bytes "$RECORD_SIZE" --duration "${DURATION}s" --consumers 0 \
        --catch-up-consumers "$CATCH_UP" "${encrypt_args[@]}" >"$client_out" 2>&1 &
    CLIENT_PID=$!
    # The client's own pid (timeout forks it) for its CPU time.
    local real_client=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        real_client=$(pgrep -P "$CLIENT_PID" | head -1 || true)
        [[ -n $real_client ]] && break
        sleep 0.02
    done
    watcher "$SERVER_PID" "${real_client:-$CLIENT_PID}" "$client_out" "$DATA_DIR" "$dir" &
    WATCHER_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    local scpu_end t_end
    scpu_end=$(cpu_ticks "$SERVER_PID")
    t_end=$(now)
    touch "$dir/stop"
    wait "$WATCHER_PID" 2>/dev/null || true
    WATCHER_PID=""
    local server_alive=true
    kill -0 "$SERVER_PID" 2>/dev/null || server_alive=false
    stop_server
    rm -rf -- "$DATA_DIR"
    DATA_DIR=""

    # Client figures (see crates/rheo/src/bench.rs for the lines' format).
    local put_line lat_line cu_line get_line
    local acked="" rps="" put_mbs="" failed="" p50="" p99="" read="" read_mb="" read_secs=""
    local read_mbs="" get_p50="" get_p99="" matches="" errors first_error encrypted_line=false
    put_line=$(grep -m1 '^put:' "$client_out" || true)
    lat_line=$(grep -m1 '^PutRecords latency:' "$client_out" || true)
    cu_line=$(grep -m1 '^catch-up read:' "$client_out" || true)
    get_line=$(grep -m1 '^GetRecords latency (catch-up):' "$client_out" || true)
    grep -q ": encrypted under " "$client_out" && encrypted_line=true
    if [[ -n $put_line ]]; then
        acked=$(sed -E 's/^put: ([0-9]+) records.*/\1/' <<<"$put_line")
        rps=$(sed -E 's/.* = ([0-9]+) records\/s.*/\1/' <<<"$put_line")
        put_mbs=$(sed -E 's/.* records\/s, ([0-9.]+) MB\/s.*/\1/' <<<"$put_line")
        failed=$(sed -E 's/.*; ([0-9]+) failed;.*/\1/' <<<"$put_line")
    fi
    if [[ -n $lat_line ]]; then
        p50=$(sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' <<<"$lat_line")
        p99=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$lat_line")
    fi
    if [[ -n $cu_line ]]; then
        read=$(sed -E 's/^catch-up read: ([0-9]+) records.*/\1/' <<<"$cu_line")
        read_mb=$(sed -E 's/.* records, ([0-9.]+) MB in.*/\1/' <<<"$cu_line")
        read_secs=$(sed -E 's/.* MB in ([0-9.]+) s =.*/\1/' <<<"$cu_line")
        read_mbs=$(sed -E 's/.* s = ([0-9.]+) MB\/s.*/\1/' <<<"$cu_line")
    fi
    if [[ -n $get_line ]]; then
        get_p50=$(sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' <<<"$get_line")
        get_p99=$(sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$get_line")
    fi
    if [[ -n $read && -n $acked ]]; then
        if [[ $read == "$acked" ]]; then matches=true; else matches=false; fi
    fi
    errors=$(grep -c -E 'put failed|^Error|error:' "$client_out" || true)
    first_error=$(grep -m1 -E 'put failed|^Error|error:' "$client_out" || true)

    # Server figures.
    local server_cpu_put="" server_cpu_read="" client_cpu_put="" others="" put_secs=""
    if [[ -s $dir/put-end ]]; then
        local t1 busy1 scpu1 ccpu1
        read -r t1 busy1 scpu1 ccpu1 <"$dir/put-end"
        put_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
        server_cpu_put=$(awk -v a="$scpu0" -v b="$scpu1" 'BEGIN {printf "%.2f", (b - a) / 100}')
        client_cpu_put=$(awk -v b="$ccpu1" 'BEGIN {printf "%.2f", b / 100}')
        others=$(awk -v a="$busy0" -v b="$busy1" -v s="$server_cpu_put" -v c="$client_cpu_put" \
            'BEGIN {printf "%.2f", (b - a) / 100 - s - c}')
        if ((scpu_end > 0)); then
            server_cpu_read=$(awk -v a="$scpu1" -v b="$scpu_end" 'BEGIN {printf "%.2f", (b - a) / 100}')
        fi
    fi
    local keys builds server_warn
    keys=$(cat "$dir/keys" 2>/dev/null || echo 0)
    builds=$(cat "$dir/builds" 2>/dev/null || echo 0)
    ((builds0 > builds)) && builds=$builds0
    server_warn=$(grep -c -E 'WARN|ERROR|panicked' "$server_log" || true)
    # Every start warns that the fd limit lowered shard_limit (20,000 fds here); the rest count.
    local other_warn first_warn
    other_warn=$(grep -E 'WARN|ERROR|panicked' "$server_log" | grep -c -v 'open-file limit' || true)
    first_warn=$(grep -E 'WARN|ERROR|panicked' "$server_log" | grep -v 'open-file limit' | head -1 | cut -c1-300 || true)
    local client_secs
    client_secs=$(awk -v a="$t0" -v b="$t_end" 'BEGIN {printf "%.2f", b - a}')

    jq -nc --arg run_id "$RUN_ID" --arg ts "$(date -u +%FT%TZ)" --argjson round "$round" \
        --arg mode "$mode" --argjson order "$order" --argjson shards "$shards" \
        --argjson duration "$DURATION" --argjson producers "$PRODUCERS" --argjson batch "$BATCH" \
        --argjson record_size "$RECORD_SIZE" --argjson catch_up "$CATCH_UP" --arg bin "$BIN" \
        --arg rps "$rps" --arg put_mbs "$put_mbs" --arg p50 "$p50" --arg p99 "$p99" \
        --arg acked "$acked" --arg failed "$failed" --arg read "$read" --arg read_mb "$read_mb" \
        --arg read_secs "$read_secs" --arg read_mbs "$read_mbs" --arg get_p50 "$get_p50" \
        --arg get_p99 "$get_p99" --arg matches "$matches" --argjson errors "$errors" \
        --arg first_error "$first_error" --argjson encrypted_line "$encrypted_line" \
        --argjson keys "$keys" --arg put_secs "$put_secs" --arg server_cpu_put "$server_cpu_put" \
        --arg server_cpu_read "$server_cpu_read" --arg client_cpu_put "$client_cpu_put" \
        --arg others "$others" --arg load "$load0" --argjson builds "$builds" \
        --argjson quiet_secs "$QUIET_SECS" \
        --arg ready "$READY_SECS" --arg stop_secs "$STOP_SECS" --arg stop_how "$STOP_HOW" \
        --arg client_secs "$client_secs" --argjson client_rc "$rc" \
        --argjson server_warn "$server_warn" --argjson other_warn "$other_warn" \
        --arg first_warn "$first_warn" --argjson server_alive "$server_alive" '
        def num: if . == "" or . == "null" then null else tonumber end;
        {run_id: $run_id, ts: $ts, round: $round, mode: $mode, order_in_round: $order,
         shards: $shards, duration_secs: $duration, producers: $producers, batch: $batch,
         record_size: $record_size, catch_up_consumers: $catch_up, bin: $bin,
         records_per_s: ($rps | num), put_mb_per_s: ($put_mbs | num), p50_ms: ($p50 | num),
         p99_ms: ($p99 | num), acked: ($acked | num), failed_records: ($failed | num),
         read_back: ($read | num), read_mb: ($read_mb | num), read_secs: ($read_secs | num),
         read_mb_per_s: ($read_mbs | num), get_p50_ms: ($get_p50 | num),
         get_p99_ms: ($get_p99 | num),
         read_matches: (if $matches == "" then null else $matches == "true" end),
         client_errors: $errors, first_error: $first_error,
         client_said_encrypted: $encrypted_line, key_files_max: $keys,
         put_window_secs: ($put_secs | num), server_cpu_put: ($server_cpu_put | num),
         server_cpu_read: ($server_cpu_read | num), client_cpu_put: ($client_cpu_put | num),
         others_cpu_put: ($others | num), load1_at_start: ($load | num),
         builds_seen_max: $builds, quiet_wait_secs: $quiet_secs, ready_secs: ($ready | num), stop_secs: ($stop_secs | num),
         stop_how: $stop_how, client_secs: ($client_secs | num), client_rc: $client_rc,
         server_warn_lines: $server_warn, server_warn_other: $other_warn,
         first_other_warn: $first_warn, server_alive_after_client: $server_alive}' \
        >>"$OUT/results.jsonl"
    print_row "$(tail -1 "$OUT/results.jsonl")"
    # A mode that is not what it says would make the comparison meaningless.
    if [[ $mode == encrypted ]] && { ! $encrypted_line || ((keys < shards)); }; then
        note "WARNING $tag: the stream does not look encrypted (client line: $encrypted_line, key files: $keys)"
    elif [[ $mode == plain ]] && ((keys > 0)); then
        note "WARNING $tag: $keys key files in a plain run"
    fi
}

ROW_FORMAT='%-9s %6s %5s %10s %7s %7s %9s %5s %6s %8s %7s %6s %6s %6s %5s %4s %3s %4s %3s\n'
print_header() {
    # shellcheck disable=SC2059
    printf "$ROW_FORMAT" mode shards round records/s p50ms p99ms acked fail readok \
        readMB/s getp99 srvPut srvRd othCPU load keys bld warn rc
}
print_row() {
    # shellcheck disable=SC2046,SC2059
    printf "$ROW_FORMAT" $(jq -r '[.mode, .shards, .round,
        (.records_per_s // "-" | tostring), (.p50_ms // "-" | tostring), (.p99_ms // "-" | tostring),
        (.acked // "-" | tostring), ((.failed_records // 0) + (.client_errors // 0) | tostring),
        (if .read_matches == null then "-" else (.read_matches | tostring) end),
        (.read_mb_per_s // "-" | tostring), (.get_p99_ms // "-" | tostring),
        (.server_cpu_put // "-" | tostring), (.server_cpu_read // "-" | tostring),
        (.others_cpu_put // "-" | tostring), (.load1_at_start // "-" | tostring),
        .key_files_max, .builds_seen_max, .server_warn_other, .client_rc]
        | map(tostring) | join(" ")' <<<"$1")
}

summarize() {
    echo
    echo "== medians, run $RUN_ID (put records/s, put call p50/p99 ms, catch-up MB/s, server CPU-s in the put / catch-up phase, others' CPU-s in the put window)"
    jq -rs --arg run_id "$RUN_ID" '
        def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
            else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def r2: if . == null then "-" else (. * 100 | round / 100 | tostring) end;
        [.[] | select(.run_id == $run_id)] | group_by([.shards, .mode])[] |
        [(.[0].shards | tostring), .[0].mode, (length | tostring),
         ([.[].records_per_s | select(. != null)] | median | r2),
         ([.[].p50_ms | select(. != null)] | median | r2),
         ([.[].p99_ms | select(. != null)] | median | r2),
         ([.[].read_mb_per_s | select(. != null)] | median | r2),
         ([.[].server_cpu_put | select(. != null)] | median | r2),
         ([.[].server_cpu_read | select(. != null)] | median | r2),
         ([.[].others_cpu_put | select(. != null)] | median | r2),
         ([.[] | select(.read_matches != true or (.failed_records // 0) > 0 or .client_errors > 0)] | length | tostring),
         ([.[].server_warn_other] | add | tostring)] | @tsv' "$OUT/results.jsonl" |
        { printf 'shards\tmode\truns\trecords/s\tp50\tp99\tread_MB/s\tsrv_cpu_put\tsrv_cpu_read\tothers_cpu\tbad_runs\twarn_lines\n'; cat; } |
        column -t -s $'\t'
    echo
    echo "== encrypted / plain (ratio of the medians; each round's pair in brackets)"
    jq -rs --arg run_id "$RUN_ID" --argjson target "$TARGET" '
        def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
            else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def r3: if . == null then "-" else (. * 1000 | round / 1000 | tostring) end;
        def ratio($a; $b): if $a == null or $b == null or $b == 0 then null else $a / $b end;
        [.[] | select(.run_id == $run_id)] as $runs |
        ($runs | map(.shards) | unique)[] as $s |
        [$runs[] | select(.shards == $s)] as $at |
        def med($m; $f): [$at[] | select(.mode == $m) | .[$f] | select(. != null)] | median;
        def pairs($f): [($at | map(.round) | unique)[] as $r |
            ([$at[] | select(.round == $r and .mode == "encrypted") | .[$f]][0]) as $e |
            ([$at[] | select(.round == $r and .mode == "plain") | .[$f]][0]) as $p |
            ratio($e; $p) | select(. != null)];
        (ratio(med("encrypted"; "records_per_s"); med("plain"; "records_per_s"))) as $put |
        "\($s) shards: puts \($put | r3) [\(pairs("records_per_s") | map(r3) | join(" "))], median of pairs \(pairs("records_per_s") | median | r3); catch-up reads \(ratio(med("encrypted"; "read_mb_per_s"); med("plain"; "read_mb_per_s")) | r3) [\(pairs("read_mb_per_s") | map(r3) | join(" "))]; server CPU-s per put phase \(ratio(med("encrypted"; "server_cpu_put"); med("plain"; "server_cpu_put")) | r3)\n  target encrypted puts >= \($target) x plain: \(if $put == null then "not measured" elif $put >= $target then "met" else "NOT met" end) (\($put | r3))"' \
        "$OUT/results.jsonl"
}

note "run $RUN_ID: SHARDS=\"$SHARDS\" ROUNDS=$ROUNDS DURATION=$DURATION QUIET_WAIT=$QUIET_WAIT producers $PRODUCERS x $BATCH x $RECORD_SIZE B, catch-up consumers $CATCH_UP, key $KEY_ID"
note "binary: $BIN; scratch: $SCRATCH ($(df --output=source,fstype "$SCRATCH" | tail -1 | tr -s ' '))"
note "$(date -u) | nproc $(nproc) | kernel $(uname -r) | AES-NI: $(grep -q -w aes /proc/cpuinfo && echo yes || echo no) | load $(cut -d' ' -f1-3 /proc/loadavg) | builds running now: $(builds_running)"
print_header
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2 == 1)); then modes="plain encrypted"; else modes="encrypted plain"; fi
    for shards in $SHARDS; do
        order=0
        for mode in $modes; do
            order=$((order + 1))
            one_run "$round" "$shards" "$mode" "$order" ||
                note "run $mode $shards shards round $round failed"
        done
    done
done
summarize | tee -a "$LOG"
echo
echo "all rows: jq -c 'select(.run_id == \"$RUN_ID\")' $OUT/results.jsonl; logs: $OUT/$RUN_ID"
