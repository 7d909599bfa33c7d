#!/usr/bin/env bash
# The fan-out CPU target measured so that one noisy run does not decide it. From the repository
# root, after `cargo build --release -p rheo`:
#
#   benches/fanout-ratio.sh ROUNDS [TAG]
#
# Each round runs `benches/fanout-run.sh` with 0, 1 and 20 consumers in turn (a fresh server
# each, same load), for every binary in RHEO_BINS (default: target/release/rheo) before the next
# consumer count, so that binaries compared with each other meet the same disk (RHEO_BINS names
# server binaries; the bench is always target/release/rheo). It prints each run's server CPU
# (total, user, system) and put-to-delivery p99, then per binary the medians over the rounds of:
#   - ratio:    CPU(20) / CPU(1), the target (at most 2);
#   - per consumer: (CPU(20) - CPU(0)) / 20, the CPU one more consumer adds, and
#     CPU(1) - CPU(0), the same from the 1-consumer run;
#   - ingest:   CPU(0), what the puts alone cost;
#   - user-mode CPU(20), the server's own code, which moves less with the disk than the total.
# A run that fails its completeness check stops the script.
set -euo pipefail
rounds=${1:?usage: benches/fanout-ratio.sh ROUNDS [TAG]}
tag=${2:-ratio}
bins=${RHEO_BINS:-target/release/rheo}
results=target/fanout-ratio-$tag.tsv
: > "$results"
for round in $(seq 1 "$rounds"); do
  for consumers in 0 1 20; do
    index=0
    for bin in $bins; do
      index=$((index + 1))
      run=$tag-r$round-b$index
      RHEO_BIN=$bin benches/fanout-run.sh "$consumers" "$run" > /dev/null
      out=target/fanout-$consumers-$run.txt
      grep -q "completeness: ok" "$out" || { echo "run $run ($bin) failed: see $out" >&2; exit 1; }
      cpu=$(awk '/^server CPU:/ { print $3 }' "$out")
      user=$(sed -n 's/^server CPU: .*user \([0-9.]*\) s, system \([0-9.]*\) s.*/\1\t\2/p' "$out")
      p99=$(sed -n 's/^put-to-delivery latency: .*p99 \([0-9.]*\) ms,.*/\1/p' "$out")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$bin" "$round" "$consumers" "$cpu" "${p99:--}" "$user" | tee -a "$results"
    done
  done
done
echo
awk -F'\t' '
  { cpu[$1, $2, $3] = $4; user[$1, $2, $3] = $6; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } if ($2 > rounds) rounds = $2 }
  function median(values, count,   i, j, t) {
    for (i = 2; i <= count; i++) for (j = i; j > 1 && values[j - 1] > values[j]; j--) {
      t = values[j]; values[j] = values[j - 1]; values[j - 1] = t
    }
    return count % 2 ? values[(count + 1) / 2] : (values[count / 2] + values[count / 2 + 1]) / 2
  }
  END {
    for (b = 1; b <= n; b++) {
      bin = order[b]
      for (r = 1; r <= rounds; r++) {
        ratio[r] = cpu[bin, r, 20] / cpu[bin, r, 1]
        marginal[r] = (cpu[bin, r, 20] - cpu[bin, r, 0]) / 20
        first[r] = cpu[bin, r, 1] - cpu[bin, r, 0]
        ingest[r] = cpu[bin, r, 0]
        user20[r] = user[bin, r, 20]
      }
      printf "%s over %d rounds: median ratio %.2f, per consumer %.3f s (20-consumer run) and %.3f s (1-consumer run), ingest %.2f s, user-mode CPU with 20 consumers %.2f s\n",
        bin, rounds, median(ratio, rounds), median(marginal, rounds), median(first, rounds), median(ingest, rounds), median(user20, rounds)
    }
  }' "$results"
