"""Start-up cost of `python -m engine --help` against `python -c "import torch"`, in the same run.

Goal (issue 2): ratio <= 1.0. Run: .venv/bin/python bench/startup.py [--repeat 7]
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
    }
    timed(cases["import torch"], 1)  # warm the page cache so the first case is not penalised
    med = {name: statistics.median(timed(cmd, args.repeat)) for name, cmd in cases.items()}
    ref = med["import torch"]
    print(f"{'case':<40}{'median s':>10}{'vs torch':>10}")
    for name, value in med.items():
        print(f"{name:<40}{value:>10.3f}{value / ref:>9.2f}x")


if __name__ == "__main__":
    main()
