"""The family strategy: everything that differs between kinds of model, behind one small protocol.

``MLPipeline`` holds no branch on the model type: it asks the family of its ``model_type`` for the input
layout, how to train one split, predict, serialise the weights and attribute predictions. Families are
stateless; what one fit needs arrives as a :class:`ModelSpec`, what it produced leaves as :class:`Trained`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from engine.models.scaling import StandardScaler
from engine.models.settings import CallbackSettings, TrainerSettings

LoggerFactory = Callable[[str], Any]  # CV-fold prefix ("" for the final fit) -> a Lightning logger or None


@dataclass(frozen=True)
class ModelSpec:
    """The pipeline's construction arguments, as one family fit sees them (the last three: nets only)."""

    model_type: str
    params: Mapping[str, Any]
    trainer: TrainerSettings
    device: str
    seed: int
    output_dim: int
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    feature_names: tuple[str, ...] = ()  # of the fit; recorded in checkpoints
    resume_from: str | None = None  # a checkpoint the final fit continues from (``fit(ckpt_path=)``)


@dataclass(frozen=True)
class Trained:
    model: Any  # a tabular estimator, or an nn.Module in eval mode
    scaler: StandardScaler | None  # nets only: fitted on the training rows of the split
    epochs_run: int


class Family(Protocol):
    model_type: str
    sequence: bool  # X is windows [n, seq, features] (else rows [n, features])
    dtype: str  # what X is cast to
    payload: str  # member of the artifact zip holding the weights
    takes_callbacks: bool  # accepts Lightning callbacks
    trainer_keys: frozenset[str]  # tune() grid keys that belong to TrainerSettings
    requirements: tuple[str, ...]  # distributions needed to load the model, beyond numpy/pandas/sklearn

    def fit(self, spec: ModelSpec, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None,
            y_va: np.ndarray | None, *, epochs: int | None, callbacks: list[Any] | None,
            logger: LoggerFactory, prefix: str) -> Trained: ...

    def predict_proba(self, model: Any, scaler: StandardScaler | None, x: np.ndarray,
                      output_dim: int) -> np.ndarray: ...

    def dump(self, model: Any) -> bytes: ...

    def load(self, spec: ModelSpec, blob: bytes, n_features: int) -> Any: ...

    def shap_values(self, model: Any, scaler: StandardScaler | None, x: np.ndarray, sample: np.ndarray, *,
                    seed: int, background_samples: int, nsamples: int) -> np.ndarray: ...


@functools.cache  # strategies are stateless; predict_proba asks for one on every decision
def family_of(model_type: str) -> Family:
    """The strategy for ``model_type`` (the caller has checked the name against MODEL_TYPES)."""
    from engine.models.nets.family import NET_FAMILIES
    from engine.models.tabular import TABULAR_FAMILIES

    return {**TABULAR_FAMILIES, **NET_FAMILIES}[model_type]
