"""params.yaml and the stage runner: the values DVC tracks for a stage are the values the engine runs with
(round trip through the real Hydra composition), a stale params.yaml is refused, and `dvc repro` of the
prepare stage runs, skips when nothing changed and reruns with a changed value."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from engine.tracking import dvc_params
from engine.tracking.dvc import DVCManager
from engine.tracking.dvc_params import ParamsError, override_value, stage_overrides, tracked_values

PROJECT = Path(__file__).resolve().parents[2]
SCRIPT = PROJECT / "scripts" / "dvc_utils.py"


def engine_job(overrides: list[str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "engine", "--cfg", "job", *overrides], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def params(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """params.yaml as `dvc_utils.py params model=random_forest` writes it (the real composition)."""
    repo = tmp_path_factory.mktemp("params")
    done = subprocess.run([sys.executable, str(SCRIPT), "params", "model=random_forest"], cwd=repo,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load((repo / "params.yaml").read_text())


@pytest.mark.parametrize("value", [None, True, False, 0, -1, 300, 0.05, 1e-05, math.inf, "xgboost", "32-true",
                                   "1min", "it's", "back\\slash\\", "with space", "${seed}", "", [], "BTCUSD",
                                   "engine.sources.csv.CsvBarSource", "null", "True", "inf", "NaN", "a/b-c",
                                   "x:y", -1.5,
                                   [1, 5, 15], ["1min", "5min"], {}, {"a": 1, "b": [2.5, "x"]}])
def test_override_values_read_back_as_the_same_value(value: Any) -> None:
    parsed = OverridesParser.create().parse_overrides([f"key={override_value(value)}"])[0].value()
    assert parsed == value and type(parsed) is type(value)


def test_params_hold_the_composition_the_choices_and_every_existing_stage_task(params: dict[str, Any]) -> None:
    assert params["choices"]["model"] == "random_forest" and params["model"]["type"] == "random_forest"
    assert params["overrides"] == ["model=random_forest"]
    assert params["task"]["prepare"]["name"] == "prepare" and params["task"]["train"]["name"] == "train"
    assert params["task"]["train"]["model_name"] == "pipeline"  # the pipeline's own model folder
    assert "paths" not in params and "tracking" not in params and "connector" not in params
    # References are not values: DVC's `exp run -S` could not resolve ${engine_root:}; the engine composes them
    text = yaml.safe_dump(params)
    assert "${" not in text and "???" not in text and "path" not in params["source"]
    assert params["conf_digest"] == dvc_params.conf_digest()


def test_the_engine_runs_a_stage_with_exactly_the_tracked_values(params: dict[str, Any], tmp_path: Path) -> None:
    # What `dvc exp run -S labels.horizon=9 -S model=lstm` leaves in params.yaml.
    edited = {**params, "labels": {**params["labels"], "horizon": 9}}
    keys = ["seed", "labels", "model", "trainer", "task.train"]
    job = engine_job(stage_overrides(edited, "train", keys), tmp_path)
    assert job["task"]["name"] == "train" and job["labels"]["horizon"] == 9
    for key in ("labels", "model", "trainer"):
        assert tracked_values(job[key]) == edited[key]
    assert tracked_values(job["task"]) == params["task"]["train"]
    swapped = engine_job(stage_overrides({**edited, "model": "lstm"}, "train", keys), tmp_path)
    assert swapped["model"]["type"] == "lstm" and swapped["labels"]["horizon"] == 9


def test_a_stage_reads_only_its_own_task_and_needs_it(params: dict[str, Any]) -> None:
    with pytest.raises(ParamsError, match=r"reads only task\.train"):
        stage_overrides(params, "train", ["task.prepare"])
    with pytest.raises(ParamsError, match=r"has no task\.clean: task=clean is not in conf/task yet"):
        stage_overrides({**params, "task": {}}, "clean", ["task.clean"])
    with pytest.raises(ParamsError, match="unknown stage 'deploy'"):
        stage_overrides(params, "deploy", [])


def test_a_params_file_older_than_conf_is_refused(params: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "conf_digest": "0" * 32}))
    (tmp_path / "dvc.yaml").write_text((PROJECT / "dvc.yaml").read_text())
    done = subprocess.run([sys.executable, str(SCRIPT), "stage", "prepare"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert "conf/ changed since params.yaml was written: run `python scripts/dvc_utils.py params`" in done.stderr


def test_the_checkouts_params_yaml_matches_conf() -> None:
    current = yaml.safe_load((PROJECT / "params.yaml").read_text())
    assert current["conf_digest"] == dvc_params.conf_digest(), \
        "conf/ changed: run `python scripts/dvc_utils.py params` and commit params.yaml"
    assert current["overrides"] == []


def _pipeline_prefix(repo: Path) -> None:
    """The project's dvc.yaml cut to its prepare stage, with code and sample deps pointing at the checkout
    (a copy of engine/ in the repo would shadow the installed package for `python -m engine`)."""
    spec = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    stage = spec["stages"]["prepare"]
    stage["deps"] = [str(PROJECT / dep) for dep in stage["deps"]]
    stage["cmd"] = stage["cmd"].replace("scripts/dvc_utils.py", str(SCRIPT))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": stage}}, sort_keys=False))


def test_repro_of_the_prepare_stage_runs_once_and_reruns_on_a_changed_value(params: dict[str, Any],
                                                                           tmp_path: Path) -> None:
    repo = tmp_path / "pipeline"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, timeout=60)
    dvc = DVCManager(repo, timeout=600)
    dvc.init().check()
    _pipeline_prefix(repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    first = dvc.repro("prepare").check()
    assert "Running stage 'prepare'" in first.stdout
    months = sorted(p.name for p in (repo / "data" / "raw").rglob("*.parquet"))
    assert len(months) == 3, months  # the bundled sample: 2024 Q1
    assert "Running stage" not in dvc.repro("prepare").check().stdout

    # an experiment varies a tracked value: DVC edits params.yaml, the stage reruns and the engine gets it
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, timeout=60)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "base"],
                   cwd=repo, check=True, timeout=60)
    experiment = dvc.run("exp", "run", "-S", "source.end=2024-01-31", "prepare").check()
    assert "Running stage 'prepare'" in experiment.stdout
    assert len(list((repo / "data" / "raw").rglob("*.parquet"))) == 1
    assert yaml.safe_load((repo / "params.yaml").read_text())["source"]["end"] == "2024-01-31"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["prepare"]["params"]["params.yaml"]["source"]["end"] == "2024-01-31"
