"""One MLflow run per engine job.

Kept free of Hydra: the task layer hands over plain params, tags and the composed config's YAML.
The run is also made the fluent "active run" so library integrations (Lightning's MLFlowLogger,
``mlflow.<flavor>.log_model``) write into the same run. Everything logged goes through redaction.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.redact import redact_mapping, redact_text

log = logging.getLogger(__name__)

_NOTE = "mlflow.note.content"  # what the MLflow UI shows as an experiment's description
_MAX_PARAM_LEN = 6000  # MLflow 3 limit on a param value; longer values are cut with a marker
# Flat engine metric names whose first word is a group MLflow should chart together (``val_sharpe`` ->
# ``val/sharpe``): the data spans, the cleaning counts, the fit's own figures, walk-forward folds.
_GROUPS = ("train", "val", "test", "clean", "fit", "fold")
_DATA = ("n_train", "n_val", "n_test", "n_features")  # sample counts: ``data/n_train``


def metric_key(name: str, group: str | None = None) -> str:
    """The MLflow name of the flat engine metric ``name``.

    engine keeps flat names everywhere in Python (``metrics.json``, task return values, ``task.objective``);
    MLflow groups charts by the part before ``/``, so runs log ``val/sharpe``, ``test/equity_curve``,
    ``train/loss``, ``clean/dropped_rows``, ``fit/seconds``, ``data/n_train``; a name with no group word gets
    ``group`` (the task: ``backtest/sharpe``, ``live/equity``, ``prepare/rows``), or stays as it is without one.
    A name that has a ``/`` already is kept."""
    if "/" in name:
        return name
    head, sep, rest = name.partition("_")
    if sep and rest and head in _GROUPS:
        return f"{head}/{rest}"
    if name in _DATA:
        return f"data/{name}"
    return f"{group}/{name}" if group else name


def flat_name(key: str) -> str:
    """The flat engine name of an MLflow metric name (:func:`metric_key` undone): ``val/sharpe`` ->
    ``val_sharpe``, ``data/n_train`` -> ``n_train``, ``backtest/sharpe`` -> ``sharpe``."""
    head, sep, rest = key.partition("/")
    if not sep:
        return key
    return f"{head}_{rest}" if head in _GROUPS else rest


def flat_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's MLflow metrics (``run.data.metrics``) under their flat engine names."""
    return {flat_name(k): v for k, v in metrics.items()}


@dataclass(frozen=True)
class TrackingSettings:
    enabled: bool
    uri: str
    experiment: str
    artifact_root: str | None = None
    run_name: str | None = None
    # shown on the experiment's page in the MLflow UI; set when the experiment is created or has none
    description: str | None = None
    metric_group: str | None = None  # MLflow group of metric names with none of their own (metric_key)


