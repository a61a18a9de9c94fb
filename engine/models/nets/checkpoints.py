"""The nets' Lightning callbacks built from :class:`engine.models.settings.CallbackSettings`, and the
checkpoints a run can resume from.

Every checkpoint carries, under ``"engine"``, what the network was built from (model type, params, classes,
feature names, window length) and the scaler it trained with. A resume is checked against it before any
epoch runs, so a checkpoint of another network fails with one line instead of a state-dict traceback.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    RichProgressBar,
)

from engine.errors import ConfigError
from engine.models.settings import CallbackSettings, TrainerSettings

KEY = "trainer.ckpt_path"
META = "engine"  # the checkpoint entry holding the network's recipe
# what must be equal for the saved state to fit the network this fit builds
_MATCHED = ("model_type", "params", "output_dim", "feature_names", "seq_len")


class BestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that keeps the resumed run's record of its best epoch although the resume writes into
    a new run folder: stock Lightning then forgets the best score, and a worse epoch after the resume would
    replace the better one. The earlier files stay where they are (Lightning removes only inside dirpath)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({**state_dict, "dirpath": self.dirpath})


class EngineProgress(RichProgressBar):
    """Lightning's rich bar without ``v_num`` (a logger version, meaningless here)."""

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def show_progress(settings: CallbackSettings, trainer: TrainerSettings) -> bool:
    return trainer.enable_progress_bar and settings.rich_progress_bar.enabled


def build_callbacks(settings: CallbackSettings, trainer: TrainerSettings, *, has_val: bool, steps: int,
                    dirpath: str, has_logger: bool) -> tuple[list[Callback], ModelCheckpoint | None]:
    """The configured callbacks of one fit, and its checkpoint callback (None when none is written).

    A callback watching ``val_*`` is left out when the fit has no validation rows; the learning-rate monitor
    when there is no logger to write to."""
    out: list[Callback] = []
    if show_progress(settings, trainer):
        bar = settings.rich_progress_bar
        out.append(EngineProgress(refresh_rate=bar.refresh_rate or max(1, steps // 50), leave=bar.leave))
    if settings.lr_monitor.enabled and has_logger:
        out.append(LearningRateMonitor(logging_interval=settings.lr_monitor.logging_interval))  # type: ignore[arg-type]
    stop = settings.early_stopping
    patience = stop.patience if trainer.early_stopping_patience is None else trainer.early_stopping_patience
    if stop.enabled and patience > 0 and (has_val or not stop.monitor.startswith("val_")):
        out.append(EarlyStopping(monitor=stop.monitor, mode=stop.mode, patience=patience, min_delta=stop.min_delta))
    checkpoint = _checkpoint(settings, has_val, dirpath)
    if checkpoint is not None:
        out.append(checkpoint)
    return out, checkpoint


def _checkpoint(settings: CallbackSettings, has_val: bool, dirpath: str) -> ModelCheckpoint | None:
    ck = settings.model_checkpoint
    if not ck.enabled:
        return None
    if ck.monitor.startswith("val_") and not has_val:
        # nothing to rank epochs by: only last.ckpt (the fit keeps its last weights)
        if not ck.save_last:
            return None
        return BestCheckpoint(dirpath=dirpath, monitor=None, save_top_k=0, save_last=True,
                              every_n_epochs=ck.every_n_epochs)
    filename = "best" if ck.save_top_k == 1 else "{epoch:03d}-{" + ck.monitor + ":.4f}"
    return BestCheckpoint(dirpath=dirpath, filename=filename, monitor=ck.monitor, mode=ck.mode,
                          save_top_k=ck.save_top_k, save_last=ck.save_last, every_n_epochs=ck.every_n_epochs)


def resolve_last(root: Path, exclude: Path | None = None) -> Path:
    """``trainer.ckpt_path=last``: the newest ``checkpoints/last.ckpt`` of the run folders under ``root``
    (Hydra's outputs/<day>/<time>/, a multirun's outputs/<day>/<time>/<job>/), other than ``exclude``."""
    found = [p for pattern in ("*/checkpoints/last.ckpt", "*/*/checkpoints/last.ckpt", "*/*/*/checkpoints/last.ckpt")
             for p in root.glob(pattern) if exclude is None or not p.is_relative_to(exclude)]
    if not found:
        raise ConfigError(KEY, f"'last' found no checkpoints/last.ckpt under {root}; give the file's path")
    return max(found, key=lambda p: p.stat().st_mtime)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The engine entry of a checkpoint; ConfigError when the file is missing or not an engine checkpoint."""
    import torch

    file = Path(path)
    if not file.is_file():
        raise ConfigError(KEY, f"{file} does not exist; give a checkpoint a run wrote, e.g. "
                               "outputs/<day>/<time>/checkpoints/last.ckpt")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # a torn or foreign file: whatever torch raises, the fix is the same
        raise ConfigError(KEY, f"{file} is not a readable checkpoint ({type(exc).__name__})") from None
    meta = state.get(META) if isinstance(state, dict) else None
    if not isinstance(meta, dict) or "state_dict" not in state:
        raise ConfigError(KEY, f"{file} is not a checkpoint of an engine net (no {META!r} entry)")
    return meta


def check_matches(path: str | Path, meta: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Refuse to resume a network other than the one this fit builds (naming the first difference)."""
    for key in _MATCHED:
        if key in expected and _plain(meta.get(key)) != _plain(expected[key]):
            saved, now = _short(meta.get(key)), _short(expected[key])
            raise ConfigError(KEY, f"{path} was trained with {key}={saved}; this run has {key}={now}. Resume "
                                   "with the same model, params and features, or start afresh without ckpt_path")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _short(value: Any) -> str:
    text = repr(_plain(value))
    return text if len(text) <= 80 else f"{text[:77]}..."
