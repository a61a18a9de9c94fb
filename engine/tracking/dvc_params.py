"""params.yaml: the DVC pipeline's parameters, written from the engine's own Hydra composition of conf/.

Why not DVC's Hydra composition (``hydra.enabled`` in ``.dvc/config``): DVC composes conf/ only on
``dvc exp run -S`` and in its own process, where our structured-config schemas and resolvers are not
registered (composition fails on ``/schema/...``; with a plugin that registers them it still fails on
``${hydra:runtime.cwd}``, and it would resolve ``${secret:...}`` into a committed file); and even then the
stage commands would get a composed file but not the group choices behind it, so nothing could hand it
back to ``python -m engine`` without losing the schemas' checks.

So the engine writes the file (``python scripts/dvc_utils.py params [OVERRIDES]``): the composed,
unresolved values of the keys in :data:`PARAM_KEYS`, the group ``choices`` they came from, each stage's
``task`` node and a digest of conf/. A stage runs ``python -m engine task=<task>`` with the keys its
``dvc.yaml`` entry lists turned back into Hydra overrides (:func:`stage_overrides`), so the engine runs with
exactly the values DVC tracks for that stage, checked by the same schemas as any run:

- ``dvc exp run -S labels.horizon=5`` edits a value; ``-S model=lstm`` replaces the model node by an option
  name, which becomes the group override ``model=lstm``; a key the file leaves out (an interpolated one such
  as ``source.path``) is added with ``-S +source.path=...``;
- a stage refuses to run when conf/ changed after params.yaml was written (the digest), instead of
  silently running the old values: rerun ``dvc_utils.py params``, then ``dvc repro`` reruns what changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from engine.errors import OperationalError

PARAMS_FILE = "params.yaml"
# The conf/ the engine composes from (engine/cli.py's CONF_DIR): the package's sibling folder.
ENGINE_CONF = Path(__file__).resolve().parents[2] / "conf"
# What a run computes from. Left out on purpose: where things go (paths, storage, tracking), how to reach
# services (connector, secrets) and the run mode (smoke): none of them changes a stage's result.
PARAM_KEYS = ("symbol", "timeframe", "seed", "source", "cleaner", "features", "labels", "model", "trainer",
              "callbacks", "backtest", "risk")
# dvc.yaml stage -> (task option, overrides fixed for the stage). The pipeline's model goes to its own folder
# so `dvc repro` never deletes models saved by other runs (DVC clears a stage's outputs before it runs);
# train reads the features stage's output instead of recomputing it and writes the stage's metrics file.
STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "prepare": ("prepare", ()),
    "clean": ("clean", ()),
    "features": ("features", ()),
    "train": ("train", ("task.model_name=pipeline", "task.features_from=${paths.features}",
                        "task.metrics_path=metrics/train.json")),
    "evaluate": ("backtest", ("task.model_name=pipeline", "task.span=test", "task.features_from=${paths.features}",
                              "task.metrics_path=metrics/evaluate.json", "task.equity_path=plots/equity.csv")),
}
HEADER = ("# Written by `python scripts/dvc_utils.py params` from the Hydra composition of conf/ (do not edit:\n"
          "# change conf/ and rerun it). `dvc exp run -S model=lstm` / `-S labels.horizon=5` vary a value.\n")
_INTERPOLATION = re.compile(r"^\$\{[^}]*\}$")
_PLAIN = re.compile(r"^[A-Za-z_][\w./-]*$")
_KEYWORDS = {"null", "true", "false", "nan", "inf"}


class ParamsError(OperationalError):
    """params.yaml is missing, stale or lacks what a stage needs; the message says what to run."""


def conf_digest(conf: Path = ENGINE_CONF) -> str:
    """md5 over conf/'s YAML files (names and bytes): changes whenever any option's values do. conf/hydra/
    is left out: how Hydra runs jobs (launchers, run folders) changes no stage's values."""
    digest = hashlib.md5()
    for path in sorted(conf.rglob("*.yaml")):
        if path.relative_to(conf).parts[0] == "hydra":
            continue
        digest.update(path.relative_to(conf).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def compose(overrides: Sequence[str], cwd: Path, timeout: float = 300.0) -> dict[str, Any]:
    """The engine's own composition (schemas, strict keys) as printed by ``python -m engine --cfg all``:
    unresolved, so no secret is ever read and paths stay machine independent."""
    cmd = [sys.executable, "-m", "engine", "--cfg", "all", *overrides]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ParamsError(f"composing conf/ with {' '.join(overrides) or 'no overrides'} failed: {reason}")
    return yaml.safe_load(done.stdout)


def build_params(overrides: Sequence[str], cwd: Path, conf: Path = ENGINE_CONF) -> dict[str, Any]:
    """params.yaml's content for ``overrides`` (Hydra overrides applied to every stage)."""
    params: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    for stage, (task, fixed) in STAGES.items():
        if not (conf / "task" / f"{task}.yaml").is_file():
            continue  # that task does not exist yet: the stage has no params and refuses to run
        composed = compose([f"task={task}", *fixed, *overrides], cwd)
        tasks[stage] = tracked_values(composed["task"])
        if not params:
            choices = composed["hydra"]["runtime"]["choices"]
            params = {key: tracked_values(composed.get(key)) for key in PARAM_KEYS}
            params["choices"] = {key: choices[key] for key in PARAM_KEYS if key in choices}
    return {**params, "task": tasks, "overrides": list(overrides), "conf_digest": conf_digest(conf)}


def tracked_values(node: Any) -> Any:
    """``node`` without its interpolated (``${...}``) and mandatory (``???``) leaves. They are references,
    not values: the engine composes them itself (``${seed}`` follows ``seed``, which is tracked), and DVC's
    ``exp run -S`` resolves the whole file through OmegaConf, where ``${engine_root:}`` cannot resolve."""
    if isinstance(node, Mapping):
        return {k: tracked_values(v) for k, v in node.items() if not _is_reference(v)}
    return node


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and ("${" in value or value == "???")


def write_params(repo: Path, overrides: Sequence[str] = (), conf: Path = ENGINE_CONF) -> Path:
    path = repo / PARAMS_FILE
    body = yaml.safe_dump(build_params(overrides, repo, conf), sort_keys=False, default_flow_style=False)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(HEADER + body, encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_params(repo: Path, conf: Path = ENGINE_CONF) -> dict[str, Any]:
    """params.yaml, refused when missing or older than conf/."""
    path = repo / PARAMS_FILE
    if not path.is_file():
        raise ParamsError(f"no {path}: run `python scripts/dvc_utils.py params`")
    params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if params.get("conf_digest") != conf_digest(conf):
        raise ParamsError(f"conf/ changed since {PARAMS_FILE} was written: run `python scripts/dvc_utils.py "
                          "params`, then `dvc repro` reruns the stages whose values changed")
    return params


def stage_keys(repo: Path, stage: str) -> list[str]:
    """The params.yaml keys that ``dvc.yaml`` lists for ``stage``."""
    spec = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8")) or {}
    entry = (spec.get("stages") or {}).get(stage)
    if not isinstance(entry, Mapping):
        raise ParamsError(f"dvc.yaml has no stage {stage!r}")
    keys: list[str] = []
    for item in entry.get("params") or []:
        if isinstance(item, str):
            keys.append(item)
        elif isinstance(item, Mapping):  # {file: [keys]}: only params.yaml feeds the engine
            keys.extend(k for file, ks in item.items() if file == PARAMS_FILE for k in ks or [])
    return keys


def stage_overrides(params: Mapping[str, Any], stage: str, keys: Iterable[str]) -> list[str]:
    """Hydra overrides that make ``python -m engine`` run ``stage`` with ``params``' values for ``keys``."""
    if stage not in STAGES:
        raise ParamsError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    task_option, fixed = STAGES[stage]
    overrides = [f"task={task_option}", *fixed]
    choices = params.get("choices") or {}
    for key in keys:
        head, _, rest = key.partition(".")
        if head == "task":
            if rest != stage:
                raise ParamsError(f"stage {stage!r} lists {key!r}; a stage reads only task.{stage}")
            node = (params.get("task") or {}).get(stage)
            if node is None:
                raise ParamsError(f"{PARAMS_FILE} has no task.{stage}: task={task_option} is not in conf/task "
                                  "yet, or params.yaml predates it (run `python scripts/dvc_utils.py params`)")
            own = {k: v for k, v in node.items() if k != "name"}
            overrides += _leaves("task", own) if own else []  # `task={}` would not be "no task keys"
            continue
        if head not in params:
            raise ParamsError(f"{PARAMS_FILE} has no {head!r} (dvc.yaml stage {stage!r} lists it)")
        value = params[head]
        if rest:  # a sub-key listed on its own: pass just that
            for part in rest.split("."):
                value = value[part]
            overrides += _leaves(key, value)
        elif head in choices and isinstance(value, str):
            overrides.append(f"{head}={value}")  # `-S model=lstm` swapped the node for an option name
        elif head in choices:
            overrides += [f"{head}={choices[head]}", *_leaves(head, value)]
        else:
            overrides += _leaves(head, value)
    return overrides


def _leaves(prefix: str, value: Any) -> list[str]:
    if isinstance(value, Mapping) and value:
        return [item for k, v in value.items() for item in _leaves(f"{prefix}.{k}", v)]
    if value == "???":
        return []  # mandatory and unset: the engine's own check names it
    return [f"{prefix}={override_value(value)}"]


def override_value(value: Any) -> str:
    """``value`` in Hydra's override grammar, read back as the same value and type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else
                                                         ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        if _INTERPOLATION.match(value):
            return value  # unquoted keeps the interpolated value's type (`${seed}` stays an int)
        if _PLAIN.match(value) and value.lower() not in _KEYWORDS:
            return value  # reads back as this string; quotes only where needed keep commands readable
        escaped = re.sub(r"(\\+)('|$)", lambda m: m.group(1) * 2 + m.group(2), value).replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    raise ParamsError(f"cannot pass {json.dumps(value, default=repr)} as a Hydra override")
