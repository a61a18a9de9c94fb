"""scripts/dvc_utils.py as a user runs it (a subprocess with the real dvc): what each command does and its
exit code: 0 ok, 1 the dvc command failed, 2 usage, 3 no dvc or not a repository."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dvc_utils.py"


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, timeout=60)
    return root


def test_help_lists_every_command_and_the_exit_codes(tmp_path: Path) -> None:
    done = cli(tmp_path, "--help")
    assert done.returncode == 0
    for command in ("init", "add", "commit", "push", "pull", "status", "repro", "diff", "gc", "remote"):
        assert f"    {command} " in done.stdout
    assert "0 ok, 1 dvc failed, 2 usage, 3 no dvc / not a repository" in done.stdout
    remote = cli(tmp_path, "remote", "--help")
    assert remote.returncode == 0 and all(action in remote.stdout for action in ("add", "list", "default"))


def test_a_session_from_init_to_pull(repo: Path, tmp_path: Path) -> None:
    assert cli(repo, "init").returncode == 0 and (repo / ".dvc").is_dir()
    assert "already a DVC repository" in cli(repo, "init").stdout
    data = repo / "data" / "bars.csv"
    data.parent.mkdir()
    data.write_text("time,close\n1,100\n")
    assert cli(repo, "add", "--path", "data/bars.csv").returncode == 0
    assert (repo / "data" / "bars.csv.dvc").is_file()
    status = cli(repo, "status")
    assert status.returncode == 0 and status.stdout.strip() == "{}"
    data.write_text("time,close\n1,100\n2,101\n")
    assert "modified" in cli(repo, "status").stdout
    assert cli(repo, "commit", "--path", "data/bars.csv").returncode == 0
    assert cli(repo, "status").stdout.strip() == "{}"

    remote = tmp_path / "remote"
    assert cli(repo, "remote", "add", "--default", "store", str(remote)).returncode == 0
    listed = cli(repo, "remote", "list")
    assert listed.returncode == 0 and listed.stdout.split()[:2] == ["store", str(remote)]
    assert cli(repo, "remote", "add", "spare", str(tmp_path / "spare")).returncode == 0
    assert cli(repo, "remote", "default", "spare").returncode == 0
    assert cli(repo, "push", "--remote", "store").returncode == 0
    data.unlink()
    pulled = cli(repo, "pull", "-r", "store")
    assert pulled.returncode == 0 and data.read_text() == "time,close\n1,100\n2,101\n"
    assert cli(repo, "gc", "--workspace").returncode == 0
    diff = cli(repo, "diff")
    assert diff.returncode == 0 and diff.stdout.strip().startswith("{")
    (repo / "dvc.yaml").write_text("stages:\n  copy:\n    cmd: cp data/bars.csv copy.csv\n"
                                   "    deps: [data/bars.csv]\n    outs: [copy.csv]\n")
    dry = cli(repo, "repro", "--dry")
    assert dry.returncode == 0 and "cp data/bars.csv copy.csv" in dry.stdout and not (repo / "copy.csv").exists()
    ran = cli(repo, "repro", "copy")
    assert ran.returncode == 0 and (repo / "copy.csv").read_text() == data.read_text()


def test_a_failing_dvc_command_exits_1_with_dvcs_reason(repo: Path) -> None:
    cli(repo, "init")
    done = cli(repo, "push")  # no remote in this repository
    assert done.returncode == 1
    assert "error: `dvc push` failed (exit 1): ERROR: failed to push data to the cloud" in done.stderr


@pytest.mark.parametrize("args", [["bogus"], ["add"], ["gc"], ["add", "--path", "missing.csv"],
                                  ["remote", "add", "only-a-name"]])
def test_usage_errors_exit_2(repo: Path, args: list[str]) -> None:
    cli(repo, "init")
    done = cli(repo, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip(), "a usage error says what is wrong"


def test_not_a_repository_exits_3_and_says_what_to_run(tmp_path: Path, repo: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    done = cli(plain, "status")
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "not a DVC repository" in done.stderr
    assert "run `python scripts/dvc_utils.py init`" in done.stderr
    in_git = cli(repo, "add", "--path", "x")  # git, but no .dvc yet
    assert in_git.returncode == 3 and "no .dvc folder" in in_git.stderr


def test_missing_dvc_exits_3(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                             tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("dvc_utils_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert module.main(["--repo", str(repo), "init"]) == 3
    assert "no `dvc` executable" in capsys.readouterr().err
