"""Benchmark: sequence windows [n, 64, 40] over 1,000,000 rows as views, versus materialising them.

    .venv/bin/python bench/windows.py [--rows 1000000] [--features 40] [--seq 64] [--batches 400]

Builds a float32 feature matrix, takes windows with engine.data.windows.sequence_windows and draws
shuffled mini-batches the way a DataLoader does. Peak traced memory (tracemalloc) is reported as a
multiple of the feature matrix (goal < 2x); the materialised alternative is computed, not allocated
(it would not fit: 64x the matrix).
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
from rich.console import Console
from rich.progress import track

from engine.data.windows import sequence_windows, window_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=40)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--batches", type=int, default=400)
    args = parser.parse_args()
    console = Console()
    rng = np.random.default_rng(0)
    tracemalloc.start()
    X = rng.standard_normal((args.rows, args.features), dtype=np.float32)
    y = rng.integers(0, 2, args.rows)
    base = X.nbytes
    tracemalloc.reset_peak()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    W = sequence_windows(X, args.seq)
    targets = window_targets(y, args.seq)
    t_view = time.perf_counter() - start
    order = rng.permutation(len(W))
    checksum = 0.0
    start = time.perf_counter()
    for b in track(range(args.batches), description="batches", console=console):
        idx = np.sort(order[b * args.batch : (b + 1) * args.batch])
        xb = np.ascontiguousarray(W[idx])  # what a collate step copies: one batch
        checksum += float(xb[:, -1, 0].sum()) + float(targets[idx].sum())
    t_batches = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    materialised = W.shape[0] * args.seq * args.features * X.itemsize
    console.print(f"feature matrix: {X.shape} float32 = {base / 2**20:,.0f} MiB; windows {W.shape} "
                  f"(view: {np.shares_memory(W, X)}) in {t_view * 1e3:.2f} ms")
    console.print(f"{args.batches} shuffled batches of {args.batch}: {t_batches:.2f} s "
                  f"({args.batches * args.batch / t_batches:,.0f} windows/s)")
    # The matrix was allocated under tracemalloc, so the peak already counts it.
    console.print(f"peak traced memory while windowing and batching: {peak / 2**20:,.0f} MiB = "
                  f"{peak / base:.3f}x the feature matrix (goal < 2x); "
                  f"max RSS grew {(rss1 - rss0) / 1024:,.0f} MiB")
    console.print(f"materialised windows would need {materialised / 2**30:,.1f} GiB = "
                  f"{materialised / base:.0f}x the matrix (checksum {checksum:.1f})")


if __name__ == "__main__":
    main()
