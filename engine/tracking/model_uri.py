"""Fetch the MLPipeline artifact behind an MLflow model URI (the model ``task=train`` logs with
``task.log_model=true``, or a version of it registered in the model registry).

Accepted: ``models:/NAME@alias``, ``models:/NAME/VERSION``, ``models:/<model_id>`` (what train logs) and
``runs:/<run_id>/<path>``. The logged model is a pyfunc whose ``artifacts/pipeline.zip`` is the pipeline
itself (engine.tracking.model_hooks.log_pipeline_model), so that file is what is returned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import ConfigError

URI_SCHEMES = ("models:/", "runs:/")
PIPELINE_FILE = "pipeline.zip"


def is_model_uri(reference: str) -> bool:
    return reference.startswith(URI_SCHEMES)


def _location(client: Any, uri: str) -> str:
    """Where the artifacts of the model named by ``uri`` are stored (registry names are resolved with this
    client, whose registry is the tracking server: MLflow's global registry URI is never consulted)."""
    if uri.startswith("runs:/"):
        return uri
    path = uri.removeprefix("models:/").strip("/")
    if "@" in path:
        name, alias = path.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
        return str(client.get_model_version_download_uri(name, version))
    if "/" in path:
        name, version = path.split("/", 1)
        return str(client.get_model_version_download_uri(name, version))
    return str(client.get_logged_model(path).artifact_location)  # models:/<model_id>, as task=train logs


def fetch_pipeline(uri: str, tracking_uri: str | None, dst: Path, *, key: str = "task.model") -> Path:
    """Download the model at ``uri`` from the tracking server ``tracking_uri`` into ``dst``; the local
    path of its pipeline artifact. A URI that names nothing is a ConfigError on ``key``."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if not is_model_uri(uri):
        raise ConfigError(key, f"{uri!r} is not an MLflow model URI (models:/NAME@alias, models:/NAME/VERSION, "
                               "runs:/RUN_ID/model)")
    dst.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        location = _location(client, uri)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dst),
                                                         tracking_uri=tracking_uri))
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(key, f"cannot fetch {uri} from {tracking_uri}: {first}") from None
    if local.is_file() and local.name == PIPELINE_FILE:
        return local
    found = sorted(local.rglob(PIPELINE_FILE)) if local.is_dir() else []
    if not found:
        raise ConfigError(key, f"{uri} holds no {PIPELINE_FILE}: it is not a model logged by task=train")
    return found[0]
