"""MLPipeline: six model families behind one fit / predict / tune / explain / save API.

Tree models (random_forest, xgboost) take a 2-D frame; the nets (dnn on 2-D rows; lstm,
transformer, cnn1d on windows [n, seq, features]) train in one LightningModule under a Trainer
built from ``TrainerSettings``. Validation is always chronological: the last part of the data, or
expanding time-ordered folds, with ``embargo`` rows purged between train and validation. Scalers
see training rows only. torch, lightning, xgboost, shap and mlflow are imported on first use.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import logging
import math
import pickle
import platform
import tempfile
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import ConfigError, DataQualityError, OperationalError
from engine.metrics import GREATER_IS_BETTER, METRIC_NAMES, classification_metrics, mean_metrics
from engine.models import MODEL_TYPES, NET_TYPES, SEQUENCE_TYPES
from engine.models.scaling import StandardScaler

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = 1
_PREDICT_CHUNK = 8192


@dataclass(frozen=True)
class TrainerSettings:
    """What the Lightning Trainer (and the optimiser) of a net is built from; ignored by tree models."""

    max_epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    early_stopping_patience: int = 3  # epochs without val_loss improvement; <= 0 disables
    gradient_clip_val: float | None = 1.0
    num_workers: int = 0
    enable_progress_bar: bool = True
    deterministic: bool = True
    # torch intra-op threads while training (0: leave torch's setting). On a small machine shared with
    # other jobs, 1 avoids threads spinning against each other (measured 5x faster on 2 busy cores).
    torch_threads: int = 0

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ConfigError("trainer.max_epochs", f"must be >= 1; got {self.max_epochs}")
        if self.batch_size < 1:
            raise ConfigError("trainer.batch_size", f"must be >= 1; got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ConfigError("trainer.learning_rate", f"must be > 0; got {self.learning_rate}")


# tune() routes grid keys with these names to TrainerSettings; every other key is a model param
TRAINER_GRID_KEYS: frozenset[str] = frozenset(
    {"max_epochs", "batch_size", "learning_rate", "weight_decay", "early_stopping_patience", "gradient_clip_val"})


def purged_time_folds(n: int, n_folds: int, embargo: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding, time-ordered folds (``engine.data.datasets.purged_time_folds``): fold i validates on
    block i+1 of ``n_folds + 1`` and trains on everything before it, minus the ``embargo`` rows right
    before the validation block (their labels look into it)."""
    from engine.data.datasets import purged_time_folds as folds

    if n_folds < 1:
        raise ConfigError("cv", f"needs >= 1 fold; got {n_folds}")
    if embargo < 0:
        raise ConfigError("embargo", f"must be >= 0; got {embargo}")
    try:
        return folds(n, n_folds, embargo)
    except DataQualityError as exc:
        raise DataQualityError(f"{exc}; use fewer folds (cv), a smaller embargo or more data") from exc


