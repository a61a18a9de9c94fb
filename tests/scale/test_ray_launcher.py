"""Sweeps on a Ray cluster (``hydra/launcher=ray``): a head and one worker node on 127.0.0.1, 1 CPU each.

The engine runs from the `.venv-ray` environment (the `ray` extra: hydra-ray-launcher pins cloudpickle<3,
which the main environment's joblib 1.6 cannot have). Each job must have run as a Ray task in a cluster
worker process, logged its MLflow run into the one experiment, and saved its own model file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.scale.conftest import completed_study
from tests.scale.services import RAY_VENV_BIN, RayCluster
from tests.tasks.conftest import Store

pytestmark = pytest.mark.slow

FAST = ["+experiment=xgb_1m", "smoke=true", "task.log_model=false", "task.report=[]"]


def _engine(cluster: RayCluster, root: Path, *args: str) -> None:
    proc = cluster.run([str(RAY_VENV_BIN / "python"), "-m", "engine", *args, "hydra/launcher=ray"],
                       env={"ENGINE_ROOT": str(root), "RAY_DEDUP_LOGS": "0"}, cwd=root, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _ray_jobs(cluster: RayCluster) -> list[dict]:
    """Every Hydra job Ray ran (the launcher's ``_run_job`` tasks): state, node and worker process."""
    out = cluster.python(
        "import json, ray; from ray.util.state import list_tasks; ray.init(address='auto', logging_level='ERROR');"
        "print(json.dumps([{'state': t.state, 'node': t.node_id, 'pid': t.worker_pid} for t in "
        "list_tasks(filters=[('name', '=', '_run_job')], limit=1000, detail=True)]))")
    return json.loads(out.strip().splitlines()[-1])


def _check_trials(store: Store, experiment: str, runs: list, jobs: list[dict], root: Path) -> None:
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert {r.info.experiment_id for r in runs} == {store.client.get_experiment_by_name(experiment).experiment_id}
    # every trial ran in a Ray worker process of the cluster, and the cluster's two nodes both took trials
    finished = [j for j in jobs if j["state"] == "FINISHED"]
    assert {int(r.data.tags["pid"]) for r in runs} <= {j["pid"] for j in finished}
    assert len({j["node"] for j in finished}) == 2
    # each trial saved its own model: four files, each holding the hyperparameters of the run that saved it
    paths = {r.data.tags["model_path"] for r in runs}
    assert len(paths) == 4 and all(Path(p).is_relative_to(root / "models") for p in paths)
    for run in runs:
        with zipfile.ZipFile(run.data.tags["model_path"]) as artifact:
            manifest = json.loads(artifact.read("manifest.json"))
        assert str(manifest["params"]["max_depth"]) == run.data.params["model.params.max_depth"]


def test_multirun_and_optuna_sweep_run_on_the_ray_cluster(ray_cluster: RayCluster, tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    store = Store(root)
    _engine(ray_cluster, root, "--multirun", *FAST, "model.params.max_depth=2,3,4,5", f"hydra.sweep.dir={root}/grid")
    every = store.runs("xgb_1m")
    parent, = (r for r in every if r.data.tags.get("sweep_role") == "parent")  # the grid's own parent run
    grid = [r for r in every if r is not parent]
    # the jobs ran in Ray workers (other processes) and still became the parent run's children
    assert {r.data.tags.get("mlflow.parentRunId") for r in grid} == {parent.info.run_id}
    assert (root / "grid" / "sweep_summary.csv").is_file() and parent.info.status == "FINISHED"
    _check_trials(store, "xgb_1m", grid, _ray_jobs(ray_cluster), root)
    assert sorted(r.data.params["model.params.max_depth"] for r in grid) == ["2", "3", "4", "5"]

    # the Optuna sweeper hands its batches to the same launcher
    _engine(ray_cluster, root, *FAST, "hparams_search=xgb_optuna", "hydra.sweeper.n_trials=4",
            "tracking.experiment=xgb_optuna_ray", f"hydra.sweep.dir={root}/optuna")
    study, trials = completed_study(store, "xgb_optuna_ray", 4)
    _check_trials(store, "xgb_optuna_ray", trials, _ray_jobs(ray_cluster), root)
    assert study.info.status == "FINISHED" and study.data.metrics["sweep/n_complete"] == 4
