"""The ``paths`` node: where a run reads and writes. Not a selectable group (no conf/paths/), so it has
no options; the root config holds it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PathsConfig:
    # Everything a run writes is under root: the project directory unless ENGINE_ROOT says otherwise.
    root: str = "${oc.env:ENGINE_ROOT,${hydra:runtime.cwd}}"
    data: str = "${paths.root}/data"
    raw: str = "${paths.data}/raw"
    clean: str = "${paths.data}/clean"
    features: str = "${paths.data}/features"
    models: str = "${paths.root}/models"


SCHEMAS: dict[str, dict[str, type]] = {}
