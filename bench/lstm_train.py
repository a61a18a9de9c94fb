"""LSTM training throughput: MLPipeline (Lightning) vs a plain PyTorch loop, same model/batch/data.

    .venv/bin/python bench/lstm_train.py [--samples 20000] [--epochs 2] [--repeats 6] [--threads 1]

Both sides train the same LSTMNet (same init seed) with AdamW, gradient clipping 1.0 and shuffled
batches of the same scaled windows; the plain loop slices batches out of a tensor by a random
permutation (the fastest honest reference). Both are timed from raw windows to a trained net: the
plain side includes its scaling and model build, MLPipeline its whole ``fit`` call (scaler,
Trainer setup, loaders), with ``val_split=0`` so both sides see the same samples. After a
warm-up, runs alternate in ABBA order; the best of ``--repeats`` is kept for each side and the
median of the paired ratios is printed too, which damps noise from other processes. Ratios are
given for wall time and for the process's CPU time (less sensitive to other jobs on the machine).
Goal: ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from _bars import features_and_labels, windows

from engine.models.nets.lstm import LSTMNet
from engine.models.pipeline import MLPipeline
from engine.models.scaling import StandardScaler
from engine.models.settings import TrainerSettings


def plain_loop(x: np.ndarray, y: np.ndarray, params: dict, batch: int, epochs: int,
               lr: float) -> tuple[float, float]:
    # timed from raw windows to a trained net, like MLPipeline.fit: scaling and model build included
    start, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(42)
    scaler = StandardScaler.fit(x)
    xt, yt = torch.from_numpy(scaler.transform(x)), torch.from_numpy(y)
    net = LSTMNet(n_features=x.shape[-1], output_dim=2, **params)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(42)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


def pipeline_fit(x: np.ndarray, y: np.ndarray, params: dict, batch: int, epochs: int, lr: float,
                 progress: bool) -> tuple[float, float]:
    ts = TrainerSettings(max_epochs=epochs, batch_size=batch, learning_rate=lr, enable_progress_bar=progress,
                         early_stopping_patience=0)
    pipe = MLPipeline("lstm", params, trainer=ts, seed=42)
    start, cpu = time.perf_counter(), time.process_time()
    pipe.fit(x, y, val_split=0.0, feature_names=[f"f{i}" for i in range(x.shape[-1])])
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--progress-bar", action="store_true", help="time the pipeline with its progress bar on")
    args = ap.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    feat, labels = features_and_labels(args.samples + args.seq)
    x, y = windows(feat, labels, args.seq)
    x, y = x[-args.samples:], y[-args.samples:].copy()
    params = {"hidden_dim": args.hidden}
    work = len(x) * args.epochs
    print(f"LSTM hidden={args.hidden} seq={args.seq} features={x.shape[-1]} batch={args.batch} samples={len(x)} "
          f"epochs={args.epochs} torch threads={torch.get_num_threads()}")
    # warm-up: first-call allocations and lazy imports are not throughput
    plain_loop(x[:1024], y[:1024], params, args.batch, 1, 1e-3)
    pipeline_fit(x[:1024], y[:1024], params, args.batch, 1, 1e-3, False)
    plain: list[tuple[float, float]] = []
    piped: list[tuple[float, float]] = []
    for r in range(args.repeats):
        # ABBA order: a slow drift in machine load hits both sides equally
        if r % 2 == 0:
            plain.append(plain_loop(x, y, params, args.batch, args.epochs, 1e-3))
            piped.append(pipeline_fit(x, y, params, args.batch, args.epochs, 1e-3, args.progress_bar))
        else:
            piped.append(pipeline_fit(x, y, params, args.batch, args.epochs, 1e-3, args.progress_bar))
            plain.append(plain_loop(x, y, params, args.batch, args.epochs, 1e-3))
        print(f"  repeat {r + 1}: plain {work / plain[-1][0]:,.0f} samples/s, "
              f"MLPipeline {work / piped[-1][0]:,.0f} samples/s", flush=True)
    wall_plain, wall_pipe = (np.array([t[0] for t in runs]) for runs in (plain, piped))
    cpu_plain, cpu_pipe = (np.array([t[1] for t in runs]) for runs in (plain, piped))
    print(f"plain PyTorch loop : {work / wall_plain.min():,.0f} samples/s wall, "
          f"{work / cpu_plain.min():,.0f} per CPU-second (best of {args.repeats})")
    print(f"MLPipeline.fit     : {work / wall_pipe.min():,.0f} samples/s wall, "
          f"{work / cpu_pipe.min():,.0f} per CPU-second (best of {args.repeats})")
    print(f"ratio MLPipeline/plain, wall: {wall_plain.min() / wall_pipe.min():.3f} best-vs-best, "
          f"{float(np.median(wall_plain / wall_pipe)):.3f} median of paired runs")
    # CPU time is what the process itself consumed: far less sensitive to other jobs on a shared box
    print(f"ratio MLPipeline/plain, CPU time: {cpu_plain.min() / cpu_pipe.min():.3f} best-vs-best, "
          f"{float(np.median(cpu_plain / cpu_pipe)):.3f} median of paired runs (goal >= 0.9)")


if __name__ == "__main__":
    main()
