"""Every run keeps its own model (issue 15, item 2): a later run or sweep never overwrites the file an earlier
run's ``model_path`` tag names, and only a successful single run moves the stable "latest" path."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engine.models.pipeline import MLPipeline
from tests.tasks.conftest import Store

TRAIN = ("task=train", "model=random_forest", "features=minimal", "smoke=true", "task.log_model=false",
         "task.report=[]")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_sweeps_after_a_run_keep_every_model(run_engine, store: Store, engine_root: Path) -> None:
    run_engine(*TRAIN, "labels.horizon=5", check=True, timeout=600)
    latest = engine_root / "models" / "random_forest" / "pipeline.zip"
    (single,) = store.runs("engine-train")
    own = Path(single.data.tags["model_path"])
    # the run's own file sits in a folder named by its MLflow run id; latest is a copy of it
    assert own.parent.name == single.info.run_id and own.is_file() and own != latest
    assert _digest(latest) == _digest(own) and single.data.tags["latest_model_path"] == str(latest)

    for sweep in ("first", "second"):
        run_engine("--multirun", *TRAIN, "labels.horizon=5,15", f"hydra.sweep.dir={sweep}", check=True, timeout=600)
    every = store.runs("engine-train")
    runs = [r for r in every if r.data.tags.get("sweep_role") != "parent"]  # each sweep adds its parent run
    assert len(every) == 7 and len(runs) == 5 and all(r.info.status == "FINISHED" for r in runs)
    paths = {r.info.run_id: Path(r.data.tags["model_path"]) for r in runs}
    # five runs, five files, each in its own run's folder, each still the model that run trained
    assert len(set(paths.values())) == 5
    for run in runs:
        path = paths[run.info.run_id]
        assert path.is_file() and path.parent.name == run.info.run_id
        assert MLPipeline.load(path).metadata["data_fingerprint"] == run.data.tags["data_fingerprint"]
    assert sorted(int(r.data.params["labels.horizon"]) for r in runs) == [5, 5, 5, 15, 15]
    # a sweep's trials are candidates: they do not move the path task=explain/backtest/live read by default
    assert _digest(latest) == _digest(own)
    assert not any("latest_model_path" in r.data.tags for r in runs if r.info.run_id != single.info.run_id)