class Run:
    """Logging surface of one run. Everything logged also lands in ``local_dir`` when one is given (the Hydra
    run folder), with or without MLflow: metrics in ``metrics.json``, tags in ``tags.json``, artifacts at their
    artifact path; so ``tracking=off`` loses nothing but the UI. Without either, every call records nothing."""

    def __init__(self, client: Any | None, run_id: str | None, tracking_uri: str | None,
                 local_dir: str | Path | None = None, metric_group: str | None = None) -> None:
        self._client = client
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.local = LocalRecord(Path(local_dir)) if local_dir else None
        self.metric_group = metric_group

    @property
    def active(self) -> bool:
        """An MLflow run is open (tracking enabled)."""
        return self._client is not None

    @property
    def records(self) -> bool:
        """Something keeps what is logged: MLflow, the run folder, or both."""
        return self._client is not None or self.local is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self._client:
            return
        from mlflow.entities import Param

        clean = redact_mapping(params)
        items = [Param(k, _param_text(v)) for k, v in sorted(clean.items())]
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            self._client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self.local is not None:
            self.local.metrics(metrics, step)
        if not self._client:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_key(k, self.metric_group), float(v), now, step or 0)
                 for k, v in metrics.items() if v is not None]
        for i in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def log_series(self, key: str, values: Sequence[float], steps: Sequence[int]) -> None:
        """One metric at many steps in one call (a curve: the compare view overlays runs' curves)."""
        if self.local is not None:
            self.local.series(key, values, steps)
        if not self._client:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        name = metric_key(key, self.metric_group)
        items = [Metric(name, float(v), now, int(s)) for v, s in zip(values, steps, strict=True)]
        for i in range(0, len(items), 1000):
            self._client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def log_dataset(self, name: str, digest: str, source: str, profile: Mapping[str, Any],
                    features: Sequence[str], context: str = "training") -> None:
        """The data the run read, as an MLflow dataset (the UI's Datasets column): its source, content digest,
        span and feature names; in the run folder as ``dataset.json``."""
        body = {"name": name, "digest": digest, "source": source, "profile": dict(profile),
                "features": list(features), "context": context}
        if self.local is not None:
            self.local.path("dataset.json").write_text(json.dumps(body, indent=2, default=str) + "\n",
                                                       encoding="utf-8")
        if not self._client:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        schema = {"mlflow_colspec": [{"name": f, "type": "double"} for f in features]}
        dataset = Dataset(name=name, digest=digest[:36], source_type="engine", source=json.dumps({"uri": source}),
                          schema=json.dumps(schema), profile=json.dumps(dict(profile), default=str))
        from mlflow.exceptions import MlflowException

        inputs = [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])]
        try:
            self._client.log_inputs(self.run_id, datasets=inputs)
        except MlflowException:
            # Parallel jobs of one sweep log the same dataset at once: the store's unique row may be inserted
            # by the other job between MLflow's lookup and insert. The row exists now; link it once more, and
            # never fail a run over its dataset record.
            try:
                self._client.log_inputs(self.run_id, datasets=inputs)
            except MlflowException as exc:
                log.warning("could not record the training dataset in MLflow: %s", exc)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.local is not None:
            self.local.tags(redact_mapping(tags))
        if not self._client:
            return
        for key, value in redact_mapping(tags).items():
            self._client.set_tag(self.run_id, key, str(value))

    def log_text(self, text: str, artifact_file: str) -> None:
        if self.local is not None:
            self.local.path(artifact_file).write_text(redact_text(text), encoding="utf-8")
        if self._client:
            self._client.log_text(self.run_id, redact_text(text), artifact_file)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        self.log_text(json.dumps(data, indent=2, default=str, sort_keys=True), artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.local is not None and Path(path).is_file():
            target = self.local.path(f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name)
            if target.resolve() != Path(path).resolve():
                shutil.copyfile(path, target)
        if self._client:
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        if self.local is not None:
            figure.savefig(self.local.path(artifact_file), dpi=110)
        if self._client:
            self._client.log_figure(self.run_id, figure, artifact_file)



class LocalRecord:
    """What a run logs, kept in a folder: the last value of every metric (``metrics.json``; stepped metrics
    also as ``metrics/<name>.csv`` rows of step,value), the tags (``tags.json``) and each artifact."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._metrics: dict[str, float | None] = {}
        self._tags: dict[str, str] = {}

    def path(self, artifact_file: str) -> Path:
        target = (self.root / artifact_file).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"artifact path {artifact_file!r} leaves the run folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def metrics(self, metrics: Mapping[str, float], step: int | None) -> None:
        for key, value in metrics.items():
            if value is None:
                continue
            number = float(value)
            self._metrics[key] = number if math.isfinite(number) else None  # JSON has no NaN
            if step is not None:
                rows = self.path(f"metrics/{key}.csv")
                new = not rows.exists()
                with rows.open("a", encoding="utf-8") as out:
                    out.write(("step,value\n" if new else "") + f"{step},{number!r}\n")
        self._write("metrics.json", self._metrics)

    def series(self, key: str, values: Sequence[float], steps: Sequence[int]) -> None:
        rows = "".join(f"{int(step)},{float(v)!r}\n" for v, step in zip(values, steps, strict=True))
        self.path(f"metrics/{key}.csv").write_text("step,value\n" + rows, encoding="utf-8")

    def tags(self, tags: Mapping[str, Any]) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})
        self._write("tags.json", self._tags)

    def run_info(self, run_id: str | None, experiment_id: str | None, status: str) -> None:
        """``run.json``: which MLflow run (none with tracking off) and how it ended, for a sweep's summary."""
        self._write("run.json", {"run_id": run_id, "experiment_id": experiment_id, "status": status})

    def _write(self, name: str, body: Mapping[str, Any]) -> None:
        # replaced atomically: a reader (dvc, a user's script) never sees half a file. The temp name is the
        # process's own: two jobs started in the same second share Hydra's default run folder
        target = self.path(name)
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(sorted(body.items())), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_PARAM_LEN else text[: _MAX_PARAM_LEN - 12] + "...[truncated]"


def git_commit(root: Path) -> str:
    """HEAD's hash with ``-dirty`` when the work tree has changes; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def experiment_id(client: Any, settings: TrackingSettings) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(settings.experiment)
    if exp is not None:
        if settings.description and not exp.tags.get(_NOTE):
            try:
                client.set_experiment_tag(exp.experiment_id, _NOTE, redact_text(settings.description))
            except MlflowException:
                # parallel jobs describe a new experiment at the same moment and a database store refuses the
                # second insert of the tag (the first job's description stands): not a reason to fail a job
                log.info("experiment %r: description set by another job", settings.experiment)
        return exp.experiment_id
    location = None
    if settings.artifact_root:
        location = Path(settings.artifact_root, settings.experiment).resolve().as_uri()
    tags = {_NOTE: redact_text(settings.description)} if settings.description else None
    try:
        return client.create_experiment(settings.experiment, artifact_location=location, tags=tags)
    except MlflowException:
        # Parallel multirun jobs race to create the experiment; the loser uses the winner's.
        exp = client.get_experiment_by_name(settings.experiment)
        if exp is None:
            raise
        return exp.experiment_id


@contextmanager
def start_run(settings: TrackingSettings, *, params: Mapping[str, Any], tags: Mapping[str, Any],
              config_yaml: str | None = None, local_dir: str | Path | None = None) -> Iterator[Run]:
    """Open a run, log params/tags/config, yield it, and close it FINISHED or FAILED; with ``local_dir``, what
    the run logs is also kept there (tracking on or off)."""
    if not settings.enabled:
        run = Run(None, None, None, local_dir, settings.metric_group)
        run.set_tags(tags)
        _record_status(run, None, "RUNNING")
        status = "FAILED"
        try:
            yield run
            status = "FINISHED"
        finally:
            _record_status(run, None, status)
        return
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.uri)
    exp_id = experiment_id(client, settings)
    name = redact_text(settings.run_name) if settings.run_name else None
    created = client.create_run(exp_id, run_name=name)
    run = Run(client, created.info.run_id, settings.uri, local_dir, settings.metric_group)
    _record_status(run, exp_id, "RUNNING")
    log.info("MLflow run %s in experiment %r (%s)", run.run_id, settings.experiment, settings.uri)
    previous_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(settings.uri)
    status = "FAILED"
    try:
        run.set_tags(tags)
        run.log_params(params)
        if config_yaml is not None:
            run.log_text(config_yaml, "config/config.yaml")
        with mlflow.start_run(run_id=run.run_id):
            yield run
        status = "FINISHED"
    except BaseException as exc:
        run.set_tags({"error": redact_text(f"{type(exc).__name__}: {exc}")[:5000]})
        raise
    finally:
        client.set_terminated(run.run_id, status)
        _record_status(run, exp_id, status)
        mlflow.set_tracking_uri(previous_uri)


def _record_status(run: Run, experiment_id: str | None, status: str) -> None:
    if run.local is not None:
        run.local.run_info(run.run_id, experiment_id, status)
