"""What every task does around its work: build components, open the MLflow run, load bars, show progress."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue
from rich.console import Console

from engine.config import PROJECT_ROOT
from engine.config.build import build
from engine.redact import install_log_redaction, mask_override, redact_mapping
from engine.sources.base import BarSource
from engine.storage.base import Store
from engine.tasks.console import configure_logging, job_label
from engine.tasks.sweeps import trial_tags
from engine.tracking.mlflow import Run, TrackingSettings, git_commit, start_run

_RUN_NOTE = "mlflow.note.content"  # what the MLflow UI shows as a run's description
log = logging.getLogger("engine")
SMOKE_BARS = 20_000  # smoke=true: the last this many base bars, wherever a task loads bars


@contextmanager
def phase(console: Console, name: str) -> Iterator[None]:
    """One line per phase with its duration; a spinner while it runs."""
    start = time.perf_counter()
    with console.status(f"[bold]{name}[/] ..."):
        yield
    console.print(f"[green]done[/] {name} [dim]({time.perf_counter() - start:.1f}s)[/]")


def _leaf(node: DictConfig | ListConfig, key: Any) -> Any:
    if OmegaConf.is_interpolation(node, key):
        raw = node._get_node(key)._value()
        if "secret:" in str(raw):
            return raw  # the reference, never the value
        try:
            value = node[key]
        except Exception:  # an unresolvable interpolation is logged as written
            return raw
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value
    return node[key]


def flatten(cfg: DictConfig | ListConfig, prefix: str = "") -> dict[str, Any]:
    """``{"risk.max_drawdown": 0.2, ...}`` with secrets left as ``${secret:name}`` references."""
    out: dict[str, Any] = {}
    keys = cfg.keys() if isinstance(cfg, DictConfig) else range(len(cfg))
    for key in keys:
        path = f"{prefix}.{key}" if prefix else str(key)
        child = cfg._get_node(key)
        if isinstance(child, DictConfig | ListConfig) and not child._is_none() and not child._is_interpolation():
            if isinstance(child, ListConfig) and all(not isinstance(c, DictConfig | ListConfig) for c in child):
                out[path] = json.dumps([_leaf(child, i) for i in range(len(child))], default=str)
            else:
                out.update(flatten(child, path))
        else:
            out[path] = _leaf(cfg, key)
    return out


def run_name(cfg: DictConfig) -> str:
    if cfg.tracking.get("run_name"):
        return str(cfg.tracking.run_name)
    try:
        # Unresolved: an override may hold ${secret:...}, and run names are shown everywhere.
        overrides = [str(o) for o in OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)]
    except ValueError:  # not inside a Hydra app (compose API in tests)
        overrides = []
    return ",".join(mask_override(o) for o in overrides) if overrides else str(cfg.task.name)


def _hydra_tags() -> dict[str, str]:
    try:
        hc = HydraConfig.get()
        output_dir = hc.runtime.output_dir
    except (ValueError, MissingMandatoryValue):  # compose API: no Hydra app, or no job dir yet
        return {}
    tags = {"hydra_output_dir": str(output_dir)}
    if str(hc.mode) == "RunMode.MULTIRUN":
        # a launcher runs the job in another process, maybe on another machine (joblib, a Ray cluster)
        tags |= {"sweep_dir": str(hc.sweep.dir), "sweep_job": str(hc.job.num), "host": socket.gethostname(),
                 "pid": str(os.getpid())}
    return tags


@contextmanager
def job_run(cfg: DictConfig, tags: Mapping[str, Any] | None = None) -> Iterator[Run]:
    """The MLflow run of this job; params are the flattened config, the config YAML an artifact."""
    install_log_redaction()
    settings = TrackingSettings(
        enabled=bool(cfg.tracking.enabled), uri=str(cfg.tracking.uri), experiment=str(cfg.tracking.experiment),
        artifact_root=cfg.tracking.artifact_root, run_name=run_name(cfg),
        description=cfg.tracking.get("description") or _description(cfg), metric_group=str(cfg.task.name),
    )
    all_tags = {"task": cfg.task.name, "git_commit": git_commit(PROJECT_ROOT), **_hydra_tags(), **trial_tags(cfg),
                _RUN_NOTE: _run_description(cfg), **(tags or {})}
    # secret-looking keys masked by name too: a literal typed in a job another process launched (joblib, Ray)
    # was never remembered as a secret there
    yaml = OmegaConf.to_yaml(OmegaConf.create(redact_mapping(OmegaConf.to_container(cfg, resolve=False)))) \
        if cfg.tracking.log_config else None
    configure_logging(job_label())
    # what the run logs is also kept in the Hydra run folder, so tracking=off loses nothing but the UI
    # the user's choices: a component's class path (``_target_``) is the config's business, not a parameter
    params = {k: v for k, v in flatten(cfg).items() if not k.endswith("._target_")}
    with start_run(settings, params=params, tags=all_tags, config_yaml=yaml, local_dir=run_folder()) as run:
        yield run


def _description(cfg: DictConfig) -> str:
    """The experiment's description: what every run in it has in common (the first run sets it)."""
    return (f"engine task={cfg.task.name} runs. Each run: its description says what it trained on; params are the "
            "config values; metrics grouped val/, test/, train/, clean/, fit/ (docs/training.md); the plots (PNG, "
            "at the artifact root so the compare view lines them up), report/ tables and the config as YAML.")


def _run_description(cfg: DictConfig) -> str:
    """The run's description in the MLflow UI: the model, the data and the config groups chosen."""
    model = f"model {cfg.model.type}, " if cfg.get("model") is not None and cfg.task.name != "prepare" else ""
    name = run_name(cfg)  # the overrides, with secret-looking values masked
    return (f"task={cfg.task.name}: {model}{cfg.symbol} {cfg.timeframe} bars; {_choices()}"
            + (f"; overrides: {name}" if name != str(cfg.task.name) else ""))


def _choices() -> str:
    """The config groups chosen (``source=sample features=minimal ...``), Hydra's own groups left out."""
    try:
        chosen = HydraConfig.get().runtime.choices
    except (ValueError, MissingMandatoryValue):  # compose API: no Hydra app
        return "groups: defaults"
    picks = [f"{group}={option}" for group, option in chosen.items()
             if option is not None and not str(group).startswith(("hydra", "schema"))]
    return "groups: " + " ".join(sorted(picks))


def run_folder() -> str | None:
    """The Hydra run folder of this job (None outside a Hydra job)."""
    try:
        return str(HydraConfig.get().runtime.output_dir)
    except (ValueError, MissingMandatoryValue):
        return None


def build_source(cfg: DictConfig) -> BarSource:
    return build(cfg.source, BarSource, key="source")


def build_store(cfg: DictConfig) -> Store:
    return build(cfg.storage, Store, key="storage")


def load_bars(cfg: DictConfig) -> tuple[pd.DataFrame, BarSource]:
    source = build_source(cfg)
    bars = source.load_bars(str(cfg.symbol), str(cfg.timeframe))
    if cfg.smoke and len(bars) > SMOKE_BARS:
        bars = bars.iloc[-SMOKE_BARS:]
    return bars, source
