"""dvc_data: the DVC version a run tags for the data it read (checked against what the real `dvc` wrote), and
a model saved with dvc_track added and pushed when a default remote is configured (task=train end to end)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from engine.errors import DVCCommandError
from engine.tracking.dvc import DVCManager
from engine.tracking.dvc_data import data_version, version_output

PROJECT = Path(__file__).resolve().parents[2]


def make_repo(root: Path) -> DVCManager:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=60)
    (root / ".gitignore").write_text((PROJECT / ".gitignore").read_text())
    dvc = DVCManager(root, timeout=300)
    dvc.init().check()
    return dvc


def remote_holds(remote: Path, md5: str) -> bool:
    return (remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()


def test_the_version_of_added_data_and_of_a_pipeline_output(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    dvc = make_repo(repo)
    data = repo / "data" / "external"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("x\n1\n")
    dvc.add("data/external").check()
    recorded = yaml.safe_load((repo / "data" / "external.dvc").read_text())["outs"][0]
    version = data_version(data / "a.csv")  # a file inside the tracked folder: the folder's entry
    assert version is not None and version.md5 == recorded["md5"] and version.md5.endswith(".dir")
    assert version.output == "data/external" and version.recorded_in == "data/external.dvc"
    assert version.tags()["dvc_data_modified"] == "false"
    (data / "b.csv").write_text("y\n")  # changed since the record: said so, not hidden
    assert data_version(data).modified

    (repo / "dvc.yaml").write_text("stages:\n  make:\n    cmd: mkdir -p out && echo 1 > out/f\n    outs: [out]\n")
    dvc.repro().check()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["make"]["outs"][0]
    version = data_version(repo / "out")
    assert version is not None and version.md5 == lock["md5"] and version.recorded_in == "dvc.lock:make"
    assert not version.modified
    assert data_version(repo / "elsewhere.csv") is None


def test_a_saved_output_is_added_and_pushed_to_the_default_remote(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    dvc = make_repo(repo)
    model = repo / "models" / "m" / "pipeline.zip"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"PK first")
    added = version_output(model)  # no remote configured: added, nothing to push, no error
    assert added.dvc_file == model.with_name("pipeline.zip.dvc") and added.dvc_file.is_file()

    remote = tmp_path / "remote"
    dvc.remote_add("local", str(remote), default=True).check()
    model.write_bytes(b"PK second")
    version_output(model)
    md5 = yaml.safe_load(added.dvc_file.read_text())["outs"][0]["md5"]
    assert remote_holds(remote, md5)
    assert dvc.status(cloud=True).check().json() == {}

    (tmp_path / "not-a-folder").write_text("")
    dvc.remote_add("broken", str(tmp_path / "not-a-folder" / "x"), default=True).check()
    model.write_bytes(b"PK third")
    with pytest.raises(DVCCommandError, match=r"pipeline\.zip is saved and added to DVC .* but not pushed to "
                                              r"remote 'broken': .*push it later with `dvc push`"):
        version_output(model)


def test_train_with_dvc_track_versions_and_pushes_its_model(tmp_path: Path, compose, monkeypatch) -> None:
    from engine.config.validate import validate
    from engine.tasks import train

    repo = tmp_path / "repo"
    dvc = make_repo(repo)
    remote = tmp_path / "remote"
    dvc.remote_add("local", str(remote), default=True).check()
    monkeypatch.setenv("ENGINE_ROOT", str(repo))
    cfg = compose(["task=train", "task.dvc_track=true", "source.start=2024-03-25", "tracking.enabled=false",
                   "task.report=[]", "task.log_model=false", "model.params.n_estimators=10"])
    validate(cfg)
    train.run(cfg)
    pointer = repo / "models" / "xgboost" / "pipeline.zip.dvc"
    md5 = yaml.safe_load(pointer.read_text())["outs"][0]["md5"]
    assert remote_holds(remote, md5)
    ignored = subprocess.run(["git", "check-ignore", "-q", str(pointer)], cwd=repo, timeout=60)
    assert ignored.returncode == 1  # the pointer is committable; the model itself is not
