"""Extension points through which tracking reaches the model layer, which never imports MLflow or DVC.

A :class:`ModelHooks` object is handed to ``MLPipeline(hooks=[...])``; every method is a no-op here and
the tracking layer (``engine.tracking.model_hooks``) overrides what it needs:

- ``training_logger(prefix)``: a Lightning logger the nets' Trainer writes losses to (e.g. MLflow), or None;
- ``on_saved(pipeline, path)``: called after ``save`` wrote the artifact (e.g. ``dvc add``).

``MLPipeline(dvc_track=True)`` cannot take the DVC hook from its caller, so the tracking layer registers a
factory for it here: :func:`register_versioning` (called by ``engine.tracking.model_hooks.install()``,
which ``from engine import MLPipeline`` runs). This one documented registry is process-wide by design;
without it, ``dvc_track=True`` is refused when the pipeline is built, before any training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import OperationalError


class ModelHooks:
    """No-op base of the model layer's hooks; subclasses override what they implement."""

    def training_logger(self, prefix: str) -> Any | None:
        """A Lightning logger for one fit (``prefix`` names the CV fold, e.g. ``cv0``), or None."""
        return None

    def on_saved(self, pipeline: Any, path: Path) -> None:
        """Called after ``pipeline.save`` wrote ``path`` atomically."""
        return None


VersioningFactory = Callable[[Path | None], ModelHooks]  # repo root (None: search above the file) -> hooks

_REGISTERED: dict[str, VersioningFactory] = {}


def register_versioning(factory: VersioningFactory) -> None:
    """Install what ``dvc_track=True`` uses to version a saved artifact (idempotent: last one wins)."""
    _REGISTERED["versioning"] = factory


def versioning_hooks(repo: Path | None) -> ModelHooks:
    factory = _REGISTERED.get("versioning")
    if factory is None:
        raise OperationalError("dvc_track=True needs the tracking layer's hooks, which are not installed; call "
                               "engine.tracking.model_hooks.install() first (`from engine import MLPipeline` "
                               "does it), or pass hooks= explicitly")
    return factory(repo)
