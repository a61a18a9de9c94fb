"""The tracking layer's side of the model layer's hooks (``engine.models.hooks``), and MLflow model logging.

The model layer never imports MLflow or DVC; what it needs from them arrives here:

- :func:`install` registers DVC versioning for ``MLPipeline(dvc_track=True)`` (idempotent). The package
  root's lazy ``from engine import MLPipeline`` calls it; a task that builds a pipeline with
  ``dvc_track`` calls it first.
- :class:`MlflowTrainingLogger` hands the nets' Lightning Trainer a logger writing into a job's run.
- :func:`log_pipeline_model` logs a fitted pipeline as an MLflow pyfunc model into a given run through an
  explicit client: the process-wide tracking URI and active run are left as they are.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import OperationalError
from engine.models.hooks import ModelHooks, register_versioning
from engine.tracking.dvc_data import version_output

# Distributions every logged model needs; the family adds its own (torch + lightning, or xgboost).
_BASE_REQUIREMENTS = ("mlflow", "numpy", "pandas", "scikit-learn")


def install() -> None:
    """Register the tracking layer's hooks with the model layer (safe to call more than once)."""
    register_versioning(DvcVersioning)


class DvcVersioning(ModelHooks):
    """``dvc add`` a saved artifact in ``repo`` (None: the nearest DVC repository above the file), and
    ``dvc push`` it when a default remote is configured; the pointer file's path lands in ``pipeline.dvc_file_``."""

    def __init__(self, repo: Path | None = None) -> None:
        self.repo = repo

    def on_saved(self, pipeline: Any, path: Path) -> None:
        pipeline.dvc_file_ = version_output(path, self.repo).dvc_file  # a failed `dvc add` or push raises


class MlflowTrainingLogger(ModelHooks):
    """Lightning's MLFlowLogger into an existing run (CV folds prefixed ``cv0-`` ...), never closing it."""

    def __init__(self, run_id: str, tracking_uri: str | None) -> None:
        self.run_id = run_id
        self.tracking_uri = tracking_uri

    def training_logger(self, prefix: str) -> Any:
        from engine.tracking.lightning_logger import JobRunLogger  # lightning loads only when a net trains

        return JobRunLogger(run_id=self.run_id, tracking_uri=self.tracking_uri, prefix=prefix)


def run_hooks(run_id: str | None, tracking_uri: str | None) -> list[ModelHooks]:
    """The hooks a job passes to its pipeline: training losses into its run (none without a run)."""
    return [MlflowTrainingLogger(run_id, tracking_uri)] if run_id else []


def input_example(pipeline: Any, n: int = 2) -> pd.DataFrame | np.ndarray:
    """A zero-valued input of the shape ``pipeline.predict_proba`` takes (for the MLflow signature)."""
    if pipeline.is_sequence:
        return np.zeros((n, pipeline.seq_len_ or 1, len(pipeline.feature_names_)), dtype="float32")
    return pd.DataFrame(np.zeros((n, len(pipeline.feature_names_))), columns=pipeline.feature_names_)


def pip_requirements(pipeline: Any) -> list[str]:
    """Pinned from this environment: MLflow's own inference loads the model in a subprocess (seconds)
    and misses the libraries the family needs."""
    from importlib import metadata

    out = []
    for dist in (*_BASE_REQUIREMENTS, *pipeline.family.requirements):
        try:
            out.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(dist)
    return out


def log_pipeline_model(pipeline: Any, run_id: str, tracking_uri: str | None, *, name: str = "model",
                       example: pd.DataFrame | np.ndarray | None = None) -> str:
    """Log a fitted pipeline into run ``run_id`` of ``tracking_uri`` as an MLflow pyfunc model (predict
    returns class probabilities) with a signature and input example; returns the model URI."""
    if not pipeline.is_fitted:
        raise OperationalError("log_pipeline_model needs a fitted pipeline; call fit() or load(path) first")
    import mlflow.pyfunc
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model, infer_signature
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    example = example if example is not None else input_example(pipeline)
    signature = infer_signature(example, pipeline.predict_proba(example))
    logged = client.create_logged_model(experiment_id=run.info.experiment_id, name=name, source_run_id=run_id,
                                        params={k: str(v) for k, v in run.data.params.items()})
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        with tempfile.TemporaryDirectory(prefix="engine-mlflow-") as tmp:
            artifact = pipeline.save_copy(Path(tmp) / "pipeline.zip")
            local = Path(tmp) / "model"
            description = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id, run_id=run_id,
                                model_id=logged.model_id)
            with warnings.catch_warnings():
                # the wrapper's predict is untyped on purpose: the signature describes the input
                warnings.filterwarnings("ignore", message=".*type hint.*", category=UserWarning)
                mlflow.pyfunc.save_model(str(local), python_model=str(Path(__file__).with_name("pyfunc_model_code.py")),
                                         artifacts={"pipeline": str(artifact)}, signature=signature,
                                         input_example=example, pip_requirements=pip_requirements(pipeline),
                                         mlflow_model=description)
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return f"models:/{logged.model_id}"
