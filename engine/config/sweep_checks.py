"""Checks of a sweep's config before any job starts, each refusing with one line that names the fix.

:mod:`engine.config.preflight` calls :func:`check_search` on the composed sweep (and
:func:`explain_failed_search` when the sweep does not even compose, e.g. ``hparams_search=xgb_optuna`` on
the default ``task=prepare``, whose schema has no ``task.objective``):

- a search (``hparams_search=...`` or engine's Optuna sweeper) needs ``task=train`` and a model that has the
  ``model.*`` keys it searches; the fix names the experiment that brings the right model family;
- every searched key exists in the config (a typo is refused with the nearest names);
- ``task.objective`` is a metric task=train returns, and not a test-span one (:func:`objective_problem`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from engine.config import CONF_DIR
from engine.config.validate import unknown_key
from engine.errors import ConfigError

Compose = Callable[[list[str]], DictConfig]  # overrides -> a composed job config
_OPTUNA = "engine_optuna"


def objective_problem(name: str | None) -> str | None:
    """Why ``task.objective=name`` cannot be a sweep's objective (None: it can)."""
    from engine.metrics import METRIC_NAMES as CLASSIFICATION
    from engine.trading.performance import METRIC_NAMES as TRADING

    if name is None:
        return None
    if name.startswith("test_"):
        # A sweep that maximises a test metric picks hyperparameters on the held-out span.
        return f"{name!r} would select on the held-out test span; optimise val_{name.removeprefix('test_')} instead"
    known = {f"{span}_{m}" for span in ("val", "test") for m in (*CLASSIFICATION, *TRADING)}
    known |= {"fit_seconds", "n_train", "n_val", "n_test", "n_features"}
    if name in known or name.startswith(("fit_", "clean_")):
        return None
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return (f"{name!r} is not a metric task=train returns; {hint}use val_<m> with m one of "
            f"{', '.join((*CLASSIFICATION, *TRADING))}")


def _has(cfg: DictConfig, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node


def _model_options() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def _experiments_by_model() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((CONF_DIR / "experiment").glob("*.yaml")):
        body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in body.get("defaults") or []:
            if isinstance(item, dict) and "override /model" in item:
                out.setdefault(str(item["override /model"]), []).append(path.stem)
    return out


def _families(model_keys: Sequence[str], choice: str, compose: Compose) -> list[str]:
    """The model options that have every searched ``model.*`` key, the one named like the search first."""
    found = [opt for opt in _model_options()
             if all(_has(compose(["task=train", f"model={opt}"]), k) for k in model_keys)]
    stem = choice.split("_")[0]
    return sorted(found, key=lambda opt: -difflib.SequenceMatcher(None, stem, opt).ratio())


def _fix(choice: str, families: Sequence[str]) -> str:
    by_model = _experiments_by_model()
    for family in families:
        if by_model.get(family):
            return f"try +experiment={by_model[family][0]} hparams_search={choice}"
    if families:
        return f"try task=train model={families[0]} hparams_search={choice}"
    return "pick a task=train experiment whose model has the searched keys"


def check_search(cfg: DictConfig, choice: str | None, keys: Iterable[str], compose: Compose, *,
                 optuna: bool) -> None:
    """Refuse a search ``cfg`` cannot run (see the module doc); ``keys`` are the searched keys."""
    keys = [k.lstrip("+~") for k in keys]
    task = str(OmegaConf.select(cfg, "task.name", default=""))
    if choice is None and not optuna:
        # a plain --multirun: its values are composed and validated one by one; the objective, once
        if task == "train":
            _check_objective(cfg)
        return
    name = f"hparams_search={choice}" if choice else "hydra/sweeper=engine_optuna"
    model_keys = [k for k in keys if k.startswith("model.")]
    missing = [k for k in model_keys if not _has(cfg, k)] if cfg.get("model") is not None else model_keys
    if task != "train" or missing:
        families = _families(model_keys, choice or "", compose) if model_keys else []
        fix = _fix(choice or "", families) if choice else "add +experiment=NAME with a task=train experiment"
        wanted = f"model={' or '.join(families[:2])}" if families else "a model"
        if task != "train":
            raise ConfigError(name, f"needs task=train with {wanted} (task={task or '?'} is selected); {fix}")
        model = OmegaConf.select(cfg, "model.type", default="none")
        if families:  # else no model has these keys: a typo, refused below with the nearest names
            raise ConfigError(name, f"searches {', '.join(missing)}, which model={model} does not have (a "
                                    f"search for {wanted}); {fix}")
    groups = set(OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {})
    for key in keys:
        if key.startswith("hydra.") or key in groups or _has(cfg, key):
            continue
        parent = key.rpartition(".")[0]
        scope = OmegaConf.select(cfg, parent) if parent else cfg
        raise unknown_key(key, [str(k) for k in (scope if isinstance(scope, DictConfig) else cfg) if k != "hydra"])
    _check_objective(cfg)


def _check_objective(cfg: DictConfig) -> None:
    problem = objective_problem(OmegaConf.select(cfg, "task.objective", default=None))
    if problem:
        raise ConfigError("task.objective", problem)


def explain_failed_search(overrides: Sequence[str], compose: Compose) -> None:
    """When a command line with ``hparams_search=X`` does not compose, raise the search's own problem (the
    wrong task or model for X) instead of the composition error it caused; return when that is not it."""
    choice = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == "hparams_search"
                   and "=" in o), None)
    if not choice or not (CONF_DIR / "hparams_search" / f"{choice}.yaml").is_file():
        return
    body: dict[str, Any] = yaml.safe_load((CONF_DIR / "hparams_search" / f"{choice}.yaml").read_text()) or {}
    keys = list(((body.get("hydra") or {}).get("sweeper") or {}).get("params") or {})
    rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+") != "hparams_search"]
    try:
        cfg = compose(rest)
    except Exception:
        return  # the rest fails too: that error is the one to show
    check_search(cfg, choice, keys, compose, optuna=True)
