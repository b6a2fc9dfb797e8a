#!/usr/bin/env python3
"""PyTorch's figures on this GPU, to set beside `fxn-cli bench --backend cuda`.

torch.matmul on CUDA tensors, FP32 (TF32 off) and TF32, timed with CUDA events
(median of --reps after warm-up); host<->device copy bandwidth, pinned and pageable;
and the naive end-to-end path of a challenge: A and B in pageable host memory, the
product back in host memory. Random inputs, fresh per size (never zeros).

Usage: python3 perf-compare/cuda/torch_matmul.py [--sizes 1024,2048,4096,8192] [--json FILE]
"""

import argparse
import json
import statistics
import time

import torch


def events_median(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1024,2048,4096,8192")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--json")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "cuda": torch.version.cuda, "matmul": [], "copies": {}, "end_to_end": []}
    print(f"{out['device']}, torch {out['torch']}, CUDA {out['cuda']}")
    print(f"{'size':>6} {'FP32 ms':>9} {'FP32 TFLOPS':>12} {'TF32 ms':>9} {'TF32 TFLOPS':>12}")
    for n in sizes:
        a = torch.rand(n, n, device=dev) * 2 - 1
        b = torch.rand(n, n, device=dev) * 2 - 1
        row = {"size": n}
        for label, tf32 in (("fp32", False), ("tf32", True)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            ms = events_median(lambda: torch.matmul(a, b), args.reps)
            row[label + "_ms"] = ms
            row[label + "_tflops"] = 2 * n**3 / (ms / 1e3) / 1e12
        torch.backends.cuda.matmul.allow_tf32 = False
        out["matmul"].append(row)
        print(f"{n:>6} {row['fp32_ms']:>9.3f} {row['fp32_tflops']:>12.1f} "
              f"{row['tf32_ms']:>9.3f} {row['tf32_tflops']:>12.1f}")

    nbytes = 256 << 20
    count = nbytes // 4
    dev_buf = torch.empty(count, device=dev)
    for kind, pin in (("pinned", True), ("pageable", False)):
        host = torch.rand(count, pin_memory=pin)
        h2d = events_median(lambda: dev_buf.copy_(host, non_blocking=pin), 10)
        d2h = events_median(lambda: host.copy_(dev_buf, non_blocking=pin), 10)
        out["copies"][kind] = {"h2d_gbs": nbytes / (h2d / 1e3) / 1e9,
                               "d2h_gbs": nbytes / (d2h / 1e3) / 1e9}
        print(f"copies {kind}: host->device {out['copies'][kind]['h2d_gbs']:.1f} GB/s, "
              f"device->host {out['copies'][kind]['d2h_gbs']:.1f} GB/s (256 MiB)")

    torch.backends.cuda.matmul.allow_tf32 = False
    for n in [s for s in sizes if s >= 4096]:
        a = torch.rand(n, n) * 2 - 1
        b = torch.rand(n, n) * 2 - 1
        walls = []
        for _ in range(5):
            torch.cuda.synchronize()
            t = time.perf_counter()
            c = torch.matmul(a.to(dev), b.to(dev)).cpu()
            walls.append((time.perf_counter() - t) * 1e3)
        del c
        ms = statistics.median(walls[1:])
        out["end_to_end"].append({"size": n, "ms": ms})
        print(f"end to end from pageable host memory, FP32, {n}: {ms:.1f} ms (median of 4 after 1)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
