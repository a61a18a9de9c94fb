"""Wall time of ``python -m engine +experiment=lstm_5m`` on the bundled sample, against the 5-minute budget.

    .venv/bin/python bench/experiment_lstm_5m.py            # full run and smoke run
    .venv/bin/python bench/experiment_lstm_5m.py --full-only

Each run goes to a fresh temporary ENGINE_ROOT (its own MLflow store and models directory), exactly as a
user would run it, including interpreter start-up, imports, MLflow logging and saving the model.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = {"full": 300.0, "smoke": 60.0}


def run(args: list[str]) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="bench-lstm5m-") as root:
        env = {**os.environ, "ENGINE_ROOT": root}
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "engine", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=1800)
        elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"engine {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    phases = "; ".join(f"{m[0]} {m[1]}s" for m in re.findall(r"done (.+?) \((\d+\.\d)s\)", proc.stderr))
    return elapsed, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-only", action="store_true")
    opts = parser.parse_args()
    cases = [("full", ["+experiment=lstm_5m"])]
    if not opts.full_only:
        cases.append(("smoke", ["+experiment=lstm_5m", "smoke=true"]))
    print(f"cores: {os.cpu_count()}")
    for name, args in cases:
        elapsed, phases = run(args)
        budget = BUDGET_S[name]
        print(f"{name:5s} python -m engine {' '.join(args)}: {elapsed:6.1f} s "
              f"(budget {budget:.0f} s, ratio {elapsed / budget:.2f}x)")
        print(f"      phases: {phases}")


if __name__ == "__main__":
    main()
