"""Start-up cost of `python -m engine --help` and `--cfg job` against `python -c "import torch"`, in the same run.

Goals: `--help` <= 1.0x torch (issue 2); `--cfg job` back near its 0.34 s / 0.20x before the config schemas were
generated from the components (issue 9). The cases run in interleaved rounds (one of each per round) and each
reports its median wall time and its median CPU time (user + system of the child process). Wall time swings
with load from other jobs; the CPU time of a single-threaded start-up hardly does, so read that column when
the machine is busy. ``--against REV`` adds `--cfg job` of an earlier commit (``git archive`` into a temporary
directory, run with the same interpreter) to the same rounds.
Run: .venv/bin/python bench/startup.py [--repeat 7] [--against 3a4199c]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path = REPO) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``cmd``."""
    before = os.times()
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(cwd)})
    wall = time.perf_counter() - t0
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--against", metavar="REV", help="also time `--cfg job` at this commit")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as old:
        if args.against:
            archive = subprocess.run(["git", "archive", args.against], cwd=REPO, check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", old], input=archive.stdout, check=True)
        run(args.repeat, Path(old) if args.against else None, args.against)


def run(repeat: int, old: Path | None, rev: str | None) -> None:
    cases: dict[str, tuple[list[str], Path]] = {
        "engine --help": ([sys.executable, "-m", "engine", "--help"], REPO),
        "import torch": ([sys.executable, "-c", "import torch"], REPO),
        "engine --cfg job (full Hydra compose)": ([sys.executable, "-m", "engine", "--cfg", "job"], REPO),
        "register_configs() (schemas, no compose)": (
            [sys.executable, "-c", "from engine.config import register_configs; register_configs()"], REPO),
    }
    if old is not None:
        cases[f"engine --cfg job at {rev}"] = ([sys.executable, "-m", "engine", "--cfg", "job"], old)
    timed(*cases["import torch"])  # warm the page cache so the first case is not penalised
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, (cmd, cwd) in cases.items():
            runs[name].append(timed(cmd, cwd))
    wall = {name: statistics.median(w for w, _ in values) for name, values in runs.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in runs.items()}
    print(f"{'case':<42}{'wall s':>8}{'vs torch':>10}{'cpu s':>8}{'vs torch':>10}")
    for name in cases:
        print(f"{name:<42}{wall[name]:>8.3f}{wall[name] / wall['import torch']:>9.2f}x"
              f"{cpu[name]:>8.3f}{cpu[name] / cpu['import torch']:>9.2f}x")


if __name__ == "__main__":
    main()
