"""A 16-trial sweep's wall time: Hydra's joblib launcher (2 local processes) vs a 2-worker Ray cluster.

Both sweeps run the same 16 jobs (``+experiment=xgb_1m smoke=true``, a grid over max_depth x n_estimators)
from the `.venv-ray` environment, so only the launcher differs. The Ray cluster (a head and one worker
node, 1 CPU each, in a loopback-only network namespace; see tests/scale/services.py) is started before
the clock runs and reused by every repeat; its start-up time is reported on its own.

    .venv/bin/python bench/sweep_launchers.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.scale.services import RAY_VENV_BIN, RayCluster

GRID = ["model.params.max_depth=2,3,4,5,6,7,8,9", "model.params.n_estimators=100,200"]  # 16 jobs
JOB = ["+experiment=xgb_1m", "smoke=true", "task.log_model=false", "task.report=[]"]


def _sweep(cluster: RayCluster, launcher: str, root: Path) -> float:
    root.mkdir(parents=True)
    args = [str(RAY_VENV_BIN / "python"), "-m", "engine", "--multirun", *JOB, *GRID, f"hydra/launcher={launcher}",
            f"hydra.sweep.dir={root}/sweep"]
    start = time.perf_counter()
    # the joblib sweep runs in the namespace too: the same interpreter, environment and loopback-only network
    proc = cluster.run(args, env={"ENGINE_ROOT": str(root)}, cwd=root, timeout=3600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{launcher} sweep failed:\n{proc.stderr[-3000:]}")
    jobs = len(list((root / "sweep").glob("[0-9]*")))
    if jobs != 16:
        raise SystemExit(f"{launcher} sweep ran {jobs} jobs, not 16")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        cluster = RayCluster(Path(tmp))
        start = time.perf_counter()
        cluster.start()
        startup = time.perf_counter() - start
        try:
            walls: dict[str, list[float]] = {"local": [], "ray": []}
            for i in range(args.repeat):  # interleaved, so drifting load hits both launchers alike
                for launcher in walls:
                    walls[launcher].append(_sweep(cluster, launcher, Path(tmp) / f"{launcher}-{i}"))
                    print(f"  {launcher:5s} run {i}: {walls[launcher][-1]:.1f} s", flush=True)
        finally:
            cluster.stop()
    print(f"cores: {os.cpu_count()}, Ray cluster start-up (head + worker node): {startup:.1f} s")
    print("| launcher | 16-trial sweep wall s, best (median) | per trial s | vs joblib |")
    print("|---|---:|---:|---:|")
    # best of the repeats: other jobs on a shared machine only ever add time
    joblib_s, ray_s = min(walls["local"]), min(walls["ray"])
    for name, key, best in (("joblib (`hydra/launcher=local`, n_jobs=2)", "local", joblib_s),
                            ("Ray cluster, 2 workers (`hydra/launcher=ray`)", "ray", ray_s)):
        print(f"| {name} | {best:.1f} ({statistics.median(walls[key]):.1f}) | {best / 16:.2f} | "
              f"{best / joblib_s:.2f}x |")
    print(f"Ray overhead per trial vs joblib (best runs): {(ray_s - joblib_s) / 16:+.2f} s")

if __name__ == "__main__":
    main()
