#!/usr/bin/env bash
# Lent pinned host memory on the GPU machine: the CUDA tests, memcheck of the in-place
# path, fxn-cli bench from heap Vecs and from lent memory side by side, and a size-8192
# challenge through serve (whose engine now generates into lent memory).
set -uo pipefail
D=${D:-.devcarry/cuda}
OUT=${OUT:-/tmp}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=/usr/local/cuda/bin:$PATH
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader
nproc
echo "== tests"
FXN_REQUIRE_CUDA=1 "$D/cuda-tests" --nocapture --test-threads=2 >"$OUT/tests.log" 2>&1
echo "tests rc=$?"; grep -E "^test |test result|panicked" "$OUT/tests.log" | tail -20
echo "== memcheck, lent memory, two blocks"
compute-sanitizer --tool memcheck --print-limit 5 "$D/fxn-cli" bench --backend cuda \
  --methods cublas,register-blocked --shapes 1100x300x700 --reps 3 --warmup 1 --host-memory backend >"$OUT/san-lent.log" 2>&1
echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/san-lent.log" | tr '\n' ' ')"
for mem in heap backend heap backend; do
  echo "== bench cuda, host memory $mem"
  "$D/fxn-cli" bench --backend cuda --methods cublas --sizes 4096,8192 --reps 20 --budget 4 --host-memory $mem 2>&1
done
echo "== challenge 8192 through serve"
"$D/fxn-cli" serve --listen 127.0.0.1:8181 --max-concurrent 1 >"$OUT/serve-gpu.log" 2>&1 &
gpu=$!
for _ in $(seq 100); do python3 -c "import urllib.request as u;u.urlopen('http://127.0.0.1:8181/health')" 2>/dev/null && break; sleep 0.1; done
python3 "$D/serve_challenge.py" http://127.0.0.1:8181/challenge 8192 cuda 4
kill $gpu
