"""A throwaway git + DVC repository holding the project's pipeline (dvc.yaml), for the pipeline tests.

Code dependencies point at a snapshot of the checkout's files beside the repository: a copy of engine/ in
the repository would shadow the installed package for ``python -m engine``, and the live checkout changes
under the test (``__pycache__`` written by the stages themselves, other edits), which would make DVC rerun
stages for reasons the tests are not about. Stage outputs stay relative. Stage commands get extra Hydra
overrides after params.yaml's values (``smoke=true``, a lighter train) so the whole pipeline runs quickly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from engine.tracking.dvc import DVCManager

PROJECT = Path(__file__).resolve().parents[2]
SCRIPT = PROJECT / "scripts" / "dvc_utils.py"
OUTPUTS = ("data/raw", "data/clean", "data/features", "models/pipeline")
GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *GIT_ID, *args], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def write_params(repo: Path, overrides: Sequence[str]) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), "params", *overrides], cwd=repo, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load((repo / "params.yaml").read_text())


def make_repo(repo: Path, params_yaml: str, extra: Mapping[str, str]) -> DVCManager:
    """``repo`` as a committed git + DVC repository with the pipeline and ``params_yaml``; ``extra``:
    stage -> overrides appended to its command."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    dvc = DVCManager(repo, timeout=900)
    dvc.init().check()
    spec = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    code = repo.parent / "code"
    for name, stage in spec["stages"].items():
        stage["deps"] = [dep if dep in OUTPUTS else str(_snapshot(dep, code)) for dep in stage["deps"]]
        stage["cmd"] = stage["cmd"].replace("scripts/dvc_utils.py", str(SCRIPT)) + " " + extra.get(name, "")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (repo / "params.yaml").write_text(params_yaml)
    for ignore in (".gitignore", ".dvcignore"):
        shutil.copyfile(PROJECT / ignore, repo / ignore)
    with (repo / ".gitignore").open("a") as fh:
        fh.write("mlflow.db\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    return dvc


def _snapshot(dep: str, code: Path) -> Path:
    source, target = PROJECT / dep, code / dep
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target)
    return target


def ran(output: str) -> list[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` output says it ran, in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]
