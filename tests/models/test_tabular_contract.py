"""The tree models honour the scikit-learn estimator contract (sklearn's own check suite)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from engine.models.tabular import RandomForestModel, XGBoostModel


@parametrize_with_checks([RandomForestModel(n_estimators=5), XGBoostModel(n_estimators=5)])
def test_sklearn_contract(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", [RandomForestModel, XGBoostModel])
def test_string_labels_round_trip_and_unknown_argument_is_refused(cls):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.where(X[:, 0] > 0, "up", "down")
    model = cls(n_estimators=10).fit(X, y)
    assert set(model.predict(X)) <= {"up", "down"}
    assert (model.predict(X) == y).mean() > 0.8  # the one informative column is learnt
    with pytest.raises(TypeError):
        cls(n_estimatorz=10)
