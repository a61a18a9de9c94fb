"""The MLflow Model Registry: register what task=train logged, move an alias, load ``models:/NAME@alias``.

Promoting a model is then an MLflow action users already know: ``task=train task.register_as=NAME`` registers
the run's logged model as a new version of NAME and points ``task.register_alias`` (``champion`` by default)
at it; moving the alias in the MLflow UI or with ``MlflowClient().set_registered_model_alias`` promotes another
version; ``task=live task.model=models:/NAME@champion`` trades whatever the alias points at when it starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, OperationalError
from engine.tracking.model_uri import fetch_pipeline, is_model_uri

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


@dataclass(frozen=True)
class Registered:
    name: str
    version: int
    alias: str | None
    source: str  # the logged model it points at (models:/<model_id>)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"


def check_name(name: str, key: str = "task.register_as") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(key, f"{name!r} is not a registered model name (letters, digits, _ . -; at most 128)")
    return name


def check_alias(alias: str) -> str:
    """A registered-model alias MLflow accepts: a name, and not one it reserves (``latest``, ``v<N>``)."""
    check_name(alias, key="task.register_alias")
    if alias.lower() == "latest" or _VERSION_ALIAS.match(alias):
        raise ConfigError("task.register_alias", f"{alias!r} is reserved by MLflow (latest and v<N> name versions); "
                                                 "pick another, e.g. champion")
    return alias


def _client(tracking_uri: str | None) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def register(model_uri: str, name: str, *, alias: str | None, tracking_uri: str | None) -> Registered:
    """Register the logged model ``model_uri`` (``models:/<model_id>``, what task=train logs) as a new version
    of ``name`` and, with ``alias``, point the alias at that version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    check_name(name)
    if alias is not None:
        check_alias(alias)
    model_id = model_uri.removeprefix("models:/")
    if not model_uri.startswith("models:/") or "/" in model_id or "@" in model_id:
        raise ConfigError("task.register_as", f"can register a logged model (models:/<model_id>), not {model_uri!r}")
    client = _client(tracking_uri)
    # MLflow resolves a models:/<model_id> source through the process's tracking URI, not the client's: a
    # sweep's end registers outside any job's run, where that URI is still the default
    previous = mlflow.get_tracking_uri()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        run_id = client.get_logged_model(model_id).source_run_id
        version = client.create_model_version(name, source=model_uri, run_id=run_id, model_id=model_id)
        if alias is not None:
            client.set_registered_model_alias(name, alias, str(version.version))
    except MlflowException as exc:
        raise OperationalError(f"cannot register {model_uri} as {name}: {_first(exc)}") from None
    finally:
        mlflow.set_tracking_uri(previous)
    return Registered(name, int(version.version), alias, model_uri)


def describe(uri: str, tracking_uri: str | None) -> dict[str, Any]:
    """Which registered version ``models:/NAME@alias`` or ``models:/NAME/VERSION`` names right now."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        if match := _ALIAS_URI.match(uri):
            found = client.get_model_version_by_alias(match["name"], match["alias"])
        elif match := _VERSION_URI.match(uri):
            found = client.get_model_version(match["name"], match["version"])
        else:
            return {"model_uri": uri}
    except MlflowException as exc:
        raise ConfigError("task.model", f"{uri} names no registered model version: {_first(exc)}") from None
    return {"model_uri": uri, "registered_name": found.name, "registered_version": int(found.version),
            "model_source": found.source, "model_run_id": found.run_id}


def load_reference(reference: str, tracking_uri: str | None, dst: Path) -> tuple[Path, dict[str, Any]]:
    """A local pipeline.zip for ``reference`` (a path, or an MLflow model URI fetched into ``dst``) and what
    it is (for the audit trail and the run's tags)."""
    if not is_model_uri(reference):
        path = Path(reference)
        if not path.is_file():
            raise ConfigError("task.model", f"no model at {path}: train one first (the README's main command "
                                            "saves models/lstm_5m/pipeline.zip) or set task.model=PATH|models:/NAME@alias")
        return path, {"model_path": str(path)}
    info = describe(reference, tracking_uri)
    return fetch_pipeline(reference, tracking_uri, dst), info


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


__all__ = ["Registered", "check_name", "describe", "load_reference", "register"]
