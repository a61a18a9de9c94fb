"""The one LightningModule every network trains in: cross-entropy on logits, AdamW, epoch-level logging.

The network is injected, so the module knows nothing about families. Training loss is accumulated
on-device and logged once per epoch: per-step ``self.log`` calls cost a noticeable share of a small
CPU step, and the benchmark holds this path to >= 0.9x a plain PyTorch loop.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning
import numpy as np
import torch
from torch import nn
from torch.nn import functional


class LitClassifier(lightning.LightningModule):
    def __init__(self, network: nn.Module, learning_rate: float = 1e-3, weight_decay: float = 0.0, *,
                 recipe: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.network = network
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.recipe = recipe  # what the network was built from; stored in every checkpoint (resume checks it)
        self._train_loss = torch.zeros(())
        self._train_n = 0
        self._val_loss = torch.zeros(())
        self._val_n = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = functional.cross_entropy(self.network(x), y)
        self._train_loss = self._train_loss + loss.detach() * y.shape[0]
        self._train_n += y.shape[0]
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_loss = torch.zeros((), device=self.device)
        self._train_n = 0

    def on_train_epoch_end(self) -> None:
        total, n = self._across_processes(self._train_loss, self._train_n)
        if n:
            self.log("train_loss", total / n, prog_bar=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        loss = functional.cross_entropy(self.network(x), y, reduction="sum")
        self._val_loss = self._val_loss + loss
        self._val_n += y.shape[0]

    def on_validation_epoch_start(self) -> None:
        self._val_loss = torch.zeros((), device=self.device)
        self._val_n = 0

    def on_validation_epoch_end(self) -> None:
        total, n = self._across_processes(self._val_loss, self._val_n)
        if n:
            self.log("val_loss", total / n, prog_bar=True)

    def _across_processes(self, loss_sum: torch.Tensor, count: int) -> tuple[torch.Tensor, float]:
        """Sum and count over every DDP process (unchanged in one process), so each rank logs, stops early
        and checkpoints on the loss of the whole span, not of its shard."""
        if self.trainer.world_size == 1:
            return loss_sum, float(count)
        strategy = self.trainer.strategy
        total = strategy.reduce(loss_sum.detach().clone(), reduce_op="sum")
        n = strategy.reduce(torch.tensor(float(count), device=loss_sum.device), reduce_op="sum")
        return total, float(n)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.recipe is not None:
            checkpoint["engine"] = self.recipe

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)


class TensorBatches(torch.utils.data.Dataset):
    """In-memory (x, y) tensors that hand out whole batches: the DataLoader passes the batch's index
    list to ``__getitems__`` so one fancy-index replaces ``batch_size`` item calls plus a collate."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices)
        return self.x[idx], self.y[idx]


def identity_collate(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


def tensor_loader(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, num_workers: int = 0,
                  generator: Any = None) -> torch.utils.data.DataLoader:
    """A DataLoader that slices whole batches out of in-memory tensors (no per-sample collate)."""
    ds = TensorBatches(torch.from_numpy(np.ascontiguousarray(x, dtype="float32")),
                       torch.from_numpy(np.array(y, dtype="int64")))  # a copy: pandas CoW arrays are read-only
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                                       generator=generator, collate_fn=identity_collate)


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡")


def drop_lightning_adverts() -> None:
    """Lightning logs a product tip on every Trainer; keep job logs to what the run did (idempotent)."""
    target = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdverts) for f in target.filters):
        target.addFilter(_DropAdverts())
