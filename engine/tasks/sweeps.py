"""Hydra callbacks for sweeps (``hydra.callbacks`` in conf/hparams_search/*.yaml)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("engine")


class PrepareTrackingStore(Callback):
    """Create the MLflow store once in the sweep's parent process before parallel jobs start.

    Two trials launched at the same moment on a fresh SQLite store would both try to create its tables
    and one would fail ("table ... already exists"); after this runs, jobs only add rows.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # The sweep's parent has no job yet; paths may interpolate ${hydra:runtime.cwd}.
        HydraConfig.instance().set_config(config)
        if not config.tracking.enabled:
            return
        uri = str(config.tracking.uri)
        if not uri.startswith("sqlite:///"):
            return  # a tracking server creates its schema once, itself
        from mlflow.tracking import MlflowClient

        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        # the URI itself is not logged: a server URI may carry credentials
        log.info("MLflow store ready for the sweep")
