"""DVCManager against the real ``dvc`` in a throwaway git repository with a local folder as remote:
init, add, commit, status, diff, push/pull, gc, repro of a tiny stage, remotes, failures as values,
the one error for "not a repository" / "no dvc", and the kill after a timeout."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import DVCCommandError, DVCUnavailableError, OperationalError
from engine.tracking import dvc as dvc_module
from engine.tracking.dvc import DVCManager, DVCResult


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=engine-tests", "-c", "user.email=tests@example.invalid",
                           *args], cwd=repo, check=True, capture_output=True, text=True, timeout=60)
    return done.stdout


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def cache_object(repo: Path, digest: str) -> Path:
    return repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    assert DVCManager(root).init().check().ok
    return root


@pytest.fixture
def dvc(repo: Path) -> DVCManager:
    return DVCManager(repo, timeout=120)


def test_init_makes_a_dvc_repository_once(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q")
    manager = DVCManager(root)
    assert not manager.initialized
    assert manager.init().ok and (root / ".dvc" / "config").is_file() and (root / ".dvcignore").is_file()
    again = manager.init()  # idempotent: a second init neither fails nor rewrites the config
    assert again.ok and "already a DVC repository" in again.stdout


def test_add_commit_and_status_follow_the_file(dvc: DVCManager, repo: Path) -> None:
    data = repo / "data" / "raw" / "bars.csv"
    data.parent.mkdir(parents=True)
    data.write_text("time,close\n1,100\n")
    added = dvc.add(data).check()
    assert added.dvc_file == data.with_name("bars.csv.dvc") and added.dvc_file.is_file()
    assert f"md5: {md5(data)}" in added.dvc_file.read_text()
    assert "/bars.csv" in (data.parent / ".gitignore").read_text()
    assert dvc.status().check().json() == {}

    data.write_text("time,close\n1,100\n2,101\n")
    changed = dvc.status().check().json()
    assert changed == {"data/raw/bars.csv.dvc": [{"changed outs": {"data/raw/bars.csv": "modified"}}]}
    assert dvc.commit("data/raw/bars.csv.dvc").check().ok
    assert f"md5: {md5(data)}" in added.dvc_file.read_text()
    assert dvc.status().check().json() == {}
    assert cache_object(repo, md5(data)).is_file()


def test_diff_reports_what_changed_between_revisions(dvc: DVCManager, repo: Path) -> None:
    data = repo / "features.csv"
    data.write_text("a\n1\n")
    dvc.add("features.csv").check()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    data.write_text("a\n1\n2\n")
    dvc.commit().check()
    git(repo, "commit", "-qam", "v2")
    first, second = git(repo, "rev-list", "--reverse", "HEAD").split()
    between = dvc.diff(first, second).check().json()
    assert [entry["path"] for entry in between["modified"]] == ["features.csv"]
    assert between["added"] == [] and between["deleted"] == []
    assert dvc.diff().check().json() == {}  # the workspace equals HEAD
    data.write_text("a\n3\n")
    assert [entry["path"] for entry in dvc.diff().check().json()["modified"]] == ["features.csv"]


def test_push_and_pull_through_a_local_remote(dvc: DVCManager, repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    assert dvc.remote_add("store", str(remote), default=True).check().ok
    assert dvc.remotes() == {"store": str(remote)}
    assert dvc.default_remote() == "store"
    model = repo / "models" / "rf" / "pipeline.zip"
    model.parent.mkdir(parents=True)
    model.write_bytes(os.urandom(4096))
    digest = md5(model)
    dvc.add(model).check()
    assert dvc.status(cloud=True).check().json() == {"models/rf/pipeline.zip": "new"}
    assert dvc.push().check().ok
    assert (remote / "files" / "md5" / digest[:2] / digest[2:]).is_file()
    assert dvc.status(cloud=True).check().json() == {}

    # another machine: no cache, no workspace copy; pull brings back the same bytes from the remote
    shutil.rmtree(repo / ".dvc" / "cache")
    model.unlink()
    assert dvc.pull(remote="store").check().ok
    assert md5(model) == digest


def test_gc_drops_cache_that_the_workspace_no_longer_uses(dvc: DVCManager, repo: Path) -> None:
    data = repo / "clean.parquet"
    data.write_bytes(b"version one")
    dvc.add(data).check()
    old = md5(data)
    data.write_bytes(b"version two")
    dvc.commit().check()
    new = md5(data)
    assert cache_object(repo, old).is_file() and cache_object(repo, new).is_file()
    assert dvc.gc(workspace=True).check().ok
    assert not cache_object(repo, old).exists() and cache_object(repo, new).is_file()
    with pytest.raises(OperationalError, match="needs a scope"):
        dvc.gc(workspace=False)


def test_repro_runs_a_changed_stage_and_skips_an_unchanged_one(dvc: DVCManager, repo: Path) -> None:
    (repo / "in.txt").write_text("1\n")
    (repo / "dvc.yaml").write_text("stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n"
                                   "    outs: [out.txt]\n")
    first = dvc.repro().check()
    assert "Running stage 'copy'" in first.stdout and (repo / "out.txt").read_text() == "1\n"
    assert "Running stage" not in dvc.repro().check().stdout
    (repo / "in.txt").write_text("2\n")
    assert "Running stage 'copy'" in dvc.repro("copy").check().stdout
    assert (repo / "out.txt").read_text() == "2\n"


def test_a_failing_command_is_a_value_and_check_raises(dvc: DVCManager) -> None:
    result = dvc.push()  # no remote configured in this repository
    assert isinstance(result, DVCResult) and not result.ok and result.returncode == 1
    assert "no remote specified" in result.stderr
    assert result.summary().startswith("`dvc push` failed (exit 1): ERROR: ")
    with pytest.raises(DVCCommandError, match="no remote specified"):
        result.check()


def test_remote_credentials_are_masked(dvc: DVCManager) -> None:
    url = "https://alice:hunter2-long-password@dvc.example.invalid/store"
    added = dvc.remote_add("web", url)
    assert added.ok and "hunter2" not in added.command and "https://***@dvc.example.invalid" in added.command
    listed = dvc.remote_list().check()
    assert "hunter2" not in listed.stdout and "https://***@dvc.example.invalid/store" in listed.stdout


def test_not_a_repository_is_one_error_that_says_what_to_run(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(DVCUnavailableError, match=r"not a DVC repository .*scripts/dvc_utils\.py init"):
        DVCManager(plain)
    git(plain, "init", "-q")  # a git repository without .dvc: init works, other commands say to run it
    manager = DVCManager(plain)
    with pytest.raises(DVCUnavailableError, match=r"no \.dvc folder.*dvc_utils\.py init"):
        manager.status()
    with pytest.raises(DVCUnavailableError, match="not a directory"):
        DVCManager(plain / "missing")


def test_paths_outside_or_missing_are_refused_before_dvc_runs(dvc: DVCManager, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    with pytest.raises(OperationalError, match="outside the DVC repository"):
        dvc.add(outside)
    with pytest.raises(OperationalError, match="does not exist"):
        dvc.add("nope.bin")


def test_missing_dvc_executable_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DVCUnavailableError, match=r"no `dvc` executable .*pip install"):
        dvc_module.dvc_executable()


def test_a_timeout_kills_dvc_and_the_stage_it_started(dvc: DVCManager, repo: Path) -> None:
    (repo / "dvc.yaml").write_text("stages:\n  hang:\n    cmd: echo $$ > pid.txt; exec sleep 60\n"
                                   "    outs: [never.txt]\n")
    started = time.monotonic()
    result = dvc.repro(timeout=8)
    assert result.returncode is None and not result.ok and "timed out" in result.summary()
    assert time.monotonic() - started < 30
    pid = int((repo / "pid.txt").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the kill is asynchronous: wait until the sleep is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"stage process {pid} survived the timeout")
