#!/bin/sh
# replay-check.sh OUT_DIR — kvgpu replay against kvsim replay on a window of each bundled Azure
# trace, for every strategy: the allocator decision logs must be equal line for line (and the
# engine's output files byte for byte, since kvgpu keeps kvsim's clock). Run by make gpu-test
# on a machine with a GPU; kvgpu's measured files (gpu_steps.csv, gpu_summary.json) stay in
# OUT_DIR/<trace>-<strategy>-gpu/.
set -eu
out=${1:?usage: replay-check.sh OUT_DIR}
kvsim=${KVSIM:-./build/kvsim}
kvgpu=${KVGPU:-./build/kvgpu}
mkdir -p "$out"
# a window: the first 400 requests at 8x their rate on a pool a quarter of the card's, with
# swapping, so that preemptions, swaps and chunk maps all happen
window="--limit 400 --rate-scale 8 --gpu-mem-util 0.25 --preempt swap --no-wall-time"
fail=0
for trace in azure2023_conv azure2023_code; do
  for s in contiguous chunk-pool paged compressed; do
    sim="$out/$trace-$s-sim"; gpu="$out/$trace-$s-gpu"
    "$kvsim" replay "traces/data/$trace.csv" --strategy "$s" $window -o "$sim" \
      --decision-log "$sim.decisions" 2>/dev/null
    "$kvgpu" replay "traces/data/$trace.csv" --strategy "$s" $window -o "$gpu" \
      --decision-log "$gpu.decisions" 2>"$gpu.log"
    same=yes
    for f in requests.csv timeline.csv summary.json; do
      cmp -s "$sim/$f" "$gpu/$f" || same="no ($f differs)"
    done
    if cmp -s "$sim.decisions" "$gpu.decisions" && [ "$same" = yes ]; then
      printf 'ok   %-15s %-11s %8d decisions equal; %s\n' "$trace" "$s" \
        "$(wc -l < "$gpu.decisions")" "$(tail -1 "$gpu.log")"
    else
      printf 'FAIL %-15s %-11s decisions: %s; outputs equal: %s\n' "$trace" "$s" \
        "$(cmp "$sim.decisions" "$gpu.decisions" 2>&1 | head -1)" "$same"
      fail=1
    fi
  done
done
exit $fail
