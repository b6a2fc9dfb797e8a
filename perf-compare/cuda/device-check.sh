#!/usr/bin/env bash
# Correctness on the GPU machine: the CUDA tests with FXN_REQUIRE_CUDA=1, our kernels
# under compute-sanitizer (memcheck, racecheck), gpu info. Run from the directory that
# holds the carried binaries: fxn-cli and cuda-tests (the release test binary of
# metal-matmul/tests/cuda.rs). Logs go to $OUT when it is set.
set -uo pipefail
D=${D:-.devcarry/cuda}
OUT=${OUT:-/tmp}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
"$D/fxn-cli" --version
"$D/fxn-cli" gpu info
echo "== tests"
FXN_REQUIRE_CUDA=1 "$D/cuda-tests" --nocapture --test-threads=2 >"$OUT/tests.log" 2>&1
echo "tests rc=$?"; grep -E "^test |test result|panicked|skipped" "$OUT/tests.log" | tail -20
echo "== compute-sanitizer"
for tool in memcheck racecheck; do
  for method in simple tiled register-blocked cublas; do
    compute-sanitizer --tool $tool --print-limit 5 "$D/fxn-cli" matmul --backend cuda \
      --method $method -m 129 -k 257 -n 131 --seed 1 >"$OUT/san-$tool-$method.log" 2>&1
    echo "$tool $method rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/san-$tool-$method.log" | tr '\n' ' ')"
  done
done
