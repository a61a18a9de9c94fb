"""SHAP attributions: TreeExplainer for the tree families, expected gradients for the nets.

Values come back as ``[n, features, classes]`` (rows) or ``[n, seq, features, classes]`` (windows);
:func:`importance_frame` turns them into one mean |SHAP| per feature. shap (and torch) load on first use.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import OperationalError
from engine.models.scaling import StandardScaler


def tree_shap(estimator: Any, sample: np.ndarray) -> np.ndarray:
    """Exact tree SHAP values of a fitted ``engine.models.tabular`` estimator on ``sample``."""
    import shap

    if estimator.model_ is None:
        raise OperationalError("the model saw one class only; there is nothing to explain")
    values = np.asarray(shap.TreeExplainer(estimator.model_).shap_values(sample))
    if values.ndim == 2:  # binary XGBoost explains the positive-class margin only
        values = values[..., None]
    return values


def gradient_shap(network: Any, scaler: StandardScaler, x: np.ndarray, sample: np.ndarray, *, seed: int,
                  background_samples: int, nsamples: int) -> np.ndarray:
    """Expected gradients of the class probabilities, with background rows spread evenly over ``x``
    and ``nsamples`` gradient samples per explained row."""
    import shap
    import torch

    idx = np.linspace(0, len(x) - 1, min(background_samples, len(x))).astype(int)
    background = torch.from_numpy(scaler.transform(x[idx]))
    wrapped = torch.nn.Sequential(network, torch.nn.Softmax(dim=-1)).eval()
    explainer = shap.GradientExplainer(wrapped, background, batch_size=1024)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        return np.asarray(explainer.shap_values(torch.from_numpy(scaler.transform(sample)), nsamples=nsamples,
                                                rseed=seed))


def importance_frame(values: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Mean |SHAP| per feature (index ``feature``, column ``mean_abs_shap``), largest first. A window's
    attribution to a feature is summed over its time steps before taking |.|."""
    per_feature = values.sum(axis=1) if values.ndim == 4 else values  # [n, f, k]
    importance = np.abs(per_feature).mean(axis=(0, 2))
    frame = pd.DataFrame({"mean_abs_shap": importance}, index=pd.Index(names, name="feature"))
    return frame.sort_values("mean_abs_shap", ascending=False)
