"""Training one split of a net: scaler on the training rows, the Lightning Trainer from TrainerSettings,
early stopping and best-epoch checkpointing on the validation rows, and seeds fixed for reproducibility."""

from __future__ import annotations

import tempfile
import warnings
from typing import Any

import lightning
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar

from engine.models.family import LoggerFactory, ModelSpec, Trained
from engine.models.nets.lit import LitClassifier, drop_lightning_adverts, tensor_loader
from engine.models.nets.registry import build_network
from engine.models.scaling import StandardScaler


def accelerator(spec: ModelSpec) -> str:
    """``device="auto"`` keeps the trainer's accelerator; cpu/cuda/gpu override it."""
    if spec.device == "auto":
        return spec.trainer.accelerator
    return "cpu" if spec.device == "cpu" else "gpu"


def train_network(spec: ModelSpec, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None,
                  y_va: np.ndarray | None, *, epochs: int | None, callbacks: list[Any] | None,
                  logger: LoggerFactory, prefix: str) -> Trained:
    """Fit a fresh network on one split with ``torch_threads`` applied for the duration only."""
    threads = torch.get_num_threads()
    if spec.trainer.torch_threads > 0:
        torch.set_num_threads(spec.trainer.torch_threads)
    try:
        return _train(spec, x_tr, y_tr, x_va, y_va, epochs, callbacks, logger(prefix))
    finally:
        torch.set_num_threads(threads)


def _train(spec: ModelSpec, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None, y_va: np.ndarray | None,
           epochs: int | None, callbacks: list[Any] | None, run_logger: Any) -> Trained:
    drop_lightning_adverts()
    _log_once()
    ts = spec.trainer
    scaler = StandardScaler.fit(x_tr)
    lightning.seed_everything(spec.seed, workers=True, verbose=False)
    network = build_network(spec.model_type, x_tr.shape[-1], spec.output_dim, spec.params)
    module = LitClassifier(network, learning_rate=ts.learning_rate, weight_decay=ts.weight_decay)
    generator = torch.Generator().manual_seed(spec.seed)
    steps = max(1, -(-len(x_tr) // ts.batch_size))  # optimiser steps per epoch, however many processes train
    has_val = x_va is not None and y_va is not None
    cbs: list[Any] = [*(callbacks or []), _EpochsRun()]
    if ts.enable_progress_bar:
        # rich, like the job's phase lines (one progress style); redrawing every step costs a measurable
        # share of a small CPU step
        cbs.append(_Progress(refresh_rate=max(1, steps // 50), leave=False))
    if "spawn" in str(ts.strategy):
        # ddp_spawn pickles the module and loaders to its workers; the default file-descriptor passing of
        # tensor storage fails in some containers (EINVAL resizing the shared file), named files do not
        torch.multiprocessing.set_sharing_strategy("file_system")
    with tempfile.TemporaryDirectory(prefix="engine-fit-") as tmp:
        checkpoint = None
        if has_val:
            # Under DDP only global rank 0 writes it (Lightning's strategy), into this process's temp dir.
            checkpoint = ModelCheckpoint(dirpath=tmp, monitor="val_loss", mode="min", save_top_k=1,
                                         save_weights_only=True, filename="best")
            cbs.append(checkpoint)
            if ts.early_stopping_patience > 0:
                cbs.append(EarlyStopping(monitor="val_loss", mode="min", patience=ts.early_stopping_patience))
        trainer = lightning.Trainer(
            max_epochs=int(epochs or ts.max_epochs), accelerator=accelerator(spec), devices=ts.devices,
            strategy=ts.strategy, precision=ts.precision, gradient_clip_val=ts.gradient_clip_val,
            deterministic=ts.deterministic, enable_progress_bar=ts.enable_progress_bar, callbacks=cbs,
            logger=run_logger if run_logger is not None else False, default_root_dir=tmp,
            enable_checkpointing=checkpoint is not None, enable_model_summary=False, num_sanity_val_steps=0,
            log_every_n_steps=max(1, min(50, steps)))
        # batch_size is the global batch of one optimiser step: DDP's processes each take their share, so
        # trainer=ddp changes the wall time, not the optimisation (a test compares it with one process)
        per_process = max(1, ts.batch_size // trainer.world_size)
        train_loader = tensor_loader(scaler.transform(x_tr), y_tr, per_process, shuffle=True,
                                     num_workers=ts.num_workers, generator=generator)
        val_loader = tensor_loader(scaler.transform(x_va), y_va, max(per_process, 1024), shuffle=False,
                                   num_workers=ts.num_workers) if has_val else None
        with warnings.catch_warnings():
            # num_workers=0 is deliberate: batches are slices of in-memory tensors
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
            warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # lightning vs torch 2.13 pytree API
            # losses are reduced over DDP processes by LitClassifier itself, in the same order on every rank
            warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
            trainer.fit(module, train_loader, val_loader)
        if checkpoint is not None and checkpoint.best_model_path:
            state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
        # callback_metrics are what ddp_spawn's workers hand back to this process (current_epoch is not)
        epochs_run = int(trainer.callback_metrics.get("epochs_run", trainer.current_epoch))
    network = module.network.to("cpu" if accelerator(spec) == "cpu" else module.device)
    network.eval()
    return Trained(network, scaler, epochs_run)


class _EpochsRun(Callback):
    """Epochs trained, as a callback metric (not logged): the one record that returns from DDP workers."""

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # the same on every rank, so no sync_dist: a synced metric is reduced when first read, and rank 0's
        # progress bar reads earlier than the other ranks, which would misorder the collectives (gloo aborts)
        pl_module.log("epochs_run", float(trainer.current_epoch + 1), logger=False)


class _Progress(RichProgressBar):
    """Lightning's rich bar without ``v_num`` (a logger version, meaningless here)."""

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def _log_once() -> None:
    """Lightning gives its package logger a stderr handler of its own and also propagates to the root's:
    when the application configured the root (a Hydra job does), each line would print twice."""
    import logging

    if logging.getLogger().handlers:
        package = logging.getLogger("lightning")
        for handler in list(package.handlers):
            if type(handler) is logging.StreamHandler:
                package.removeHandler(handler)
