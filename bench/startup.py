"""Start-up cost of `python -m engine --help` and `--cfg job` against `python -c "import torch"`, in the same run.

Goals: `--help` <= 1.0x torch (issue 2); `--cfg job` back near its 0.34 s / 0.20x before the config schemas were
generated from the components (issue 9). The cases run in interleaved rounds (one of each per round) and each
reports its median, so load from other jobs slows all of them alike.
Run: .venv/bin/python bench/startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    cases = {
        "engine --help": [sys.executable, "-m", "engine", "--help"],
        "import torch": [sys.executable, "-c", "import torch"],
        "engine --cfg job (full Hydra compose)": [sys.executable, "-m", "engine", "--cfg", "job"],
        "register_configs() (schemas, no compose)": [
            sys.executable, "-c", "from engine.config import register_configs; register_configs()"],
    }
    timed(cases["import torch"], 1)  # warm the page cache so the first case is not penalised
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, cmd in cases.items():
            runs[name] += timed(cmd, 1)
    med = {name: statistics.median(values) for name, values in runs.items()}
    ref = med["import torch"]
    print(f"{'case':<42}{'median s':>10}{'vs torch':>10}")
    for name, value in med.items():
        print(f"{name:<42}{value:>10.3f}{value / ref:>9.2f}x")


if __name__ == "__main__":
    main()
