"""The numpy scaler and the classification metrics, checked against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import DataQualityError
from engine.metrics import classification_metrics, mean_metrics
from engine.models.scaling import StandardScaler


def test_scaler_on_windows_uses_every_step_and_survives_constant_features():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(50, 6, 3))
    x[..., 2] = 7.0
    sc = StandardScaler.fit(x)
    z = sc.transform(x)
    assert z.dtype == np.float32
    flat = z.reshape(-1, 3)
    assert np.allclose(flat[:, :2].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(flat[:, :2].std(axis=0), 1, atol=1e-4)
    assert np.all(flat[:, 2] == 0)
    again = StandardScaler.from_dict(sc.to_dict())
    assert np.array_equal(again.transform(x), z)
    with pytest.raises(DataQualityError, match="3 features"):
        sc.transform(np.zeros((2, 4)))


def test_metrics_match_hand_computation():
    y = np.array([0, 0, 0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.7, 0.3], [0.3, 0.7], [0.6, 0.4]])
    m = classification_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    expected_ll = -np.mean(np.log([0.9, 0.8, 0.4, 0.7, 0.7, 0.4]))
    assert m["log_loss"] == pytest.approx(expected_ll)
    # AUC: fraction of (positive, negative) pairs ranked correctly by p(1)
    pos, neg = proba[y == 1, 1], proba[y == 0, 1]
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert m["roc_auc"] == pytest.approx(np.mean(pairs))
    f1_0 = 2 * (3 / 4) * (3 / 4) / (3 / 4 + 3 / 4)  # class 0: precision 3/4, recall 3/4
    f1_1 = 2 * 0.5 * 0.5 / 1.0
    assert m["f1"] == pytest.approx((f1_0 + f1_1) / 2)


def test_auc_undefined_with_one_class_and_absent_classes_count_in_log_loss():
    y = np.array([1, 1, 1])
    proba = np.array([[0.1, 0.8, 0.1]] * 3)
    m = classification_metrics(y, proba)
    assert math.isnan(m["roc_auc"])
    assert m["accuracy"] == 1.0
    assert m["log_loss"] == pytest.approx(-math.log(0.8))
    assert mean_metrics([m, m | {"roc_auc": 0.6}], "cv_")["cv_roc_auc"] == pytest.approx(0.6)


def test_bad_inputs_are_refused():
    with pytest.raises(DataQualityError, match="outside"):
        classification_metrics(np.array([0, 3]), np.full((2, 2), 0.5))
    with pytest.raises(DataQualityError, match="proba"):
        classification_metrics(np.array([0, 1]), np.full((3, 2), 0.5))
