#!/bin/bash
# one device call: build, kvgpu test, then kvgpu replay vs kvsim replay (decision logs and
# outputs equal) on windows of both traces, per-copy and batched swaps
set -u
exec > >(tee -a $OUT/log.txt) 2>&1
T0=$(date +%s)
nvidia-smi -L
gpu/with-devdeps.sh make -j16 gpu all > $OUT/build.log 2>&1 || { tail -30 $OUT/build.log; exit 1; }
echo "build $(( $(date +%s) - T0 )) s"
timeout 90 ./build/kvgpu test > $OUT/kvgpu-test.log 2>&1; echo "kvgpu test rc=$? $(tail -2 $OUT/kvgpu-test.log | tr '\n' ' ')"
echo "after test $(( $(date +%s) - T0 )) s"
one() { # trace strategy limit extra
  w="--limit $3 --rate-scale 8 --gpu-mem-util 0.25 --preempt swap --no-wall-time"
  n=$1-$2$4; n=${n// /}
  ./build/kvsim replay traces/data/$1.csv --strategy $2 $w -o build/r/$n-sim --decision-log build/r/$n-sim.dec 2>/dev/null
  timeout 100 ./build/kvgpu replay traces/data/$1.csv --strategy $2 $w $4 -o build/r/$n-gpu --decision-log build/r/$n-gpu.dec 2> build/r/$n-gpu.log
  rc=$?; same=yes
  for f in requests.csv timeline.csv summary.json; do cmp -s build/r/$n-sim/$f build/r/$n-gpu/$f || same="no:$f"; done
  if [ $rc = 0 ] && cmp -s build/r/$n-sim.dec build/r/$n-gpu.dec && [ $same = yes ]; then r=ok; else r=FAIL; fi
  echo "$r $n rc=$rc lines=$(wc -l < build/r/$n-gpu.dec) outputs=$same $(tail -1 build/r/$n-gpu.log) [$(( $(date +%s) - T0 )) s]"
  [ $r = FAIL ] && tail -3 build/r/$n-gpu.log && cmp build/r/$n-sim.dec build/r/$n-gpu.dec | head -2
}
mkdir -p build/r
for s in paged contiguous chunk-pool compressed; do one azure2023_conv $s 400 ""; done
one azure2023_conv paged 400 "--swap-batched"
one azure2023_conv contiguous 400 "--swap-batched"
one azure2023_conv chunk-pool 400 "--swap-batched"
for s in paged contiguous chunk-pool compressed; do one azure2023_code $s 400 ""; done
cp build/r/*.log $OUT/ 2>/dev/null
