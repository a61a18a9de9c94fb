"""MLPipeline: six model families behind the seed's fit / predict / predict_proba / save / load / tune /
explain API.

A thin facade: input checks (``inputs``), chronological splits (``engine.data.splits``) and metrics
are shared; everything that differs between families (input layout, training, inference, weights,
SHAP) is the family strategy's (``family``: ``tabular``, ``nets``). Validation is always chronological:
the last part of the data, an explicit validation span, or expanding time-ordered folds, with
``embargo`` rows purged between train and validation. Tracking reaches the model through ``hooks``.
torch, lightning, xgboost and shap are imported on first use.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data.splits import holdout_split, purged_time_folds
from engine.errors import ConfigError, OperationalError
from engine.metrics import classification_metrics, mean_metrics
from engine.models import MODEL_TYPES, NET_TYPES
from engine.models.artifact import now_stamp, read_artifact, stamp, write_artifact
from engine.models.explain import importance_frame
from engine.models.family import Family, ModelSpec, Trained, family_of
from engine.models.hooks import ModelHooks, versioning_hooks
from engine.models.inputs import as_labels, as_samples, check_like_training
from engine.models.scaling import StandardScaler
from engine.models.settings import CallbackSettings, TrainerSettings, family_params
from engine.models.tuning import best_result, check_metric, grid_combinations, split_combo

__all__ = ["MLPipeline", "TrainerSettings"]

log = logging.getLogger(__name__)

DEFAULT_VAL_SPLIT = 0.2


class _LoadDescriptor:
    """``MLPipeline.load(path)`` returns a new pipeline; ``pipe.load(path)`` fills ``pipe`` (whose
    model_type must match the file's) and returns it, as the seed's ``pipe2.load(...)`` expects."""

    def __get__(self, instance: MLPipeline | None, owner: type[MLPipeline]) -> Any:
        return owner._load_new if instance is None else instance._load_into


class MLPipeline:
    """One model family behind fit / predict_proba / tune / explain / save / load.

    ``params`` are the family's hyperparameters (``engine.models.settings``: an unknown name or a value out
    of range is a ConfigError); ``metadata`` goes verbatim into the artifact (e.g. ``{"labels": {...}}``);
    ``hooks`` are tracking's extension points (``engine.models.hooks``); ``callback_settings`` the nets'
    Lightning callbacks. ``dvc_track=True`` versions each ``save`` through the registered versioning hook (in
    ``dvc_repo`` or the nearest DVC repository above the file); with none installed it is refused here."""

    load = _LoadDescriptor()

    def __init__(self, model_type: str, params: Mapping[str, Any] | None = None, *,
                 trainer: TrainerSettings | None = None, device: str = "auto", seed: int = 42, output_dim: int = 2,
                 dvc_track: bool = False, dvc_repo: str | Path | None = None,
                 metadata: Mapping[str, Any] | None = None, hooks: Sequence[ModelHooks] = (),
                 callback_settings: CallbackSettings | None = None) -> None:
        if model_type not in MODEL_TYPES:
            raise ConfigError("model.model_type", f"unknown model type {model_type!r}; choose one of {list(MODEL_TYPES)}")
        if device not in ("auto", "cpu", "cuda", "gpu"):
            raise ConfigError("model.device", f"must be auto, cpu or cuda; got {device!r}")
        if int(output_dim) < 2:
            raise ConfigError("model.output_dim", f"needs >= 2 classes; got {output_dim}")
        self.model_type = model_type
        self.params: dict[str, Any] = dict(params or {})
        family_params(model_type, self.params)
        self.trainer, self.callback_settings = trainer or TrainerSettings(), callback_settings or CallbackSettings()
        self.device, self.seed, self.output_dim = device, int(seed), int(output_dim)
        self.dvc_track, self.dvc_repo = dvc_track, dvc_repo
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.hooks: list[ModelHooks] = list(hooks)
        if dvc_track:
            versioning_hooks(None)  # refuse now, before any training, when no versioning is installed
        self.feature_names_: list[str] = []
        self.seq_len_: int | None = None
        self.scaler_: StandardScaler | None = None
        self.model_: Any = None  # a tabular estimator or an nn.Module (eval mode)
        self.metrics_: dict[str, float] = {}
        self.shap_values_: np.ndarray | None = None

    @property
    def is_sequence(self) -> bool:
        return self.family.sequence

    @property
    def is_net(self) -> bool:
        return self.model_type in NET_TYPES

    @property
    def is_fitted(self) -> bool:
        return self.model_ is not None

    @property
    def family(self) -> Family:
        """The strategy of this model type (``engine.models.family``)."""
        return family_of(self.model_type)

    def __repr__(self) -> str:
        return f"MLPipeline(model_type={self.model_type!r}, params={self.params!r}, output_dim={self.output_dim})"

    def _spec(self, **fit: Any) -> ModelSpec:
        return ModelSpec(self.model_type, self.params, self.trainer, self.device, self.seed, self.output_dim,
                         self.callback_settings, **fit)

    def _training_logger(self, prefix: str) -> Any:
        return next((lg for hook in self.hooks if (lg := hook.training_logger(prefix)) is not None), None)

    def _samples(self, X: Any, feature_names: Sequence[str] | None) -> tuple[np.ndarray, list[str] | None]:
        family = self.family
        return as_samples(X, feature_names, model_type=self.model_type, sequence=family.sequence, dtype=family.dtype)

    def _samples_like_training(self, X: Any, feature_names: Sequence[str] | None) -> np.ndarray:
        arr, names = self._samples(X, feature_names)
        check_like_training(arr, names, trained_on=self.feature_names_, seq_len=self.seq_len_)
        return arr

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise OperationalError("MLPipeline is not fitted; call fit() or load(path) first")

    def fit(self, X: Any, y: Any, val_split: float | None = None, cv: int | None = None, epochs: int | None = None,
            callbacks: list[Any] | None = None, embargo: int = 0, feature_names: list[str] | None = None, *,
            validation: tuple[Any, Any] | None = None, ckpt_path: str | Path | None = None) -> dict[str, float]:
        """Fit on chronologically ordered samples; returns ``val_*`` (and ``cv_*`` fold means with ``cv``),
        ``train_samples``, ``val_samples`` and ``epochs_run``.

        Validation is the last ``val_split`` share of X (default 0.2) after ``embargo`` dropped rows, or,
        with ``validation=(X_val, y_val)``, that span: then all of X trains, and X_val must follow X in
        time with the embargo already left out between them (as ``chronological_split`` does).
        ``cv`` folds are cut from X with the same ``embargo``. ``ckpt_path`` (nets): the final fit continues
        an interrupted fit of the same network and features from its Lightning checkpoint (folds start afresh)."""
        family = self.family
        if (callbacks or ckpt_path is not None) and not family.takes_callbacks:
            key, what = ("callbacks", "Lightning callbacks") if callbacks else ("trainer.ckpt_path", "checkpoints")
            raise ConfigError(key, f"{what} apply to nets only, not {self.model_type}")
        if validation is not None and val_split is not None:
            raise ConfigError("val_split", "give val_split or validation=(X_val, y_val), not both")
        x, names = self._samples(X, feature_names)
        yy = as_labels(y, x.shape[0], self.output_dim)
        names = names or [f"f{i}" for i in range(x.shape[-1])]
        seq_len = int(x.shape[1]) if family.sequence else None
        if validation is None:
            train, val = holdout_split(len(x), DEFAULT_VAL_SPLIT if val_split is None else val_split, embargo)
            x_tr, y_tr, x_va, y_va = x[train], yy[train], x[val], yy[val]
        else:  # checked before any training, like predict's input
            x_tr, y_tr = x, yy
            x_va, names_va = self._samples(validation[0], feature_names)
            check_like_training(x_va, names_va, trained_on=names, seq_len=seq_len)
            y_va = as_labels(validation[1], x_va.shape[0], self.output_dim)
        metrics: dict[str, float] = {}
        if cv:
            metrics |= self._cross_validate(x, yy, int(cv), embargo, epochs, callbacks)
        has_val = len(y_va) > 0
        spec = self._spec(feature_names=tuple(names), resume_from=None if ckpt_path is None else str(ckpt_path))
        trained = family.fit(spec, x_tr, y_tr, x_va if has_val else None, y_va if has_val else None,
                             epochs=epochs, callbacks=callbacks, logger=self._training_logger, prefix="")
        # learned state changes only once training succeeded: a failed fit leaves the old model usable
        self.feature_names_, self.seq_len_ = names, seq_len
        self.model_, self.scaler_, self.fitted_at_ = trained.model, trained.scaler, now_stamp()
        if has_val:
            metrics |= {f"val_{k}": v for k, v in classification_metrics(y_va, self._proba(trained, x_va)).items()}
        metrics |= {"train_samples": float(len(y_tr)), "val_samples": float(len(y_va)),
                    "epochs_run": float(trained.epochs_run)}
        self.metrics_ = metrics
        return metrics

    def _cross_validate(self, x: np.ndarray, y: np.ndarray, cv: int, embargo: int, epochs: int | None,
                        callbacks: list[Any] | None) -> dict[str, float]:
        folds = []
        for i, (train, val) in enumerate(purged_time_folds(len(x), cv, embargo)):
            log.info("%s fold %d/%d: train %d, validate %d", self.model_type, i + 1, cv, len(train), len(val))
            trained = self.family.fit(self._spec(), x[train], y[train], x[val], y[val], epochs=epochs,
                                       callbacks=callbacks, logger=self._training_logger, prefix=f"cv{i}")
            folds.append(classification_metrics(y[val], self._proba(trained, x[val])))
        return mean_metrics(folds, "cv_")

    def _proba(self, trained: Trained, x: np.ndarray) -> np.ndarray:
        return self.family.predict_proba(trained.model, trained.scaler, x, self.output_dim)

    def predict_proba(self, X: Any, feature_names: list[str] | None = None) -> np.ndarray:
        """Class probabilities [n, output_dim]; refuses features that differ from training."""
        self._require_fitted()
        x = self._samples_like_training(X, feature_names)
        return self.family.predict_proba(self.model_, self.scaler_, x, self.output_dim)

    def predict(self, X: Any, feature_names: list[str] | None = None) -> np.ndarray:
        """Most probable class id per sample (int64)."""
        return self.predict_proba(X, feature_names).argmax(axis=1).astype("int64")

    def _variant(self, combo: Mapping[str, Any]) -> MLPipeline:
        trainer_part, model_part = split_combo(combo, self.family.trainer_keys)
        return MLPipeline(self.model_type, self.params | model_part,
                          trainer=dataclasses.replace(self.trainer, **trainer_part), device=self.device,
                          seed=self.seed, output_dim=self.output_dim, metadata=self.metadata,
                          callback_settings=self.callback_settings)

    def tune(self, X: Any, y: Any, param_grid: Mapping[str, Sequence[Any]], cv: int = 3, embargo: int = 0,
             metric: str = "balanced_accuracy", val_split: float = DEFAULT_VAL_SPLIT, epochs: int | None = None,
             feature_names: list[str] | None = None) -> dict[str, Any]:
        """Grid search with the same purged time-ordered CV, then a refit of the best combination on all data.

        For nets, grid keys named like TrainerSettings fields (learning_rate, batch_size, ...) tune the
        trainer, all others the model params; for trees every key is a model param. Returns best_params,
        best_score (mean ``cv_<metric>``), metric, results (one row per combination) and refit_metrics."""
        check_metric(metric)
        combos = grid_combinations(param_grid)
        candidates = [self._variant(combo) for combo in combos]  # a typo fails before hours of fitting
        x, _ = self._samples(X, feature_names)
        yy = as_labels(y, x.shape[0], self.output_dim)
        results: list[dict[str, Any]] = []
        for i, (combo, candidate) in enumerate(zip(combos, candidates, strict=True)):
            scores = candidate._cross_validate(x, yy, cv, embargo, epochs, None)
            score = scores[f"cv_{metric}"]
            log.info("tune %d/%d %s -> cv_%s=%.4f", i + 1, len(combos), combo, metric, score)
            results.append({"params": combo, "score": score, **scores})
        best_score, best_params = best_result(results, metric)
        chosen = self._variant(best_params)
        self.params, self.trainer = chosen.params, chosen.trainer
        refit = self.fit(X, y, val_split=val_split, embargo=embargo, epochs=epochs, feature_names=feature_names)
        return {"best_params": best_params, "best_score": best_score, "metric": metric, "results": results,
                "refit_metrics": refit}

    def explain(self, X: Any, method: str = "shap", max_samples: int = 200, feature_names: list[str] | None = None,
                background_samples: int = 100, nsamples: int = 100) -> pd.DataFrame:
        """Mean |SHAP| per feature, largest first, for the last ``max_samples`` rows of X (details in
        ``engine.models.explain``); raw values in ``shap_values_``. Trees use TreeExplainer, nets expected
        gradients with ``background_samples`` rows spread over X and ``nsamples`` gradient samples per row."""
        if method != "shap":
            raise ConfigError("explain.method", f"only 'shap' is implemented; got {method!r}")
        self._require_fitted()
        x = self._samples_like_training(X, feature_names)
        self.shap_values_ = self.family.shap_values(self.model_, self.scaler_, x, x[-max_samples:], seed=self.seed,
                                                     background_samples=background_samples, nsamples=nsamples)
        return importance_frame(self.shap_values_, self.feature_names_)

    def manifest(self) -> dict[str, Any]:
        """What ``save`` writes to manifest.json (plus format, library versions and creation time)."""
        return {
            "model_type": self.model_type, "params": self.params, "output_dim": self.output_dim, "seed": self.seed,
            "device": self.device, "trainer": dataclasses.asdict(self.trainer), "feature_names": self.feature_names_,
            "seq_len": self.seq_len_, "scaler": self.scaler_.to_dict() if self.scaler_ is not None else None,
            "metadata": self.metadata, "metrics": self.metrics_,
        }

    def save(self, path: str | Path) -> Path:
        """Write one zip artifact (``engine.models.artifact``), then run the hooks' ``on_saved`` (with
        ``dvc_track``: ``dvc add``). Returns the path."""
        path = self.save_copy(path)
        hooks = list(self.hooks)
        if self.dvc_track:
            hooks.append(versioning_hooks(Path(self.dvc_repo) if self.dvc_repo else None))
        for hook in hooks:
            hook.on_saved(self, path)
        return path

    def save_copy(self, path: str | Path) -> Path:
        """``save`` without hooks (for copies embedded elsewhere, e.g. the MLflow model)."""
        self._require_fitted()
        family, fitted_at = self.family, getattr(self, "fitted_at_", None)  # a loaded pipeline: the save time
        return write_artifact(path, stamp(self.manifest(), fitted_at), family.payload, family.dump(self.model_))

    @classmethod
    def _load_new(cls, path: str | Path) -> MLPipeline:
        """Rebuild a pipeline from ``save``'s artifact. Artifacts contain pickles: load only trusted files."""
        manifest, members = read_artifact(path)
        pipe = cls(manifest["model_type"], manifest["params"])
        return pipe._restore(manifest, members)

    def _load_into(self, path: str | Path) -> MLPipeline:
        """Fill this pipeline from ``save``'s artifact (its model_type must match) and return it."""
        manifest, members = read_artifact(path)
        if manifest["model_type"] != self.model_type:
            raise ConfigError("model_type", f"{path} holds a {manifest['model_type']} model; this pipeline was "
                                            f"built for {self.model_type}. Use MLPipeline(model_type="
                                            f"{manifest['model_type']!r}) or MLPipeline.load(path)")
        return self._restore(manifest, members)

    def _restore(self, manifest: Mapping[str, Any], members: Mapping[str, bytes]) -> MLPipeline:
        family_params(self.model_type, manifest["params"])
        self.params = dict(manifest["params"])
        self.trainer = TrainerSettings(**manifest["trainer"])
        self.device, self.seed = manifest.get("device", "auto"), int(manifest["seed"])
        self.output_dim = int(manifest["output_dim"])
        self.metadata = dict(manifest.get("metadata") or {})
        self.feature_names_ = list(manifest["feature_names"])
        self.seq_len_ = manifest["seq_len"]
        self.metrics_ = dict(manifest.get("metrics", {}))
        self.scaler_ = StandardScaler.from_dict(manifest["scaler"]) if manifest["scaler"] else None
        self.model_ = self.family.load(self._spec(), members[self.family.payload], len(self.feature_names_))
        self.shap_values_ = None
        return self
