"""The whole dvc.yaml pipeline with the real `dvc` in a temporary git repository, on a week of the bundled
sample: `dvc repro` runs prepare -> clean -> features -> train -> evaluate, a second one runs nothing, a
feature-set change reruns features and what follows, a model change train and evaluate only (read from
`dvc repro`'s own output), `dvc exp run -S` on two values gives two experiments whose metrics differ, and
the train run's MLflow tags name the DVC version of the features it read and the code's git commit.

The tests share one repository and run in file order; each leaves the pipeline up to date.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.tracking.dvc import DVCManager
from engine.tracking.mlflow import git_commit
from tests.tracking.pipeline_repo import PROJECT, git, make_repo, ran, write_params

STAGES = ["prepare", "clean", "features", "train", "evaluate"]
OVERRIDES = ["source.start=2024-03-25", "model.params.n_estimators=30"]
# Only train's MLflow run is looked at; a lighter train and evaluate (no MLflow model, no plots).
QUIET = "smoke=true tracking.enabled=false"
EXTRA = {"prepare": QUIET, "clean": QUIET, "features": QUIET, "train": "smoke=true task.log_model=false task.report=[]",
         "evaluate": f"{QUIET} task.report=false"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DVCManager]:
    scratch = tmp_path_factory.mktemp("params")
    write_params(scratch, OVERRIDES)
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    dvc = make_repo(repo, (scratch / "params.yaml").read_text(), EXTRA)
    first = dvc.repro().check()
    assert ran(first.stdout) == STAGES, first.stdout
    _commit(repo, "first run")
    return repo, dvc


def _commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def _params(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / "params.yaml").read_text())


def test_a_second_repro_does_nothing(pipeline: tuple[Path, DVCManager]) -> None:
    repo, dvc = pipeline
    again = dvc.repro().check()
    assert ran(again.stdout) == [] and "Data and pipelines are up to date." in again.stdout
    assert dvc.status().check().json() == {}
    for out in ("data/raw", "data/clean/BTCUSD_M1.parquet", "data/features/BTCUSD_M1.parquet",
                "models/pipeline/pipeline.zip", "metrics/train.json", "metrics/evaluate.json", "plots/equity.csv"):
        assert (repo / out).exists(), out


def test_train_tags_the_dvc_version_of_the_features_it_read_and_the_git_commit(
        pipeline: tuple[Path, DVCManager]) -> None:
    from mlflow.tracking import MlflowClient

    repo, _ = pipeline
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    (features_out,) = lock["stages"]["features"]["outs"]
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.task = 'train'")
    (run,) = runs
    tags = run.data.tags
    assert tags["dvc_data_path"] == "data/features" and tags["dvc_data_md5"] == features_out["md5"]
    assert tags["dvc_data_recorded_in"] == "dvc.lock:features" and tags["dvc_data_modified"] == "false"
    assert tags["git_commit"] == git_commit(PROJECT) and len(tags["git_commit"].split("-")[0]) == 40
    assert run.data.metrics["test/accuracy"] == json.loads((repo / "metrics" / "train.json").read_text())[
        "test_accuracy"]


def test_a_feature_set_change_reruns_features_and_later_stages_only(pipeline: tuple[Path, DVCManager]) -> None:
    repo, dvc = pipeline
    params = _params(repo)
    assert params["features"]["rsi"] == [14]
    params["features"]["rsi"] = [7, 14]  # what `dvc exp run -S 'features.rsi=[7,14]'` writes
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = json.loads((repo / "metrics" / "train.json").read_text())["n_features"]
    out = dvc.repro().check().stdout
    assert ran(out) == ["features", "train", "evaluate"], out
    assert "Stage 'prepare' didn't change, skipping" in out and "Stage 'clean' didn't change, skipping" in out
    assert json.loads((repo / "metrics" / "train.json").read_text())["n_features"] == before + 2  # rsi_7 twice
    _commit(repo, "one more RSI")


def test_a_model_change_reruns_train_and_evaluate_only(pipeline: tuple[Path, DVCManager]) -> None:
    repo, dvc = pipeline
    params = _params(repo)
    params["model"]["params"]["max_depth"] = 2  # what `dvc exp run -S model.params.max_depth=2` writes
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc.repro().check().stdout
    assert ran(out) == ["train", "evaluate"], out
    for stage in ("prepare", "clean", "features"):
        assert f"Stage '{stage}' didn't change, skipping" in out
    _commit(repo, "shallower trees")


def _experiments(shown: Any) -> dict[str, dict[str, Any]]:
    """name -> {"params": params.yaml values, "metrics": metrics/train.json values} from `dvc exp show --json`."""
    found: dict[str, dict[str, Any]] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and node.get("name") and "params" in data:
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                metrics = ((data.get("metrics") or {}).get("metrics/train.json") or {}).get("data") or {}
                found[str(node["name"])] = {"params": params, "metrics": metrics}
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(shown)
    return found


def test_exp_run_on_two_values_gives_two_experiments_whose_metrics_differ(
        pipeline: tuple[Path, DVCManager]) -> None:
    _, dvc = pipeline
    for horizon, name in ((3, "h3"), (12, "h12")):
        out = dvc.run("exp", "run", "--name", name, "-S", f"labels.horizon={horizon}").check().stdout
        assert ran(out) == ["train", "evaluate"], out
    experiments = _experiments(dvc.run("exp", "show", "--json").check().json())
    h3, h12 = experiments["h3"], experiments["h12"]
    assert h3["params"]["labels"]["horizon"] == 3 and h12["params"]["labels"]["horizon"] == 12
    assert h3["metrics"] and h12["metrics"]
    # a longer horizon embargoes more samples between the spans and labels a different target
    assert h3["metrics"]["n_train"] != h12["metrics"]["n_train"]
    assert h3["metrics"]["test_accuracy"] != h12["metrics"]["test_accuracy"]


@pytest.mark.slow
def test_from_a_fresh_clone_repro_runs_the_whole_pipeline_on_the_bundled_data_once(tmp_path: Path) -> None:
    """The checkout as a new user gets it (its git-visible files, uncommitted work included, in a new git
    repository): `dvc repro` with the committed params.yaml runs every stage on the full bundled sample,
    and a second `dvc repro` has nothing to do."""
    clone = tmp_path / "clone"
    listed = git(PROJECT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for rel in filter(None, listed):
        source = PROJECT / rel
        if source.is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / rel)
    git(clone, "init", "-q")
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "fresh clone")
    dvc = DVCManager(clone, timeout=3600)
    first = dvc.repro().check()
    assert ran(first.stdout) == STAGES, first.stdout
    train = json.loads((clone / "metrics" / "train.json").read_text())
    assert train["n_train"] > 50_000  # the whole quarter of one-minute bars, not a smoke slice
    assert (clone / "metrics" / "evaluate.json").is_file() and (clone / "plots" / "equity.csv").is_file()
    second = dvc.repro().check()
    assert ran(second.stdout) == [] and "Data and pipelines are up to date." in second.stdout
