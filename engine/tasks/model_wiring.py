"""What the model tasks (train, explain) share; not a task itself.

The config becomes the typed dataset recipe here (:class:`engine.data.dataset.DatasetBuilder`), before any
bar is loaded, so train and explain always rebuild the same samples and splits from the same config.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from engine import timeframes
from engine.config.build import build
from engine.data.cleaning import DataCleaner
from engine.data.dataset import Dataset, DatasetBuilder, DatasetSettings
from engine.data.features import FeatureEngineering
from engine.data.labels import LabelSpec
from engine.errors import ConfigError
from engine.models import SEQUENCE_TYPES
from engine.tasks.common import load_bars, phase

MODEL_FILE = "pipeline.zip"
RUNS_DIR = "runs"  # <model_dir>/runs/<run id>/pipeline.zip: one folder per run, never reused


def dataset_builder(cfg: DictConfig) -> DatasetBuilder:
    """The dataset recipe of this config; a recipe that cannot work fails here, before data is read."""
    for group in ("features", "labels"):
        if cfg.get(group) is None:
            raise ConfigError(group, f"task={cfg.task.name} needs a {group} group; pick one, e.g. {group}=standard")
    model = cfg.get("model")
    seq_len = int(model.seq_len) if model is not None and model.type in SEQUENCE_TYPES else None
    settings = DatasetSettings(bar_size=str(cfg.task.bar_size) if cfg.task.bar_size else None,
                               val_frac=float(cfg.task.val_frac), test_frac=float(cfg.task.test_frac),
                               embargo=None if cfg.task.embargo is None else int(cfg.task.embargo), seq_len=seq_len)
    cleaner = build(cfg.cleaner, DataCleaner, key="cleaner") if cfg.get("cleaner") is not None else None
    return DatasetBuilder(timeframe=timeframes.parse(cfg.timeframe), settings=settings, cleaner=cleaner,
                          features=build(cfg.features, FeatureEngineering, key="features"),
                          labels=build(cfg.labels, LabelSpec, key="labels"))


def build_dataset(cfg: DictConfig, console: Console, builder: DatasetBuilder | None = None) -> Dataset:
    """Load the configured bars and build the dataset (``builder``: default this config's), one progress line
    per phase; with ``task.features_from``, the same dataset from the bars and features stored there."""
    builder = builder or dataset_builder(cfg)
    if cfg.task.get("features_from"):
        from engine.tasks.stage_data import stored_dataset, under_root

        folder = under_root(str(cfg.paths.root), str(cfg.task.features_from))
        with phase(console, f"read stored bars + features from {folder}"):
            data = stored_dataset(folder, str(cfg.symbol), builder)
        console.print(data.describe())
        return data
    with phase(console, "load bars"):
        bars, source = load_bars(cfg)
    data = builder.build(bars, source=source.describe(), progress=lambda name: phase(console, name))
    console.print(data.describe())
    return data


def model_dir(cfg: DictConfig) -> Path:
    """${paths.models}/<model_name>/: its ``pipeline.zip`` is the latest model a single run published, the
    stable path task=explain, backtest and live read by default (and dvc.yaml's train stage outputs)."""
    return Path(str(cfg.paths.models)) / str(cfg.task.model_name)


def run_model_path(cfg: DictConfig, run_id: str | None) -> Path:
    """Where this run's own model is saved: ``<model_dir>/runs/<run id>/pipeline.zip``, so no later run or sweep
    trial ever overwrites the file a run's ``model_path`` tag names. Without MLflow (no run id) the folder is
    named by the UTC time and a random suffix, unique all the same."""
    key = run_id or f"local-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    return model_dir(cfg) / RUNS_DIR / key / MODEL_FILE


def latest_model_path(cfg: DictConfig) -> Path | None:
    """The stable path a successful single run publishes its model to; None in a multirun, whose trials are
    candidates (a sweep's jobs finish in any order, so "the last one" would be an arbitrary trial)."""
    try:
        if str(HydraConfig.get().mode) == "RunMode.MULTIRUN":
            return None
    except ValueError:
        pass
    return model_dir(cfg) / MODEL_FILE


CHECKPOINTS_DIR = "checkpoints"  # <run folder>/checkpoints/{best,last}.ckpt: what trainer.ckpt_path resumes


def callback_settings(cfg: DictConfig) -> Any:
    """The ``callbacks`` group as CallbackSettings; checkpoints go to ``<run folder>/checkpoints`` unless
    ``callbacks.model_checkpoint.dirpath`` says otherwise (relative: to paths.root)."""
    from engine.models.settings import CallbackSettings
    from engine.tasks.common import run_folder
    from engine.tasks.stage_data import under_root

    node = OmegaConf.to_container(cfg.callbacks, resolve=True) if cfg.get("callbacks") is not None else {}
    assert isinstance(node, dict)
    checkpoint = dict(node.get("model_checkpoint") or {})
    folder = run_folder()
    if checkpoint.get("dirpath"):
        checkpoint["dirpath"] = str(under_root(str(cfg.paths.root), str(checkpoint["dirpath"])))
    elif folder is not None:
        checkpoint["dirpath"] = str(Path(folder) / CHECKPOINTS_DIR)
    return CallbackSettings.from_mapping({**node, "model_checkpoint": checkpoint})


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """``trainer.ckpt_path`` as a checked file, or None. Before any data is read it must exist, be a net's
    checkpoint and hold this model type and params (the features are compared once they are built); ``last``
    is the newest ``checkpoints/last.ckpt`` of earlier runs in the Hydra outputs folder."""
    from engine.models import NET_TYPES
    from engine.tasks.common import run_folder
    from engine.tasks.stage_data import under_root

    path = cfg.trainer.get("ckpt_path") if cfg.get("trainer") is not None else None
    if not path:
        return None
    if str(cfg.model.type) not in NET_TYPES:
        raise ConfigError("trainer.ckpt_path", f"resuming from a checkpoint applies to nets; {cfg.model.type} "
                                               "trains from scratch (drop trainer.ckpt_path)")
    folder = run_folder()
    if str(path) == "last":
        from engine.models.nets.checkpoints import resolve_last

        outputs = Path(folder).parents[1] if folder else Path(str(cfg.paths.root)) / "outputs"
        file = resolve_last(outputs, exclude=Path(folder) if folder else None)
    else:
        file = under_root(str(cfg.paths.root), str(path))
    if not file.is_file():  # before loading torch and lightning for the file
        raise ConfigError("trainer.ckpt_path", f"{file} does not exist; give a checkpoint a run wrote, e.g. "
                                               "outputs/<day>/<time>/checkpoints/last.ckpt")
    from engine.models.nets.checkpoints import check_matches, read_meta

    params = OmegaConf.to_container(cfg.model.params, resolve=True)
    check_matches(file, read_meta(file), {"model_type": str(cfg.model.type), "params": params})
    return str(file)


def checkpoint_note(settings: Any, resumed: str | None) -> str | None:
    """The console line naming where this run's checkpoints are and how to resume from them (None: none)."""
    folder = settings.model_checkpoint.dirpath
    last = Path(folder) / "last.ckpt" if folder else None
    if last is None or not last.is_file():
        return f"resumed from {resumed}" if resumed else None
    head = f"resumed from {resumed}; " if resumed else ""
    return f"{head}checkpoints -> {folder} (continue with trainer.ckpt_path={last})"
