"""Latency of one decision: the latest window -> class probabilities, for xgboost and lstm.

    .venv/bin/python bench/decision_latency.py [--calls 1000] [--threads 1]

Fits each model once on the bundled sample, then times ``MLPipeline.predict_proba`` on the newest
row (xgboost: a 1-row frame of features) or window (lstm: [1, seq, features]) ``--calls`` times and
prints p50/p99. The reference in the same run is the bare model call on already-prepared input
(XGBoost booster ``inplace_predict``; the LSTM module's forward + softmax on a scaled tensor), so
the gap is what the pipeline's checks (column names, finiteness, scaling) cost per decision.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bars import features_and_labels, windows

from engine.models.pipeline import MLPipeline
from engine.models.settings import TrainerSettings


def timed(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    for _ in range(min(50, calls)):  # warm-up
        fn()
    out = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return float(np.percentile(out, 50) / 1e6), float(np.percentile(out, 99) / 1e6)


def report(name: str, pipe_fn: Callable[[], object], ref_fn: Callable[[], object], calls: int) -> None:
    p50, p99 = timed(pipe_fn, calls)
    r50, r99 = timed(ref_fn, calls)
    print(f"{name:8s} MLPipeline.predict_proba p50 {p50:.3f} ms  p99 {p99:.3f} ms | "
          f"bare model p50 {r50:.3f} ms  p99 {r99:.3f} ms | overhead p50 x{p50 / r50:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    feat, y = features_and_labels(args.rows)
    print(f"{args.calls} calls each; {feat.shape[1]} features; torch threads={torch.get_num_threads()}")

    xgb = MLPipeline("xgboost", {"n_estimators": 300, "max_depth": 4})
    xgb.fit(feat, y)
    latest = feat.iloc[[-1]]
    booster = xgb.model_.model_.get_booster()
    row = latest.to_numpy(dtype="float64")
    report("xgboost", lambda: xgb.predict_proba(latest), lambda: booster.inplace_predict(row), args.calls)

    W, yw = windows(feat, y, args.seq)
    lstm = MLPipeline("lstm", {"hidden_dim": 64},
                      trainer=TrainerSettings(max_epochs=1, enable_progress_bar=False))
    lstm.fit(W, yw.copy(), feature_names=list(feat.columns))
    window = W[-1:]
    net = lstm.model_
    scaled = torch.from_numpy(lstm.scaler_.transform(window))

    def bare() -> object:
        with torch.inference_mode():
            return torch.softmax(net(scaled), dim=-1)

    report("lstm", lambda: lstm.predict_proba(window), bare, args.calls)


if __name__ == "__main__":
    main()
