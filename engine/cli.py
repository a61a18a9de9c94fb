"""``python -m engine``: compose a run from conf/, validate it, dispatch ``task.name``.

``--help`` is answered from the conf/ folder alone (no Hydra, no heavy imports) so it is instant;
``--hydra-help``, ``--cfg job`` and every other Hydra flag go to Hydra unchanged. Before Hydra runs anything,
the command line's config is composed and checked (:mod:`engine.config.preflight`); a problem is one line on
stderr and exit status 2, before any run directory, data file or MLflow run exists.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from engine.config import CONF_DIR

_HIDDEN_GROUPS = {"hydra", "schema"}


def _groups(conf: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(conf.rglob("*.yaml")):
        rel = path.relative_to(conf)
        if len(rel.parts) < 2:
            continue
        group = "/".join(rel.parts[:-1])
        found.setdefault(group, []).append(path.stem)
    return found


def help_text(conf: Path = CONF_DIR) -> str:
    groups = _groups(conf)
    width = max((len(g) for g in groups), default=10) + 2
    lines = [
        "engine: config-driven ML trading for BTC/USD on MetaTrader 5",
        "",
        "usage: python -m engine [group=option ...] [key=value ...] [+experiment=NAME] [--multirun]",
        "",
        "Config groups (pick one option each; defaults in conf/config.yaml):",
    ]
    for group, options in groups.items():
        if group.split("/")[0] in _HIDDEN_GROUPS and group != "hydra/launcher":
            continue
        lines.append(f"  {group:<{width}}{', '.join(options)}")
    lines += [
        "",
        "Examples:",
        "  python -m engine task=prepare                   # bundled sample -> data/raw (Parquet)",
        "  python -m engine +experiment=lstm_5m            # a bundled experiment, end to end",
        "  python -m engine --multirun task=train model=xgboost,random_forest",
        "  python -m engine --multirun +experiment=xgb_1m hparams_search=xgb_optuna   # Optuna sweep",
        "  python -m engine --cfg job                      # print the composed config and exit",
        "",
        "Hydra's own flags: --hydra-help. Runs are tracked in MLflow: mlflow ui --backend-store-uri "
        "sqlite:///mlflow.db",
    ]
    return "\n".join(lines)


def _preflight(args: list[str]) -> None:
    """Compose and validate what ``args`` would run; on a problem print one line and exit 2 before Hydra
    creates anything. ``HYDRA_FULL_ERROR=1`` lets the full error through instead."""
    from engine.config.messages import one_line
    from engine.config.preflight import preflight

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        preflight(args)
        return
    try:
        preflight(args)
    except Exception as exc:  # any config error, Hydra's and OmegaConf's included, becomes one line
        print(one_line(exc, args), file=sys.stderr)
        sys.exit(2)


def _app(args: list[str]) -> None:
    import hydra
    from omegaconf import DictConfig

    from engine.config import register_configs, register_resolvers

    register_configs()
    register_resolvers()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def task_main(cfg: DictConfig) -> float | None:
        from engine.config.messages import one_line
        from engine.config.validate import validate
        from engine.errors import ConfigError, EngineError

        try:
            # Again in the job: a sweeper (Optuna) chooses some values only when it starts the job.
            validate(cfg)
        except ConfigError as exc:
            print(one_line(exc, args), file=sys.stderr)
            sys.exit(2)
        task = importlib.import_module(f"engine.tasks.{cfg.task.name}")
        try:
            metrics = task.run(cfg)
        except EngineError as exc:
            # Known failures get one line that names the problem and the fix, not a traceback.
            from engine.redact import redact_text

            print(f"engine: {type(exc).__name__}: {redact_text(str(exc))}", file=sys.stderr)
            sys.exit(2 if isinstance(exc, ConfigError) else 1)  # a setting to fix, as before the run
        objective = cfg.task.get("objective")
        return None if objective is None or metrics is None else metrics.get(objective)

    task_main()


def _each_value(args: list[str]) -> list[str]:
    """``args`` plus one ``key=value`` per value of each sweep (``storage.password=a,b``): Hydra prints each job's
    own value, which the typed list as a whole would not mask."""
    out = list(args)
    if not any("," in a or "(" in a for a in args):
        return out
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in (a for a in args if "=" in a and not a.startswith("-")):
        try:
            (override,) = parser.parse_overrides([arg])
            if override.is_sweep_override():
                key = override.get_key_element()
                out += [f"{key}={value}" for value in override.sweep_string_iterator()]
        except Exception:  # malformed or continuous (interval) sweeps: Hydra itself reports them
            continue
    return out


def main() -> None:
    args = sys.argv[1:]
    if any(a in ("-v", "--verbose") for a in args):
        # engine's own flag (Hydra has none): library INFO lines on the terminal again, engine's at DEBUG
        args = [a for a in args if a not in ("-v", "--verbose")] + ["hydra.verbose=engine"]
        sys.argv[1:] = args
    if any(a in ("-h", "--help") for a in args):
        print(help_text())
        return
    from engine.redact import protect_overrides

    protect_overrides(_each_value(args))  # a password typed as an override is masked in every line from here on
    _preflight(args)
    _app(args)
