#!/usr/bin/env bash
# Speed on the GPU machine, in one command: fxn-cli bench on CUDA (every method, GPU
# time and end to end from host memory, with the copy/kernel split) beside PyTorch's
# torch.matmul, then a size-8192 challenge through `fxn-cli serve` on CUDA and on the
# CPU (the table is the record: one bench run, not a JSON run beside it). Run from the directory that holds the carried binaries (D, default
# .devcarry/cuda: fxn-cli and these scripts). Logs and JSON go to $OUT.
set -uo pipefail
D=${D:-.devcarry/cuda}
OUT=${OUT:-/tmp}
SIZES=${SIZES:-256,512,1024,2048,4096,8192}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONUNBUFFERED=1
date -u; nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader
echo "== torch"
python3 "$D/torch_matmul.py" --sizes 1024,2048,4096,8192 --json "$OUT/torch.json" 2>&1 | tee "$OUT/torch.txt"
echo "== fxn-cli bench cuda"
"$D/fxn-cli" bench --backend cuda --methods ${METHODS:-all} --sizes "$SIZES" --reps ${REPS:-20} \
  --budget 4 --plot "$OUT/cuda.svg" 2>&1 | tee "$OUT/bench.txt"
echo "bench rc=${PIPESTATUS[0]}"
if [ -n "${CHALLENGE:-1}" ]; then
  echo "== challenge 8192 through serve"
  "$D/fxn-cli" serve --listen 127.0.0.1:8181 --max-concurrent 1 >"$OUT/serve-gpu.log" 2>&1 &
  gpu=$!
  "$D/fxn-cli" serve --listen 127.0.0.1:8182 --max-concurrent 1 --no-gpu >"$OUT/serve-cpu.log" 2>&1 &
  cpu=$!
  for port in 8181 8182; do
    for _ in $(seq 100); do python3 -c "import urllib.request as u;u.urlopen('http://127.0.0.1:$port/health')" 2>/dev/null && break; sleep 0.1; done
  done
  python3 "$D/serve_challenge.py" http://127.0.0.1:8181/challenge 8192 cuda 3 | tee "$OUT/challenge-cuda.jsonl"
  python3 "$D/serve_challenge.py" http://127.0.0.1:8182/challenge 8192 cpu 2 | tee "$OUT/challenge-cpu.jsonl"
  kill $gpu $cpu
fi
