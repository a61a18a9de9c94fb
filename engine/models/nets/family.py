"""The neural family strategy: float32 rows (dnn) or windows (lstm, transformer, cnn1d), a train-only
scaler, Lightning training, chunked inference and expected-gradients SHAP. torch loads on first use."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from engine.models import NET_TYPES, SEQUENCE_TYPES
from engine.models.family import LoggerFactory, ModelSpec, Trained
from engine.models.scaling import StandardScaler
from engine.models.settings import TRAINER_GRID_KEYS

_PREDICT_CHUNK = 8192  # rows per forward pass: bounded memory for long spans


class NetFamily:
    dtype = "float32"
    payload = "network.pt"
    takes_callbacks = True
    trainer_keys = TRAINER_GRID_KEYS
    requirements: tuple[str, ...] = ("torch", "lightning")

    def __init__(self, model_type: str, *, sequence: bool) -> None:
        self.model_type = model_type
        self.sequence = sequence

    def fit(self, spec: ModelSpec, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray | None,
            y_va: np.ndarray | None, *, epochs: int | None, callbacks: list[Any] | None, logger: LoggerFactory,
            prefix: str) -> Trained:
        from engine.models.nets.training import train_network

        return train_network(spec, x_tr, y_tr, x_va, y_va, epochs=epochs, callbacks=callbacks, logger=logger,
                             prefix=prefix)

    def predict_proba(self, model: Any, scaler: StandardScaler | None, x: np.ndarray, output_dim: int) -> np.ndarray:
        import torch

        assert scaler is not None  # every fitted or loaded net carries its scaler
        device = next(model.parameters()).device
        chunks = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], _PREDICT_CHUNK):
                xb = torch.from_numpy(scaler.transform(x[i:i + _PREDICT_CHUNK])).to(device)
                chunks.append(torch.softmax(model(xb), dim=-1).double().cpu().numpy())
        return np.concatenate(chunks)

    def dump(self, model: Any) -> bytes:
        import torch

        buf = io.BytesIO()
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buf)
        return buf.getvalue()

    def load(self, spec: ModelSpec, blob: bytes, n_features: int) -> Any:
        import torch

        from engine.models.nets.registry import build_network

        network = build_network(spec.model_type, n_features, spec.output_dim, spec.params)
        network.load_state_dict(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True))
        return network.eval()

    def shap_values(self, model: Any, scaler: StandardScaler | None, x: np.ndarray, sample: np.ndarray, *,
                    seed: int, background_samples: int, nsamples: int) -> np.ndarray:
        from engine.models.explain import gradient_shap

        assert scaler is not None
        return gradient_shap(model, scaler, x, sample, seed=seed, background_samples=background_samples,
                             nsamples=nsamples)


NET_FAMILIES: dict[str, NetFamily] = {t: NetFamily(t, sequence=t in SEQUENCE_TYPES) for t in NET_TYPES}
