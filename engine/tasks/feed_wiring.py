"""Wiring shared by the tasks that read a feed (task=ingest, task=backfill); not a task itself."""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig, OmegaConf

from engine.config.build import build
from engine.mt5.client import MT5RestClient

_SIMULATOR = "engine.mt5.sim.embedded.embedded_client"


def settings_from(node: DictConfig, cls: type) -> Any:
    """A frozen settings object from the task node: its fields only, sequences as tuples."""
    values = OmegaConf.to_container(node, resolve=True)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})


def build_feed(cfg: DictConfig, *, replay: bool) -> MT5RestClient:
    """The connector; with ``replay`` the embedded simulator's clock runs (task.replay_speed/replay_start)."""
    node = cfg.connector
    if replay and node.get("_target_") == _SIMULATOR:
        node = OmegaConf.merge(node, {"speed": node.speed or float(cfg.task.replay_speed),
                                      "start": node.start or cfg.task.replay_start})
    return build(node, MT5RestClient, key="connector")


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM while the block runs (handlers restored after)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
