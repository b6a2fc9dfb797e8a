#!/usr/bin/env python3
"""What pinning a caller's own buffers would cost: cudaHostRegister and
cudaHostUnregister of pageable memory the size of an N² challenge's A, B and C, timed
on the host, beside a CPU copy of the same bytes into already-pinned memory (what
staging costs). Decides whether registering per call could beat staging.

Usage: python3 perf-compare/cuda/host_register.py [N ...]
"""

import sys
import time

import numpy as np
import torch


def main():
    sizes = [int(s) for s in sys.argv[1:]] or [4096, 8192]
    rt = torch.cuda.cudart()
    torch.cuda.init()
    torch.set_num_threads(16)
    for n in sizes:
        nbytes = 3 * n * n * 4
        host = np.random.rand(nbytes // 4).astype(np.float32)
        regs, unregs = [], []
        for _ in range(3):
            t = time.perf_counter()
            err = rt.cudaHostRegister(host.ctypes.data, nbytes, 0)
            regs.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            rt.cudaHostUnregister(host.ctypes.data)
            unregs.append((time.perf_counter() - t) * 1e3)
            assert int(err) == 0, err
        src = torch.from_numpy(host)
        pinned = torch.empty(nbytes // 4, pin_memory=True)
        copies = []
        for _ in range(3):
            t = time.perf_counter()
            pinned.copy_(src)
            copies.append((time.perf_counter() - t) * 1e3)
        print(f"{n}: {nbytes / 2**20:.0f} MiB: register {min(regs):.1f} ms, unregister "
              f"{min(unregs):.1f} ms; CPU copy into pinned memory {min(copies):.1f} ms "
              f"({nbytes / min(copies) / 1e6:.1f} GB/s, torch with 16 threads)")


if __name__ == "__main__":
    main()
