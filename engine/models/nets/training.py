"""Training one split of a net: scaler on the training rows, the Lightning Trainer from TrainerSettings, the
callbacks from CallbackSettings (checkpoint, early stopping, progress bar, learning-rate monitor), and seeds
fixed for reproducibility.

The final fit (``prefix == ""``) writes its checkpoints where ``callbacks.model_checkpoint.dirpath`` says
(task=train: the run folder) and resumes from ``spec.resume_from``; CV folds always train afresh into a
temp dir, so a resume or a run folder never mixes with a fold's states.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from engine.models.family import LoggerFactory, ModelSpec, Trained
from engine.models.nets.checkpoints import build_callbacks, check_matches, read_meta, show_progress
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
    """Fit a network on one split (resumed from ``spec.resume_from`` when it is the final fit) with
    ``torch_threads`` applied for the duration only."""
    threads = torch.get_num_threads()
    if spec.trainer.torch_threads > 0:
        torch.set_num_threads(spec.trainer.torch_threads)
    try:
        return _train(spec, x_tr, y_tr, x_va, y_va, epochs, callbacks, logger(prefix), final=prefix == "")
    finally:
        torch.set_num_threads(threads)


def _recipe(spec: ModelSpec, x_tr: np.ndarray) -> dict[str, Any]:
    return {"model_type": spec.model_type, "params": dict(spec.params), "output_dim": spec.output_dim,
            "feature_names": list(spec.feature_names) or [f"f{i}" for i in range(x_tr.shape[-1])],
            "seq_len": int(x_tr.shape[1]) if x_tr.ndim == 3 else None}


def _train(spec: ModelSpec, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None, y_va: np.ndarray | None,
           epochs: int | None, callbacks: list[Any] | None, run_logger: Any, *, final: bool) -> Trained:
    drop_lightning_adverts()
    _log_once()
    ts = spec.trainer
    recipe = _recipe(spec, x_tr)
    resume = spec.resume_from if final else None
    scaler = StandardScaler.fit(x_tr)
    if resume is not None:
        # checked before any epoch runs; the weights go on seeing the inputs scaled as they were trained
        meta = read_meta(resume)
        check_matches(resume, meta, recipe)
        scaler = StandardScaler.from_dict(meta["scaler"])
    lightning.seed_everything(spec.seed, workers=True, verbose=False)
    network = build_network(spec.model_type, x_tr.shape[-1], spec.output_dim, spec.params)
    module = LitClassifier(network, learning_rate=ts.learning_rate, weight_decay=ts.weight_decay,
                           recipe=recipe | {"scaler": scaler.to_dict()})
    generator = torch.Generator().manual_seed(spec.seed)
    steps = max(1, -(-len(x_tr) // ts.batch_size))  # optimiser steps per epoch, however many processes train
    has_val = x_va is not None and y_va is not None
    if "spawn" in str(ts.strategy):
        # ddp_spawn pickles the module and loaders to its workers; the default file-descriptor passing of
        # tensor storage fails in some containers (EINVAL resizing the shared file), named files do not
        torch.multiprocessing.set_sharing_strategy("file_system")
    keep = spec.callbacks.model_checkpoint.dirpath if final else None
    with tempfile.TemporaryDirectory(prefix="engine-fit-") as tmp:
        # Under DDP only global rank 0 writes checkpoints (Lightning's strategy).
        configured, checkpoint = build_callbacks(spec.callbacks, ts, has_val=has_val, steps=steps,
                                                 dirpath=keep or tmp, has_logger=run_logger is not None)
        trainer = lightning.Trainer(
            max_epochs=int(epochs or ts.max_epochs), accelerator=accelerator(spec), devices=ts.devices,
            strategy=ts.strategy, precision=ts.precision, gradient_clip_val=ts.gradient_clip_val,
            deterministic=ts.deterministic, enable_progress_bar=show_progress(spec.callbacks, ts),
            callbacks=[*(callbacks or []), _EpochsRun(), *configured],
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
            # a resumed run writes into its own (new) run folder; BestCheckpoint keeps the earlier record
            warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
            trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
        best = checkpoint.best_model_path if checkpoint is not None else ""
        if best:
            state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
            if keep and Path(best).parent.resolve() != Path(keep).resolve():
                # a resume whose epochs never beat the earlier run's best: keep that best beside the new files
                shutil.copyfile(best, Path(keep) / Path(best).name)
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


def _log_once() -> None:
    """Lightning gives its package logger a stderr handler of its own and also propagates to the root's:
    when the application configured the root (a Hydra job does), each line would print twice."""
    import logging

    if logging.getLogger().handlers:
        package = logging.getLogger("lightning")
        for handler in list(package.handlers):
            if type(handler) is logging.StreamHandler:
                package.removeHandler(handler)
