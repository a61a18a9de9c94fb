"""A DVC remote on the S3 endpoint the MLflow server uses (moto's server mode on 127.0.0.1): ``dvc push`` of
data/raw and a trained model from one clone, ``dvc pull`` into a second clone, through DVCManager.

The endpoint is committed in ``.dvc/config``; credentials never are: the first clone keeps them in
``.dvc/config.local``, the second takes them from the environment, the two ways docs/scale_out.md gives.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from engine.models.pipeline import MLPipeline
from engine.tracking.dvc import DVCManager
from tests.scale.services import S3_KEY, S3_SECRET, S3Server

pytestmark = pytest.mark.slow


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=engine", "-c", "user.email=engine@localhost", *args],
                   check=True, capture_output=True, timeout=60)


def _digests(root: Path, *parts: str) -> dict[str, str]:
    base = root.joinpath(*parts)
    files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_push_from_one_clone_and_pull_into_another(s3: S3Server, run_engine, engine_root: Path,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.client().create_bucket(Bucket="dvc")
    first = engine_root  # the project root the jobs write to
    for args in (["task=prepare", "smoke=true"],
                 ["+experiment=xgb_1m", "smoke=true", "tracking=off", "task.report=[]"]):
        proc = run_engine(*args, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    model = Path("models", "xgb_1m", "pipeline.zip")
    assert (first / "data" / "raw").is_dir() and (first / model).is_file()

    _git(first, "init", "-q")
    dvc = DVCManager(first)
    dvc.init().check()
    dvc.remote_add("storage", "s3://dvc/engine", default=True).check()
    dvc.run("remote", "modify", "storage", "endpointurl", s3.endpoint).check()
    dvc.run("remote", "modify", "--local", "storage", "access_key_id", S3_KEY).check()
    dvc.run("remote", "modify", "--local", "storage", "secret_access_key", S3_SECRET).check()
    dvc.add("data/raw").check()
    dvc.add(model).check()
    _git(first, "add", ".dvc/config", ".dvc/.gitignore", "data/raw.dvc", "data/.gitignore", f"{model}.dvc",
         str(model.parent / ".gitignore"))
    _git(first, "commit", "-q", "-m", "data and model")
    pushed = dvc.push()
    pushed.check()
    assert S3_SECRET not in (first / ".dvc" / "config").read_text()  # only in config.local, which git ignores
    assert any(k.startswith("engine/") for k in s3.objects("dvc"))

    second = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(first), str(second)], check=True, capture_output=True, timeout=60)
    assert not (second / "data" / "raw").exists() and not (second / model).exists()
    for name, value in {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}.items():
        monkeypatch.setenv(name, value)  # the teammate's credentials come from the environment
    DVCManager(second).pull().check()
    assert _digests(second, "data", "raw") == _digests(first, "data", "raw")
    assert _digests(second, str(model)) == _digests(first, str(model))
    pulled = MLPipeline.load(second / model)
    assert pulled.model_type == "xgboost" and pulled.is_fitted
