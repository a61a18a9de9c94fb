"""Tree models with the scikit-learn estimator contract: RandomForest (sklearn) and XGBoost, and
the tabular family strategy that ``MLPipeline`` drives them through.

Both wrap the library estimator with an explicit, typed argument list (a typo in a config is an
error, not a silently ignored keyword), encode arbitrary class labels to 0..k-1 (XGBoost requires
that), and keep learned state in attributes ending in ``_``. Their arguments and defaults are those
of ``engine.models.settings`` (RandomForestParams, XGBoostParams); a test keeps the two equal.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from engine.models.family import LoggerFactory, ModelSpec, Trained


class _TreeClassifier(ClassifierMixin, BaseEstimator):
    def _make(self, n_classes: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X: Any, y: Any) -> _TreeClassifier:
        X, y = validate_data(self, X, y, dtype="float64", ensure_all_finite=True)
        check_classification_targets(y)
        self.label_encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.label_encoder_.classes_
        encoded = self.label_encoder_.transform(y)
        self.model_ = self._make(len(self.classes_))
        if len(self.classes_) == 1:
            self.model_ = None  # one class seen: constant prediction, nothing for the library to learn
        else:
            self.model_.fit(X, encoded)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "classes_")
        X = validate_data(self, X, dtype="float64", reset=False, ensure_all_finite=True)
        if self.model_ is None:
            return np.ones((X.shape[0], 1))
        return np.asarray(self.model_.predict_proba(X), dtype="float64")

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # checks fitted state before classes_ is touched
        return self.classes_[np.argmax(proba, axis=1)]


class RandomForestModel(_TreeClassifier):
    def __init__(self, n_estimators: int = 200, max_depth: int | None = 8, min_samples_leaf: int = 5,
                 max_features: str | float | None = "sqrt", class_weight: str | None = None, n_jobs: int = 1,
                 random_state: int | None = 0) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _make(self, n_classes: int) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features, class_weight=self.class_weight, n_jobs=self.n_jobs,
            random_state=self.random_state)


class XGBoostModel(_TreeClassifier):
    def __init__(self, n_estimators: int = 300, max_depth: int = 4, learning_rate: float = 0.05,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, min_child_weight: float = 1.0,
                 reg_lambda: float = 1.0, tree_method: str = "hist", device: str = "cpu", n_jobs: int = 1,
                 random_state: int | None = 0) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.tree_method = tree_method
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _make(self, n_classes: int) -> Any:
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight, reg_lambda=self.reg_lambda, tree_method=self.tree_method,
            device=self.device, n_jobs=self.n_jobs, random_state=self.random_state or 0,
            objective="binary:logistic" if n_classes == 2 else "multi:softprob")


TABULAR: dict[str, type[_TreeClassifier]] = {"random_forest": RandomForestModel, "xgboost": XGBoostModel}


class TabularFamily:
    """Rows [n, features] in float64, no scaling, no Trainer: one estimator fit per split."""

    sequence = False
    dtype = "float64"
    payload = "estimator.pkl"
    takes_callbacks = False
    trainer_keys: frozenset[str] = frozenset()  # trees have no Trainer: learning_rate etc. are model params

    def __init__(self, model_type: str, *, requirements: tuple[str, ...] = (),
                 gpu_params: Mapping[str, Any] | None = None) -> None:
        self.model_type = model_type
        self.estimator = TABULAR[model_type]
        self.requirements = requirements
        self.gpu_params = dict(gpu_params or {})  # what device="cuda" adds unless params set it

    def fit(self, spec: ModelSpec, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None,
            y_va: np.ndarray | None, *, epochs: int | None, callbacks: list[Any] | None, logger: LoggerFactory,
            prefix: str) -> Trained:
        on_gpu = self.gpu_params if spec.device in ("cuda", "gpu") else {}
        params = {"random_state": spec.seed} | on_gpu | dict(spec.params)
        return Trained(self.estimator(**params).fit(x_tr, y_tr), None, 0)

    def predict_proba(self, model: Any, scaler: Any, x: np.ndarray, output_dim: int) -> np.ndarray:
        out = np.zeros((x.shape[0], output_dim))
        out[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(x)  # unseen classes keep p=0
        return out

    def dump(self, model: Any) -> bytes:
        return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, spec: ModelSpec, blob: bytes, n_features: int) -> Any:
        return pickle.loads(blob)  # trusted artifacts only (documented on MLPipeline.load)

    def shap_values(self, model: Any, scaler: Any, x: np.ndarray, sample: np.ndarray, *, seed: int,
                    background_samples: int, nsamples: int) -> np.ndarray:
        from engine.models.explain import tree_shap

        return tree_shap(model, sample)


TABULAR_FAMILIES: dict[str, TabularFamily] = {
    "random_forest": TabularFamily("random_forest"),
    "xgboost": TabularFamily("xgboost", requirements=("xgboost",), gpu_params={"device": "cuda"}),
}
