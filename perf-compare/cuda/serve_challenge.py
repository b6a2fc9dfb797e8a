#!/usr/bin/env python3
"""Sends size-N challenges to a running `fxn-cli serve` and prints the split of each.

`Server-Timing` gives read, parse, multiply (the engine's run: generating A and B,
the product, the finiteness scan) and answer (Merkle hash and JSON); the response's
computationTimeMs is the product alone, so generate ≈ multiply - computationTimeMs.

Usage: serve_challenge.py URL SIZE BACKEND [REPEATS]
"""

import json
import sys
import time
import urllib.request


def main():
    url, size, backend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    body = json.dumps({"type": "MATRIX_MULTIPLICATION",
                       "payload": {"size": size, "backend": backend, "seed": 7}}).encode()
    for i in range(repeats):
        req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=600) as r:
            doc = json.loads(r.read())
            timing = r.headers.get("server-timing")
        wall = (time.perf_counter() - t) * 1e3
        parts = {p.split(";")[0].strip(): float(p.split("dur=")[1]) for p in timing.split(",")}
        compute = doc["computationTimeMs"]
        print(json.dumps({
            "call": i, "size": size, "asked": backend, "backend": doc["backend"],
            "wall_ms": round(wall, 1), "parse_ms": parts.get("parse"),
            "generate_ms": round(parts.get("multiply", 0) - compute, 1),
            "multiply_ms": round(compute, 1), "hash_and_json_ms": parts.get("answer"),
            "gflops": round(doc["gflops"], 1), "deviceInfo": doc["deviceInfo"],
            "merkleRoot": doc["merkleRoot"]}))


if __name__ == "__main__":
    main()