def holdout_split(n: int, val_split: float, embargo: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train on the first part, validate on the last ``val_split`` share, ``embargo`` rows dropped between."""
    if not 0.0 <= val_split < 1.0:
        raise ConfigError("val_split", f"must be in [0, 1); got {val_split}")
    n_val = round(n * val_split)
    if val_split > 0 and n_val == 0:
        n_val = 1
    train_stop = n - n_val - (embargo if n_val else 0)
    if train_stop < 2:
        raise DataQualityError(f"{n} samples leave {train_stop} for training after val_split={val_split} and "
                               f"embargo={embargo}; provide more data")
    return np.arange(0, train_stop), np.arange(n - n_val, n)


class MLPipeline:
    """One model family behind fit / predict_proba / tune / explain / save / load.

    ``params`` are the family's hyperparameters (unknown names are a ConfigError listing the allowed
    ones); ``metadata`` is carried verbatim into the artifact (e.g. ``{"labels": {...}}``).
    """

    def __init__(self, model_type: str, params: Mapping[str, Any] | None = None, *,
                 trainer: TrainerSettings | None = None, device: str = "auto", seed: int = 42, output_dim: int = 2,
                 dvc_track: bool = False, mlflow_run_id: str | None = None, mlflow_tracking_uri: str | None = None,
                 metadata: Mapping[str, Any] | None = None, dvc_repo: str | Path | None = None) -> None:
        if model_type not in MODEL_TYPES:
            raise ConfigError("model.model_type", f"unknown model type {model_type!r}; choose one of {list(MODEL_TYPES)}")
        if device not in ("auto", "cpu", "cuda", "gpu"):
            raise ConfigError("model.device", f"must be auto, cpu or cuda; got {device!r}")
        if int(output_dim) < 2:
            raise ConfigError("model.output_dim", f"needs >= 2 classes; got {output_dim}")
        self.model_type = model_type
        self.params: dict[str, Any] = dict(params or {})
        self.trainer = trainer or TrainerSettings()
        self.device = device
        self.seed = int(seed)
        self.output_dim = int(output_dim)
        self.dvc_track = dvc_track
        self.dvc_repo = dvc_repo
        self.mlflow_run_id = mlflow_run_id
        self.mlflow_tracking_uri = mlflow_tracking_uri
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._check_params(self.params)
        self.feature_names_: list[str] = []
        self.seq_len_: int | None = None
        self.scaler_: StandardScaler | None = None
        self.model_: Any = None  # a tabular estimator or an nn.Module (eval mode)
        self.metrics_: dict[str, float] = {}
        self.shap_values_: np.ndarray | None = None

    # ------------------------------------------------------------------ properties / checks
    @property
    def is_sequence(self) -> bool:
        return self.model_type in SEQUENCE_TYPES

    @property
    def is_net(self) -> bool:
        return self.model_type in NET_TYPES

    @property
    def is_fitted(self) -> bool:
        return self.model_ is not None

    def __repr__(self) -> str:
        return f"MLPipeline(model_type={self.model_type!r}, params={self.params!r}, output_dim={self.output_dim})"

    def _check_params(self, params: Mapping[str, Any]) -> None:
        if self.is_net:
            from engine.models.nets import network_params

            allowed = network_params(self.model_type)
        else:
            from engine.models.tabular import TABULAR

            allowed = list(TABULAR[self.model_type]().get_params())
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(f"model.params.{unknown[0]}",
                              f"unknown hyperparameter(s) {unknown} for {self.model_type}; allowed: {allowed}")

    def _check_x(self, X: Any, feature_names: Sequence[str] | None, *, fitting: bool) -> tuple[np.ndarray, list[str]]:
        what = "X"
        if self.is_sequence:
            if isinstance(X, pd.DataFrame | pd.Series):
                raise DataQualityError(f"{self.model_type} takes windows as an array [n, seq, features]; got a "
                                       f"{type(X).__name__}. Build windows with engine.data.datasets and pass "
                                       "feature_names=")
            arr = np.asarray(X)
            if arr.ndim != 3:
                raise DataQualityError(f"{self.model_type} needs X of shape [n, seq, features]; got shape {arr.shape}")
            names = list(feature_names) if feature_names is not None else None
        else:
            if isinstance(X, pd.DataFrame):
                cols = [str(c) for c in X.columns]
                bad = [c for c, dt in X.dtypes.items() if not (pd.api.types.is_numeric_dtype(dt)
                                                               or pd.api.types.is_bool_dtype(dt))]
                if bad:
                    raise DataQualityError(f"X columns {bad} are not numeric (dtypes "
                                           f"{[str(X[c].dtype) for c in bad]}); encode or drop them before fit/predict")
                if feature_names is not None and list(feature_names) != cols:
                    raise DataQualityError("feature_names= disagrees with the frame's columns; pass one or the other")
                names = cols
                arr = X.to_numpy(dtype="float64", na_value=np.nan)
            else:
                arr = np.asarray(X)
                names = list(feature_names) if feature_names is not None else None
            if arr.ndim != 2:
                raise DataQualityError(f"{self.model_type} needs 2-D X [n, features]; got shape {arr.shape}. "
                                       "(Windows [n, seq, f] are for lstm, transformer and cnn1d.)")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise DataQualityError(f"{what} must be numeric; got dtype {arr.dtype}")
        arr = arr.astype("float64" if not self.is_net else "float32", copy=False)
        if arr.shape[0] == 0:
            raise DataQualityError(f"{what} has no rows")
        n_feat = arr.shape[-1]
        if names is not None and len(names) != n_feat:
            raise DataQualityError(f"{len(names)} feature names for {n_feat} features in X")
        if not np.isfinite(arr).all():
            bad_mask = ~np.isfinite(arr.reshape(-1, n_feat))
            cols = names or [f"#{i}" for i in range(n_feat)]
            counts = {cols[i]: int(c) for i, c in enumerate(bad_mask.sum(axis=0)) if c}
            raise DataQualityError(f"{what} holds NaN/inf values in {counts} (feature: count); drop warm-up rows or "
                                   "impute before fit/predict")
        if fitting:
            return arr, names or [f"f{i}" for i in range(n_feat)]
        self._check_features(names, n_feat, arr)
        return arr, self.feature_names_

    def _check_features(self, names: list[str] | None, n_feat: int, arr: np.ndarray) -> None:
        if names is not None and names != self.feature_names_:
            missing = [c for c in self.feature_names_ if c not in names]
            extra = [c for c in names if c not in self.feature_names_]
            if missing or extra:
                raise DataQualityError(f"features differ from the model's: missing {missing}, extra {extra}; "
                                       "compute the same feature set the model was trained on")
            raise DataQualityError(f"features are in a different order than the model's {self.feature_names_}; "
                                   "reorder with X[pipeline.feature_names_]")
        if n_feat != len(self.feature_names_):
            raise DataQualityError(f"X has {n_feat} features; the model was trained on {len(self.feature_names_)}: "
                                   f"{self.feature_names_}")
        if self.is_sequence and arr.shape[1] != self.seq_len_:
            raise DataQualityError(f"windows of {arr.shape[1]} steps; the model was trained on {self.seq_len_}")

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        arr = y.to_numpy() if isinstance(y, pd.Series | pd.DataFrame) else np.asarray(y)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise DataQualityError(f"y must be 1-D class ids; got shape {arr.shape}")
        if arr.shape[0] != n:
            raise DataQualityError(f"X has {n} samples but y has {arr.shape[0]}; align them on the same index")
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise DataQualityError(f"y must hold integer class ids 0..{self.output_dim - 1}; got dtype {arr.dtype}. "
                                   "Drop unlabelled rows (NaN) and cast with y.astype('int64')")
        arr = arr.astype("int64")
        outside = sorted(set(np.unique(arr).tolist()) - set(range(self.output_dim)))
        if outside:
            raise DataQualityError(f"y holds class ids {outside} outside 0..{self.output_dim - 1}; map labels to "
                                   "0-based ids (e.g. -1/0/1 -> 0/1/2) or raise output_dim")
        return arr

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, val_split: float = 0.2, cv: int | None = None, epochs: int | None = None,
            callbacks: list[Any] | None = None, embargo: int = 0,
            feature_names: list[str] | None = None) -> dict[str, float]:
        """Fit on chronologically ordered samples; returns ``val_*`` (and ``cv_*`` means with ``cv``) metrics."""
        if callbacks and not self.is_net:
            raise ConfigError("callbacks", f"Lightning callbacks apply to nets only, not {self.model_type}")
        x, names = self._check_x(X, feature_names, fitting=True)
        yy = self._check_y(y, x.shape[0])
        self.feature_names_ = names
        self.seq_len_ = int(x.shape[1]) if self.is_sequence else None
        metrics: dict[str, float] = {}
        if cv:
            fold_metrics = []
            for i, (tr, va) in enumerate(purged_time_folds(len(x), int(cv), embargo)):
                log.info("%s fold %d/%d: train %d, validate %d", self.model_type, i + 1, cv, len(tr), len(va))
                model, scaler, _ = self._fit_one(x[tr], yy[tr], x[va], yy[va], epochs, callbacks, prefix=f"cv{i}")
                fold_metrics.append(classification_metrics(yy[va], self._proba_with(model, scaler, x[va])))
            metrics |= mean_metrics(fold_metrics, "cv_")
        tr, va = holdout_split(len(x), val_split, embargo)
        has_val = len(va) > 0
        model, scaler, epochs_run = self._fit_one(x[tr], yy[tr], x[va] if has_val else None,
                                                  yy[va] if has_val else None, epochs, callbacks, prefix="")
        self.model_, self.scaler_ = model, scaler
        if has_val:
            metrics |= {f"val_{k}": v for k, v in classification_metrics(yy[va], self._proba(x[va])).items()}
        metrics |= {"train_samples": float(len(tr)), "val_samples": float(len(va)), "epochs_run": float(epochs_run)}
        self.metrics_ = metrics
        return metrics

    def _fit_one(self, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None, y_va: np.ndarray | None,
                 epochs: int | None, callbacks: list[Any] | None, prefix: str) -> tuple[Any, StandardScaler | None, int]:
        if not self.is_net:
            from engine.models.tabular import TABULAR

            params = {"random_state": self.seed} | self.params
            if self.model_type == "xgboost" and self.device in ("cuda", "gpu") and "device" not in self.params:
                params["device"] = "cuda"
            return TABULAR[self.model_type](**params).fit(x_tr, y_tr), None, 0
        return self._fit_net(x_tr, y_tr, x_va, y_va, epochs, callbacks, prefix)

    def _accelerator(self) -> str:
        if self.device == "auto":
            return self.trainer.accelerator
        return "cpu" if self.device == "cpu" else "gpu"

    def _fit_net(self, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None, y_va: np.ndarray | None,
                 epochs: int | None, callbacks: list[Any] | None, prefix: str) -> tuple[Any, StandardScaler, int]:
        import torch

        ts = self.trainer
        threads = torch.get_num_threads()
        if ts.torch_threads > 0:
            torch.set_num_threads(ts.torch_threads)
        try:
            return self._train_net(x_tr, y_tr, x_va, y_va, epochs, callbacks, prefix)
        finally:
            torch.set_num_threads(threads)

    def _train_net(self, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None, y_va: np.ndarray | None,
                   epochs: int | None, callbacks: list[Any] | None, prefix: str) -> tuple[Any, StandardScaler, int]:
        import lightning as L
        import torch
        from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

        from engine.models.lit import LitClassifier, drop_lightning_adverts, job_run_logger
        from engine.models.nets import build_network

        drop_lightning_adverts()
        ts = self.trainer
        scaler = StandardScaler.fit(x_tr)
        L.seed_everything(self.seed, workers=True, verbose=False)
        network = build_network(self.model_type, x_tr.shape[-1], self.output_dim, self.params)
        module = LitClassifier(network, learning_rate=ts.learning_rate, weight_decay=ts.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        train_loader = tensor_loader(scaler.transform(x_tr), y_tr, ts.batch_size, shuffle=True,
                                     num_workers=ts.num_workers, generator=generator)
        val_loader = None
        cbs: list[Any] = list(callbacks or [])
        if ts.enable_progress_bar:
            from lightning.pytorch.callbacks import TQDMProgressBar

            # redrawing the bar every step costs a measurable share of a small CPU step
            cbs.append(TQDMProgressBar(refresh_rate=max(1, len(train_loader) // 50)))
        with tempfile.TemporaryDirectory(prefix="engine-fit-") as tmp:
            checkpoint = None
            if x_va is not None and y_va is not None:
                val_loader = tensor_loader(scaler.transform(x_va), y_va, max(ts.batch_size, 1024), shuffle=False,
                                           num_workers=ts.num_workers)
                checkpoint = ModelCheckpoint(dirpath=tmp, monitor="val_loss", mode="min", save_top_k=1,
                                             save_weights_only=True, filename="best")
                cbs.append(checkpoint)
                if ts.early_stopping_patience > 0:
                    cbs.append(EarlyStopping(monitor="val_loss", mode="min", patience=ts.early_stopping_patience))
            logger: Any = False
            if self.mlflow_run_id:
                logger = job_run_logger(self.mlflow_run_id, self.mlflow_tracking_uri, prefix=prefix)
            trainer = L.Trainer(
                max_epochs=int(epochs or ts.max_epochs), accelerator=self._accelerator(), devices=ts.devices,
                strategy=ts.strategy, precision=ts.precision, gradient_clip_val=ts.gradient_clip_val,
                deterministic=ts.deterministic, enable_progress_bar=ts.enable_progress_bar, callbacks=cbs,
                logger=logger, default_root_dir=tmp, enable_checkpointing=checkpoint is not None,
                enable_model_summary=False, num_sanity_val_steps=0,
                log_every_n_steps=max(1, min(50, len(train_loader))))
            with warnings.catch_warnings():
                # num_workers=0 is deliberate: batches are slices of in-memory tensors
                warnings.filterwarnings("ignore", message=".*does not have many workers.*")
                warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
                warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
                warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # lightning vs torch 2.13 pytree API
                trainer.fit(module, train_loader, val_loader)
            if checkpoint is not None and checkpoint.best_model_path:
                state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
                module.load_state_dict(state)
            epochs_run = int(trainer.current_epoch)
        network = module.network.to("cpu" if self._accelerator() == "cpu" else module.device)
        network.eval()
        return network, scaler, epochs_run

    # ------------------------------------------------------------------ predict
    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise OperationalError("MLPipeline is not fitted; call fit() or MLPipeline.load(path) first")

    def _proba_with(self, model: Any, scaler: StandardScaler | None, x: np.ndarray) -> np.ndarray:
        if not self.is_net:
            raw = model.predict_proba(x)
            out = np.zeros((x.shape[0], self.output_dim))
            out[:, np.asarray(model.classes_, dtype=int)] = raw  # classes absent from training keep p=0
            return out
        import torch

        assert scaler is not None
        device = next(model.parameters()).device
        chunks = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], _PREDICT_CHUNK):
                xb = torch.from_numpy(scaler.transform(x[i:i + _PREDICT_CHUNK])).to(device)
                chunks.append(torch.softmax(model(xb), dim=-1).double().cpu().numpy())
        return np.concatenate(chunks)

    def _proba(self, x: np.ndarray) -> np.ndarray:
        return self._proba_with(self.model_, self.scaler_, x)

    def predict_proba(self, X: Any, feature_names: list[str] | None = None) -> np.ndarray:
        """Class probabilities [n, output_dim]; refuses features that differ from training."""
        self._require_fitted()
        x, _ = self._check_x(X, feature_names, fitting=False)
        return self._proba(x)

    def predict(self, X: Any, feature_names: list[str] | None = None) -> np.ndarray:
        """Most probable class id per sample (int64)."""
        return self.predict_proba(X, feature_names).argmax(axis=1).astype("int64")

    # ------------------------------------------------------------------ tune
    def _variant(self, combo: Mapping[str, Any]) -> MLPipeline:
        # trees have no Trainer: their learning_rate / n_estimators etc. are model params
        to_trainer = TRAINER_GRID_KEYS if self.is_net else frozenset()
        trainer_part = {k: v for k, v in combo.items() if k in to_trainer}
        model_part = {k: v for k, v in combo.items() if k not in to_trainer}
        return MLPipeline(self.model_type, self.params | model_part,
                          trainer=dataclasses.replace(self.trainer, **trainer_part), device=self.device,
                          seed=self.seed, output_dim=self.output_dim, metadata=self.metadata)

    def tune(self, X: Any, y: Any, param_grid: Mapping[str, Sequence[Any]], cv: int = 3, embargo: int = 0,
             metric: str = "balanced_accuracy", val_split: float = 0.2, epochs: int | None = None,
             feature_names: list[str] | None = None) -> dict[str, Any]:
        """Grid search with the same purged time-ordered CV; refits the best combination on all data.

        For nets, grid keys named like TrainerSettings fields (learning_rate, batch_size, ...) tune
        the trainer and all others the model params; for trees every key is a model param. Returns best_params, best_score (mean ``cv_<metric>``), metric,
        results (one row per combination) and refit_metrics.
        """
        if metric not in METRIC_NAMES:
            raise ConfigError("tune.metric", f"unknown metric {metric!r}; choose one of {list(METRIC_NAMES)}")
        if not param_grid or any(len(list(v)) == 0 for v in param_grid.values()):
            raise ConfigError("param_grid", "needs at least one key with at least one value")
        keys = sorted(param_grid)
        combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(param_grid[k] for k in keys))]
        for combo in combos:  # fail on a typo before hours of fitting
            self._variant(combo)
        greater = GREATER_IS_BETTER[metric]
        results: list[dict[str, Any]] = []
        best: tuple[float, dict[str, Any]] | None = None
        for i, combo in enumerate(combos):
            cand = self._variant(combo)
            scores = cand._cv_only(X, y, cv, embargo, epochs, feature_names)
            score = scores[f"cv_{metric}"]
            log.info("tune %d/%d %s -> cv_%s=%.4f", i + 1, len(combos), combo, metric, score)
            results.append({"params": combo, "score": score, **scores})
            if math.isnan(score):
                continue
            if best is None or (score > best[0] if greater else score < best[0]):
                best = (score, combo)
        if best is None:
            raise DataQualityError(f"cv_{metric} is undefined for every combination (too few classes per fold?)")
        chosen = self._variant(best[1])
        self.params, self.trainer = chosen.params, chosen.trainer
        refit = self.fit(X, y, val_split=val_split, embargo=embargo, epochs=epochs, feature_names=feature_names)
        return {"best_params": best[1], "best_score": best[0], "metric": metric, "results": results,
                "refit_metrics": refit}

    def _cv_only(self, X: Any, y: Any, cv: int, embargo: int, epochs: int | None,
                 feature_names: list[str] | None) -> dict[str, float]:
        x, _ = self._check_x(X, feature_names, fitting=True)
        yy = self._check_y(y, x.shape[0])
        folds = []
        for tr, va in purged_time_folds(len(x), int(cv), embargo):
            model, scaler, _ = self._fit_one(x[tr], yy[tr], x[va], yy[va], epochs, None, prefix="")
            folds.append(classification_metrics(yy[va], self._proba_with(model, scaler, x[va])))
        return mean_metrics(folds, "cv_")

    # ------------------------------------------------------------------ explain
    def explain(self, X: Any, method: str = "shap", max_samples: int = 200,
                feature_names: list[str] | None = None, background_samples: int = 100,
                nsamples: int = 100) -> pd.DataFrame:
        """Mean |SHAP| per feature (index ``feature``, column ``mean_abs_shap``), largest first.

        Trees use TreeExplainer; nets a GradientExplainer (expected gradients) on class probabilities,
        with background windows spread evenly over X and ``nsamples`` gradient samples per explained
        row. For sequence models a feature's attribution is summed over the window's time steps
        before taking |.|. Explains the last ``max_samples`` rows; raw values land in ``shap_values_``
        ([n, features, classes] or [n, seq, features, classes]).
        """
        if method != "shap":
            raise ConfigError("explain.method", f"only 'shap' is implemented; got {method!r}")
        self._require_fitted()
        x, names = self._check_x(X, feature_names, fitting=False)
        import shap

        sample = x[-max_samples:]
        if not self.is_net:
            explainer = shap.TreeExplainer(self.model_.model_) if self.model_.model_ is not None else None
            if explainer is None:
                raise OperationalError("the model saw one class only; there is nothing to explain")
            values = np.asarray(explainer.shap_values(sample))
            if values.ndim == 2:  # binary XGBoost explains the positive-class margin only
                values = values[..., None]
        else:
            import torch

            assert self.scaler_ is not None
            idx = np.linspace(0, len(x) - 1, min(background_samples, len(x))).astype(int)
            background = torch.from_numpy(self.scaler_.transform(x[idx]))
            wrapped = torch.nn.Sequential(self.model_, torch.nn.Softmax(dim=-1)).eval()
            explainer = shap.GradientExplainer(wrapped, background, batch_size=1024)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning)
                values = np.asarray(explainer.shap_values(torch.from_numpy(self.scaler_.transform(sample)),
                                                          nsamples=nsamples, rseed=self.seed))
        self.shap_values_ = values
        per_feature = values.sum(axis=1) if self.is_sequence else values  # [n, f, k]
        importance = np.abs(per_feature).mean(axis=(0, 2))
        frame = pd.DataFrame({"mean_abs_shap": importance}, index=pd.Index(names, name="feature"))
        return frame.sort_values("mean_abs_shap", ascending=False)

    # ------------------------------------------------------------------ save / load
    def manifest(self) -> dict[str, Any]:
        return {
            "format": ARTIFACT_FORMAT,
            "model_type": self.model_type,
            "params": self.params,
            "output_dim": self.output_dim,
            "seed": self.seed,
            "device": self.device,
            "trainer": dataclasses.asdict(self.trainer),
            "feature_names": self.feature_names_,
            "seq_len": self.seq_len_,
            "scaler": self.scaler_.to_dict() if self.scaler_ is not None else None,
            "metadata": self.metadata,
            "metrics": self.metrics_,
            "versions": library_versions(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def save(self, path: str | Path) -> Path:
        """Write one zip artifact (manifest.json + weights); with dvc_track, ``dvc add`` it. Returns the path."""
        self._require_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(self.manifest(), indent=2, default=str))
            if self.is_net:
                import torch

                buf = io.BytesIO()
                torch.save({k: v.cpu() for k, v in self.model_.state_dict().items()}, buf)
                zf.writestr("network.pt", buf.getvalue())
            else:
                zf.writestr("estimator.pkl", pickle.dumps(self.model_, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(path)  # readers never see a half-written artifact
        if self.dvc_track:
            from engine.tracking.dvc import DVCManager, find_dvc_root

            root = Path(self.dvc_repo) if self.dvc_repo else find_dvc_root(path)
            self.dvc_file_ = DVCManager(root).add(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> MLPipeline:
        """Rebuild a pipeline from ``save``'s artifact. Artifacts contain pickles: load only trusted files."""
        path = Path(path)
        if not path.is_file():
            raise OperationalError(f"model artifact not found: {path}")
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise DataQualityError(f"{path} is not an MLPipeline artifact (not a zip file)") from exc
        with zf:
            try:
                man = json.loads(zf.read("manifest.json"))
            except KeyError as exc:
                raise DataQualityError(f"{path} has no manifest.json; not an MLPipeline artifact") from exc
            if man.get("format") != ARTIFACT_FORMAT:
                raise DataQualityError(f"{path} has artifact format {man.get('format')}; this engine reads "
                                       f"{ARTIFACT_FORMAT}")
            _warn_version_drift(man.get("versions", {}), path)
            pipe = cls(man["model_type"], man["params"], trainer=TrainerSettings(**man["trainer"]),
                       device=man.get("device", "auto"), seed=man["seed"], output_dim=man["output_dim"],
                       metadata=man.get("metadata"))
            pipe.feature_names_ = list(man["feature_names"])
            pipe.seq_len_ = man["seq_len"]
            pipe.metrics_ = dict(man.get("metrics", {}))
            pipe.scaler_ = StandardScaler.from_dict(man["scaler"]) if man["scaler"] else None
            if pipe.is_net:
                import torch

                from engine.models.nets import build_network

                network = build_network(pipe.model_type, len(pipe.feature_names_), pipe.output_dim, pipe.params)
                state = torch.load(io.BytesIO(zf.read("network.pt")), map_location="cpu", weights_only=True)
                network.load_state_dict(state)
                pipe.model_ = network.eval()
            else:
                pipe.model_ = pickle.loads(zf.read("estimator.pkl"))  # trusted artifact only
        return pipe

    # ------------------------------------------------------------------ MLflow model
    def input_example(self, n: int = 2) -> pd.DataFrame | np.ndarray:
        """A zero-valued input of the shape predict_proba takes (for MLflow signatures and smoke checks)."""
        if self.is_sequence:
            return np.zeros((n, self.seq_len_ or 1, len(self.feature_names_)), dtype="float32")
        return pd.DataFrame(np.zeros((n, len(self.feature_names_))), columns=self.feature_names_)

    def log_mlflow_model(self, run_id: str | None = None, name: str = "model",
                         input_example: pd.DataFrame | np.ndarray | None = None) -> str:
        """Log this pipeline as an MLflow pyfunc model (signature + input example); returns the model URI.

        Uses ``run_id`` (or the pipeline's ``mlflow_run_id``, or the active run).
        """
        self._require_fitted()
        import mlflow
        from mlflow.models import infer_signature

        from engine.models import mlflow_model_code_path

        example = input_example if input_example is not None else self.input_example()
        signature = infer_signature(example, self.predict_proba(example))
        target = run_id or self.mlflow_run_id
        active = mlflow.active_run()
        with tempfile.TemporaryDirectory(prefix="engine-mlflow-") as tmp:
            artifact = self.save_copy(Path(tmp) / "pipeline.zip")

            def _log() -> str:
                with warnings.catch_warnings():
                    # the wrapper's predict is untyped on purpose: the signature describes the input
                    warnings.filterwarnings("ignore", message=".*type hint.*", category=UserWarning)
                    info = mlflow.pyfunc.log_model(name=name, python_model=mlflow_model_code_path(),
                                                   artifacts={"pipeline": str(artifact)}, signature=signature,
                                                   input_example=example,
                                                   pip_requirements=self._pip_requirements())
                return str(info.model_uri)

            if active is not None and (target is None or active.info.run_id == target):
                return _log()
            if target is None:
                raise OperationalError("log_mlflow_model needs run_id= or an active MLflow run")
            previous = mlflow.get_tracking_uri()
            if self.mlflow_tracking_uri:
                mlflow.set_tracking_uri(self.mlflow_tracking_uri)
            try:
                client = mlflow.tracking.MlflowClient()
                status = client.get_run(target).info.status
                try:
                    with mlflow.start_run(run_id=target, nested=active is not None):
                        return _log()
                finally:
                    # leaving start_run ends the run; a run someone else still writes to stays open
                    if status == "RUNNING":
                        client.update_run(target, status="RUNNING")
            finally:
                mlflow.set_tracking_uri(previous)

    def _pip_requirements(self) -> list[str]:
        # Pinned from this environment: MLflow's own inference loads the model in a subprocess (seconds)
        # and misses the libraries the family needs.
        from importlib import metadata as md

        dists = ["mlflow", "numpy", "pandas", "scikit-learn"]
        dists += ["torch", "lightning"] if self.is_net else (["xgboost"] if self.model_type == "xgboost" else [])
        out = []
        for dist in dists:
            try:
                out.append(f"{dist}=={md.version(dist)}")
            except md.PackageNotFoundError:
                out.append(dist)
        return out

    def save_copy(self, path: Path) -> Path:
        """``save`` without DVC tracking (for copies embedded elsewhere, e.g. the MLflow model)."""
        track, self.dvc_track = self.dvc_track, False
        try:
            return self.save(path)
        finally:
            self.dvc_track = track


def library_versions() -> dict[str, str]:
    from importlib import metadata as md

    out = {"python": platform.python_version()}
    for dist in ("engine", "numpy", "pandas", "scikit-learn", "xgboost", "torch", "lightning", "shap"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _warn_version_drift(saved: Mapping[str, str], path: Path) -> None:
    now = library_versions()
    drift = {k: (v, now.get(k)) for k, v in saved.items()
             if k in ("scikit-learn", "xgboost", "torch") and v != now.get(k)}
    if drift:
        log.warning("%s was saved with other library versions %s (saved, now); predictions may differ",
                    path.name, drift)


def tensor_loader(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, num_workers: int = 0,
                  generator: Any = None) -> Any:
    """A DataLoader that slices whole batches out of in-memory tensors (no per-sample collate)."""
    import torch
    from torch.utils.data import DataLoader

    from engine.models.lit import TensorBatches, identity_collate

    ds = TensorBatches(torch.from_numpy(np.ascontiguousarray(x, dtype="float32")),
                       torch.from_numpy(np.array(y, dtype="int64")))  # a copy: pandas CoW arrays are read-only
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, generator=generator,
                      collate_fn=identity_collate)
