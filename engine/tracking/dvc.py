"""DVCManager: version files through the real ``dvc`` CLI of this environment.

DVC runs as ``python -m dvc`` with the interpreter engine runs under, so the venv's DVC is used
whatever is on PATH. Minimal for now (add); more commands arrive with the DVC issue.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.errors import OperationalError


def find_dvc_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` that holds a ``.dvc`` folder."""
    here = start.resolve()
    for candidate in [here, *here.parents]:
        if (candidate / ".dvc").is_dir():
            return candidate
    raise OperationalError(f"no DVC repository above {start}; run `dvc init` in the project root or pass dvc_repo=")


class DVCManager:
    def __init__(self, repo_root: str | Path, timeout: float = 300.0) -> None:
        self.repo_root = Path(repo_root).resolve()
        self.timeout = timeout
        if not (self.repo_root / ".dvc").is_dir():
            raise OperationalError(f"{self.repo_root} is not a DVC repository (no .dvc folder); run `dvc init` there")

    def _run(self, *args: str) -> str:
        cmd = [sys.executable, "-m", "dvc", *args]
        try:
            done = subprocess.run(cmd, cwd=self.repo_root, capture_output=True, text=True, timeout=self.timeout,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise OperationalError(f"`dvc {' '.join(args)}` did not finish in {self.timeout:.0f}s") from exc
        if done.returncode != 0:
            raise OperationalError(f"`dvc {' '.join(args)}` failed ({done.returncode}): "
                                   f"{(done.stderr or done.stdout).strip()[-800:]}")
        return done.stdout

    def add(self, path: str | Path) -> Path:
        """``dvc add`` a file or directory inside the repo; returns the ``.dvc`` pointer file's path."""
        target = Path(path).resolve()
        try:
            rel = target.relative_to(self.repo_root)
        except ValueError as exc:
            raise OperationalError(f"{target} is outside the DVC repository {self.repo_root}") from exc
        if not target.exists():
            raise OperationalError(f"cannot dvc-add {target}: it does not exist")
        self._run("add", str(rel))
        return target.with_name(target.name + ".dvc")
