"""Classification metrics of predicted class probabilities (pure: arrays in, floats out).

Every metric is computed against the full label set ``0..n_classes-1`` so a validation span that
misses a class still yields comparable numbers. ROC AUC is ``nan`` where it is undefined (fewer
than two classes present in ``y_true``); multi-class AUC is one-vs-rest, macro-averaged over the
classes present.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import DataQualityError

METRIC_NAMES: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1", "log_loss", "roc_auc")

# Direction of each metric, for model selection: True when larger is better.
GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy": True, "balanced_accuracy": True, "f1": True, "log_loss": False, "roc_auc": True,
}


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """accuracy, balanced_accuracy, macro f1, log_loss and roc_auc of ``proba`` [n, k] against ``y_true``."""
    from sklearn import metrics as skm

    y = np.asarray(y_true)
    p = np.asarray(proba, dtype="float64")
    if p.ndim != 2 or p.shape[0] != y.shape[0] or y.ndim != 1:
        raise DataQualityError(f"metrics need y_true [n] and proba [n, k]; got {y.shape} and {p.shape}")
    if y.size == 0:
        raise DataQualityError("metrics need at least one sample; the evaluation span is empty")
    k = p.shape[1]
    labels = np.arange(k)
    if y.min() < 0 or y.max() >= k:
        raise DataQualityError(f"y_true holds class ids outside 0..{k - 1}: {sorted(set(y.tolist()) - set(labels))}")
    pred = p.argmax(axis=1)
    present = np.unique(y)
    # balanced accuracy = mean recall over the classes that occur in y_true
    recalls = [float(np.mean(pred[y == c] == c)) for c in present]
    out = {
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(np.mean(recalls)),
        "f1": float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(y, _normalised(p), labels=labels)),
        "roc_auc": math.nan,
    }
    if present.size >= 2:
        if k == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y, p[:, 1]))
        else:
            aucs = [skm.roc_auc_score(y == c, p[:, c]) for c in present]
            out["roc_auc"] = float(np.mean(aucs))
    return out


def _normalised(p: np.ndarray) -> np.ndarray:
    # float32 softmax and zero-probability columns of unseen classes are nudged to sum exactly to 1
    q = np.clip(p, 1e-15, 1.0)
    return q / q.sum(axis=1, keepdims=True)


def mean_metrics(folds: list[dict[str, float]], prefix: str) -> dict[str, float]:
    """Mean of each metric over folds (ignoring nan), keys prefixed with ``prefix``."""
    out: dict[str, float] = {}
    for name in folds[0] if folds else ():
        values = np.array([f[name] for f in folds], dtype="float64")
        finite = values[~np.isnan(values)]
        out[f"{prefix}{name}"] = float(finite.mean()) if finite.size else math.nan
    return out
