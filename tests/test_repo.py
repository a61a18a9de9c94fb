"""The repository's own promises: lint-clean, CI runs the README's test command, CI does not skip what
it must run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import locate_shared_data

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci_line = [ln for ln in (REPO / ".ci/run").read_text().splitlines() if ln and not ln.startswith(("#", "set ", "cd "))]
    assert len(ci_line) == 1
    assert ci_line[0] in (REPO / "README.md").read_text()


def test_ruff_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "engine", "tests", "bench", "scripts", "hydra_plugins", "docs"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _outcome(path: Path) -> tuple[str, str]:
    """What locate_shared_data does with ``path``, caught here: a skip raised inside a test would
    otherwise mark this very test skipped rather than failed."""
    try:
        return "found", str(locate_shared_data(path))
    except pytest.fail.Exception as exc:
        return "failed", str(exc)
    except pytest.skip.Exception as exc:
        return "skipped", str(exc)


def test_missing_shared_data_fails_under_ci_and_skips_elsewhere(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "shared" / "data"
    monkeypatch.setenv("CI", "true")
    outcome, reason = _outcome(missing)
    assert outcome == "failed" and "not a reason to skip" in reason
    for outside_ci in ("", "false"):
        monkeypatch.setenv("CI", outside_ci)
        assert _outcome(missing)[0] == "skipped"
    missing.mkdir(parents=True)
    monkeypatch.setenv("CI", "true")
    assert _outcome(missing) == ("found", str(missing))
