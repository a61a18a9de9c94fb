"""The model artifact: one zip holding ``manifest.json`` and the weights.

The manifest carries everything needed to rebuild and check the model: model type, params, output dim,
seed, device, trainer settings, the ordered feature list, window length, scaler statistics, caller
metadata (e.g. label settings), fit metrics, library versions and creation time. The weights are one
member named by the family (``estimator.pkl`` or ``network.pt``). Writing is atomic (temp file + rename),
so a reader never sees half an artifact. Tree weights are a pickle: load only artifacts you trust.
"""

from __future__ import annotations

import json
import logging
import platform
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import DataQualityError, OperationalError

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = 1
MANIFEST = "manifest.json"
_VERSIONED = ("engine", "numpy", "pandas", "scikit-learn", "xgboost", "torch", "lightning", "shap")
_DRIFT_MATTERS = ("scikit-learn", "xgboost", "torch")  # the libraries whose weights/pickles we load


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def stamp(manifest: Mapping[str, Any], created_at: str | None = None) -> dict[str, Any]:
    """``manifest`` with the format number, library versions and creation time added: ``created_at`` (when the
    model was fitted, so every copy of one fitted model is the same file) or now."""
    return {"format": ARTIFACT_FORMAT, **manifest, "versions": library_versions(),
            "created_at": created_at or now_stamp()}


def write_artifact(path: str | Path, manifest: Mapping[str, Any], payload_name: str, payload: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # members dated by the manifest's creation time, not the clock: every copy of one fitted model is the same file
    when = _zip_time(manifest.get("created_at"))
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in ((MANIFEST, json.dumps(dict(manifest), indent=2, default=str)), (payload_name, payload)):
            zf.writestr(zipfile.ZipInfo(name, date_time=when), body, compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(path)
    return path


def _zip_time(created_at: Any) -> tuple[int, int, int, int, int, int]:
    try:
        moment = datetime.fromisoformat(str(created_at))
    except ValueError:
        moment = datetime.now(UTC)
    return (max(moment.year, 1980), moment.month, moment.day, moment.hour, moment.minute, moment.second)


def read_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and every other member's bytes; refuses what is not an artifact of this format and
    warns when the saved library versions differ from the running ones."""
    path = Path(path)
    if not path.is_file():
        raise OperationalError(f"model artifact not found: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise DataQualityError(f"{path} is not an MLPipeline artifact (not a zip file)") from exc
    with zf:
        try:
            manifest = json.loads(zf.read(MANIFEST))
        except KeyError as exc:
            raise DataQualityError(f"{path} has no {MANIFEST}; not an MLPipeline artifact") from exc
        if manifest.get("format") != ARTIFACT_FORMAT:
            raise DataQualityError(f"{path} has artifact format {manifest.get('format')}; this engine reads "
                                   f"{ARTIFACT_FORMAT}")
        members = {name: zf.read(name) for name in zf.namelist() if name != MANIFEST}
    warn_version_drift(manifest.get("versions", {}), path)
    return manifest, members


def warn_version_drift(saved: Mapping[str, str], path: Path) -> None:
    now = library_versions()
    drift = {k: (v, now.get(k)) for k, v in saved.items() if k in _DRIFT_MATTERS and v != now.get(k)}
    if drift:
        log.warning("%s was saved with other library versions %s (saved, now); predictions may differ",
                    path.name, drift)
