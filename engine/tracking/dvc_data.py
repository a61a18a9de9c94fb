"""DVC and a run's data: the recorded version of what a run read, and versioning what it saved.

- :func:`data_version` reads the md5 DVC recorded for a path (its own ``.dvc`` pointer, the pointer of a
  tracked folder above it, or a pipeline output's entry in ``dvc.lock``) without running ``dvc``: a train
  run tags it in MLflow, so the run names the exact data version ``dvc checkout`` brings back. Whether the
  workspace still matches the record is judged from what DVC records cheaply (size, file count); a
  mismatch is reported, not hidden, because then the md5 names other data than the run read.
- :func:`version_output` is ``dvc add`` of a saved artifact followed by ``dvc push`` of it when a default
  remote is configured (``task.dvc_track``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.errors import DVCCommandError, DVCTrackError
from engine.tracking.dvc import DVCManager, DVCResult, find_dvc_root


@dataclass(frozen=True)
class DataVersion:
    """What DVC recorded for the tracked output holding some data."""

    output: str  # the tracked path (the data itself or a folder above it), relative to the repository
    md5: str  # DVC's hash of it (``<md5>.dir`` for a folder)
    recorded_in: str  # ``data/raw.dvc`` or ``dvc.lock:<stage>``
    modified: bool  # the workspace's size or file count differ from the record

    def tags(self, prefix: str = "dvc_data") -> dict[str, str]:
        return {f"{prefix}_path": self.output, f"{prefix}_md5": self.md5,
                f"{prefix}_recorded_in": self.recorded_in, f"{prefix}_modified": str(self.modified).lower()}


def data_version(path: str | Path, repo: str | Path | None = None) -> DataVersion | None:
    """The recorded version of the output holding ``path``; None when DVC tracks no output there."""
    target = Path(path).resolve()
    root = Path(repo).resolve() if repo is not None else find_dvc_root(target)
    try:
        rel = target.relative_to(root)
    except ValueError:
        return None
    covering = [rel, *rel.parents[:-1]]  # the path itself first, then the folders above it
    for candidate in covering:
        entry = _pointer_entry(root, candidate)
        if entry is not None:
            return _version(root, candidate, entry, f"{candidate}.dvc")
    lock = _lock_outputs(root)
    for candidate in covering:
        if candidate in lock:
            stage, entry = lock[candidate]
            return _version(root, candidate, entry, f"dvc.lock:{stage}")
    return None


def _pointer_entry(root: Path, rel: Path) -> dict[str, Any] | None:
    pointer = root / f"{rel}.dvc"
    if not pointer.is_file():
        return None
    outs = (_yaml(pointer) or {}).get("outs") or []
    return outs[0] if outs and isinstance(outs[0], dict) else None


def _lock_outputs(root: Path) -> dict[Path, tuple[str, dict[str, Any]]]:
    lock = root / "dvc.lock"
    if not lock.is_file():
        return {}
    found: dict[Path, tuple[str, dict[str, Any]]] = {}
    for stage, entry in ((_yaml(lock) or {}).get("stages") or {}).items():
        for out in (entry or {}).get("outs") or []:
            if isinstance(out, dict) and "path" in out:
                found[Path(os.path.normpath(out["path"]))] = (str(stage), out)
    return found


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DVCTrackError(f"cannot read {path}: {exc}") from exc


def _version(root: Path, rel: Path, entry: dict[str, Any], recorded_in: str) -> DataVersion:
    md5 = str(entry.get("md5") or entry.get("etag") or "")
    return DataVersion(output=rel.as_posix(), md5=md5, recorded_in=recorded_in,
                       modified=_modified(root / rel, entry))


def _modified(path: Path, entry: dict[str, Any]) -> bool:
    if not path.exists():
        return True
    if path.is_file():
        return "size" in entry and path.stat().st_size != int(entry["size"])
    files = [p for p in path.rglob("*") if p.is_file()]
    if "nfiles" in entry and len(files) != int(entry["nfiles"]):
        return True
    return "size" in entry and sum(p.stat().st_size for p in files) != int(entry["size"])


def version_output(path: str | Path, repo: str | Path | None = None) -> DVCResult:
    """``dvc add path`` (raises on failure), then ``dvc push`` of it when a default remote is configured.
    Returns the add result (its ``dvc_file`` is the pointer written)."""
    root = Path(repo) if repo is not None else find_dvc_root(path)
    dvc = DVCManager(root)
    added = dvc.add(path).check()
    remote = dvc.default_remote()
    if remote is not None:
        pushed = dvc.push(targets=[Path(path).resolve()])
        if not pushed.ok:
            raise DVCCommandError(f"{path} is saved and added to DVC ({added.dvc_file}) but not pushed to "
                                  f"remote '{remote}': {pushed.summary()}; push it later with `dvc push`")
    return added
