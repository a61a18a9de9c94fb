"""check_trackable: the up-front check behind ``task.dvc_track=true``. Each refusal is checked against what
the real ``dvc add`` does afterwards, so the check predicts DVC instead of guessing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.errors import DVCTrackError, DVCUnavailableError
from engine.tracking.dvc import DVCManager, check_trackable

PROJECT = Path(__file__).resolve().parents[2]


def make_repo(root: Path, gitignore: str = "") -> DVCManager:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=60)
    (root / ".gitignore").write_text(gitignore)
    manager = DVCManager(root, timeout=120)
    manager.init().check()
    return manager


def save_model(root: Path) -> Path:
    model = root / "models" / "random_forest" / "pipeline.zip"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"PK fake zip")
    return model


def test_the_projects_gitignore_lets_dvc_version_a_saved_model(tmp_path: Path) -> None:
    # The project's own .gitignore (models/ contents ignored, .dvc pointers kept): the check passes and
    # the real `dvc add` then works, writing a pointer that git does not ignore.
    repo = tmp_path / "clone"
    dvc = make_repo(repo, (PROJECT / ".gitignore").read_text())
    model = repo / "models" / "random_forest" / "pipeline.zip"
    check_trackable(model)  # before the model exists, as the train task calls it
    save_model(repo)
    pointer = dvc.add(model).check().dvc_file
    assert pointer is not None and pointer.is_file()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(pointer)], cwd=repo, timeout=60)
    assert ignored.returncode == 1, "the .dvc pointer must be committable"


def test_a_gitignored_pointer_is_refused_up_front_as_dvc_would_later(tmp_path: Path) -> None:
    repo = tmp_path / "old-layout"
    dvc = make_repo(repo, "/models/\n")  # the layout that made `dvc add models/...` fail after training
    model = repo / "models" / "random_forest" / "pipeline.zip"
    with pytest.raises(DVCTrackError) as caught:
        check_trackable(model)
    message = str(caught.value)
    assert "\n" not in message
    assert "models/random_forest/pipeline.zip.dvc would be git-ignored (rule .gitignore:1:/models/)" in message
    assert "!/models/**/*.dvc" in message  # says how to fix it
    save_model(repo)
    refused = dvc.add(model)
    assert not refused.ok and "is git-ignored" in refused.stderr


def test_no_repository_above_the_path(tmp_path: Path) -> None:
    with pytest.raises(DVCUnavailableError, match=r"no DVC repository at or above .*dvc_utils\.py init"):
        check_trackable(tmp_path / "models" / "m.zip")
    with pytest.raises(DVCUnavailableError, match="not a DVC repository"):
        check_trackable(tmp_path / "m.zip", repo=tmp_path)


def test_dvcignore_hiding_the_output_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "hidden"
    dvc = make_repo(repo)
    (repo / ".dvcignore").write_text("models/\n")
    with pytest.raises(DVCTrackError, match=r"hidden from DVC by \.dvcignore \(rule \.dvcignore:1:models/\)"):
        check_trackable(repo / "models" / "random_forest" / "pipeline.zip")
    save_model(repo)
    assert not dvc.add("models/random_forest/pipeline.zip").ok


def test_outputs_dvc_already_tracks_are_refused(tmp_path: Path) -> None:
    repo = tmp_path / "overlap"
    dvc = make_repo(repo)
    model = save_model(repo)
    (repo / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m engine task=train\n"
                                   "    outs: [models/random_forest]\n")
    with pytest.raises(DVCTrackError, match="overlaps models/random_forest, an output of stage 'train'"):
        check_trackable(model)
    assert not dvc.add(model).ok  # DVC agrees: the stage owns that path



def test_a_file_inside_a_tracked_folder_goes_into_the_folders_entry(tmp_path: Path) -> None:
    repo = tmp_path / "folder"
    dvc = make_repo(repo)
    model = save_model(repo)
    folder = dvc.add("models").check().dvc_file
    assert folder == repo / "models.dvc"
    before = folder.read_text()
    model.write_bytes(b"PK retrained")
    check_trackable(model)  # DVC 3 updates models.dvc for a file inside it: nothing to refuse
    assert dvc.add(model).check().dvc_file == folder
    assert folder.read_text() != before and not model.with_name("pipeline.zip.dvc").exists()


def test_outside_the_repository_is_refused(tmp_path: Path) -> None:
    make_repo(tmp_path / "repo")
    with pytest.raises(DVCTrackError, match="outside the DVC repository"):
        check_trackable(tmp_path / "elsewhere" / "m.zip", repo=tmp_path / "repo")
