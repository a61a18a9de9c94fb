"""The project itself is a DVC repository from a fresh clone: .dvc/config committed with a default remote
outside the checkout; data/raw|clean|features and models/ are DVC outputs that git ignores (but not their
.dvc pointers) and DVC sees; the bundled sample stays in git; .gitignore and .dvcignore agree."""

from __future__ import annotations

import configparser
import os
import subprocess
from pathlib import Path

import pytest

from engine.tracking.dvc import check_trackable, dvc_executable

PROJECT = Path(__file__).resolve().parents[2]
OUTPUTS = ("data/raw/BTCUSD/M1/2024-01.parquet", "data/clean/bars.parquet", "data/features/f.parquet",
           "models/random_forest/pipeline.zip", "models/lstm/pipeline.zip")
POINTERS = ("models/random_forest/pipeline.zip.dvc", "models/random_forest/.gitignore", "data/raw.dvc",
            "data/.gitignore")
LEFTOVERS = (".venv/bin/python", "outputs/2024-01-01/run.log", "multirun/0/x", "mlartifacts/1/a",
             "lightning_logs/version_0/x", "engine/__pycache__/cli.cpython-311.pyc")


def git_ignored(path: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", "--", path], cwd=PROJECT, timeout=60)
    assert done.returncode in (0, 1), f"git check-ignore failed for {path}"
    return done.returncode == 0


def dvc_ignored(paths: tuple[str, ...]) -> set[str]:
    done = subprocess.run([dvc_executable(), "check-ignore", *paths], cwd=PROJECT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    return set(done.stdout.split())


@pytest.fixture(scope="module", autouse=True)
def _needs_a_git_checkout() -> None:
    if not (PROJECT / ".git").exists():
        pytest.skip("not a git checkout (an unpacked archive): the layout is a property of the clone")


def test_dvc_config_is_committed_with_a_default_remote_outside_the_checkout() -> None:
    tracked = subprocess.run(["git", "ls-files", ".dvc", ".dvcignore"], cwd=PROJECT, capture_output=True,
                             text=True, timeout=60, check=True).stdout.split()
    assert {".dvc/config", ".dvc/.gitignore", ".dvcignore"} <= set(tracked)
    config = configparser.ConfigParser()
    config.read(PROJECT / ".dvc" / "config")
    default = config.get("core", "remote")
    url = config.get(f"'remote \"{default}\"'", "url")
    assert url.startswith("~/"), "a home folder works from any clone; DVC expands ~ but no env variables"
    assert not Path(url).expanduser().resolve().is_relative_to(PROJECT)
    assert config.get("core", "analytics") == "false"


def test_outputs_are_git_ignored_but_their_pointers_are_not() -> None:
    assert all(git_ignored(path) for path in OUTPUTS)
    assert not any(git_ignored(path) for path in POINTERS)
    assert not git_ignored("data/sample/btcusdt_binance_1m_2024Q1.csv.gz")


def test_no_output_file_is_in_git_and_the_sample_is() -> None:
    listed = subprocess.run(["git", "ls-files", "data", "models"], cwd=PROJECT, capture_output=True, text=True,
                            timeout=60, check=True).stdout.split()
    assert "data/sample/btcusdt_binance_1m_2024Q1.csv.gz" in listed
    stray = [p for p in listed if not p.startswith("data/sample/") and not p.endswith((".dvc", ".gitignore"))]
    assert stray == []


def test_dvcignore_hides_run_leftovers_and_never_an_output() -> None:
    hidden = dvc_ignored(OUTPUTS + LEFTOVERS)
    assert hidden == set(LEFTOVERS)
    assert all(git_ignored(path) for path in LEFTOVERS)  # the two ignore files agree on the leftovers


def test_a_saved_model_is_trackable_in_this_checkout() -> None:
    check_trackable(PROJECT / "models" / "random_forest" / "pipeline.zip")
