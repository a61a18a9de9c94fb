"""Compose and check what a command line would run, before Hydra runs anything.

``python -m engine ARGS`` calls :func:`preflight` first. It composes the config exactly as ``@hydra.main``
will (same conf/, same overrides, same run mode) and validates it (:mod:`engine.config.validate`), so a typo,
an append of an unknown key, a bad value or a Hydra composition error stops the command before a run
directory, a data file or an MLflow run exists. For ``--multirun`` every value of every swept key (command
line and ``hydra.sweeper.params``) is composed and validated before any job starts; values a sweeper draws
at run time (Optuna's ``interval``) are checked by key here and by value in each job. A search
(``hparams_search``) is checked first as a whole (:mod:`engine.config.sweep_checks`): the task, the model
family its keys belong to, the objective.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from engine.config import CONF_DIR, register_configs, register_resolvers
from engine.config.sweep_checks import check_search, explain_failed_search
from engine.config.validate import unknown_key, validate

_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _arguments(argv: Sequence[str]) -> argparse.Namespace | None:
    from hydra._internal.utils import get_args_parser

    try:
        return get_args_parser().parse_args(list(argv))
    except SystemExit:
        return None  # a malformed flag: Hydra prints its own usage error


def preflight(argv: Sequence[str]) -> None:
    """Raise the first problem of the config(s) ``argv`` would run: ConfigError, or Hydra's own error."""
    args = _arguments(argv)
    if args is None or args.help or args.hydra_help or args.info or args.shell_completion \
            or args.experimental_rerun or args.config_path or args.config_dir:
        return  # nothing is run, or the config comes from elsewhere: Hydra handles these alone
    register_configs()
    register_resolvers()
    config_name = args.config_name or "config"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="engine"):
        _Composer(config_name, list(args.overrides), check_values=args.cfg is None).check(args.multirun)


class _Composer:
    def __init__(self, config_name: str, overrides: list[str], *, check_values: bool) -> None:
        self.hydra = GlobalHydra.instance().hydra
        assert self.hydra is not None
        self.config_name = config_name
        self.overrides = overrides
        self.check_values = check_values

    def compose(self, overrides: list[str], mode: RunMode) -> DictConfig:
        return self.hydra.compose_config(self.config_name, overrides, run_mode=mode, from_shell=True,
                                         with_log_configuration=False)

    def check(self, multirun: bool) -> None:
        if not multirun:
            # Like hydra.main, a config may ask for a sweep itself (hparams_search sets hydra.mode); the run
            # composition tells in the common case, Hydra's own probe only when that composition fails.
            try:
                cfg = self.compose(self.overrides, RunMode.RUN)
            except Exception:
                explain_failed_search(self.overrides, self._compose_run)  # the search's own problem, if it is one
                if self.hydra.get_mode(self.config_name, self.overrides) != RunMode.MULTIRUN:
                    raise
            else:
                if cfg.hydra.mode != RunMode.MULTIRUN:
                    self._validate(cfg)
                    return
        try:
            base = self.compose(self.overrides, RunMode.MULTIRUN)
        except Exception:
            explain_failed_search(self.overrides, self._compose_run)  # the search's own problem, if it is one
            raise
        sweeper = base.hydra.sweeper
        groups = set(base.hydra.runtime.choices)
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        parser = OverridesParser.create()
        parsed = parser.parse_overrides(params + self.overrides)
        sweeps = [o for o in parsed if o.is_sweep_override()]
        check_search(base, base.hydra.runtime.choices.get("hparams_search"),
                     [o.get_key_element() for o in sweeps], self._compose_run,
                     optuna=str(sweeper.get("_target_")) != _BASIC_SWEEPER)
        fixed = [o.input_line for o in parsed if not o.is_sweep_override() and o.input_line is not None]
        discrete = [o for o in sweeps if o.is_discrete_sweep()]
        if not discrete:
            self._validate(base)
        for override in discrete:
            others = [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" for o in discrete
                      if o is not override]
            for value in override.sweep_string_iterator():
                job = [*fixed, *others, f"{override.get_key_element()}={value}"]
                self._validate(self.compose(job, RunMode.RUN))
        if str(sweeper.get("_target_")) != _BASIC_SWEEPER:
            for override in sweeps:
                if not override.is_discrete_sweep():
                    _require_key(base, override, groups)

    def _compose_run(self, overrides: list[str]) -> DictConfig:
        return self.compose(overrides, RunMode.RUN)

    def _validate(self, cfg: DictConfig) -> None:
        HydraConfig.instance().set_config(cfg)  # ${hydra:...} interpolations resolve as in the job
        with open_dict(cfg):
            del cfg["hydra"]
        validate(cfg, values=self.check_values)


def _require_key(cfg: DictConfig, override: Override, groups: set[str]) -> None:
    """A key a sweeper samples at run time (``interval``) must exist: the job would fail on it otherwise."""
    key = override.key_or_group
    if override.is_add() or override.is_force_add() or key in groups:
        return
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig) or leaf not in node:
        scope = node if isinstance(node, DictConfig) else cfg
        raise unknown_key(key, [str(k) for k in scope if k != "hydra"])
