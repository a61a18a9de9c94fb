"""engine: a config-driven ML trading engine for BTC/USD on MetaTrader 5.

The package root is the public face: the seed project's names are importable from here
(``from engine import SecureConfig, MLPipeline, MT5RestClient``), each one the very object its module
defines. They resolve lazily (PEP 562 module ``__getattr__``) so that ``import engine`` and
``python -m engine --help`` do not pay for pandas, torch, mlflow or Hydra; a name is imported from its
module the first time it is read and cached here afterwards.

Names whose module has not landed yet (see ``_PUBLIC``) raise AttributeError saying so, and are left
out of ``__all__`` and ``dir(engine)`` until their module defines them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it. One line per public name; the README's "API" section maps the seed's
# imports onto these.
_PUBLIC: dict[str, str] = {
    "SecureConfig": "engine.secrets",
    "TimescaleDBClient": "engine.storage.timescaledb",
    "DataCleaner": "engine.data.cleaning",
    "FeatureEngineering": "engine.data.features",
    "MLPipeline": "engine.models.pipeline",
    "MT5RestClient": "engine.mt5",
    "DataIngestor": "engine.ingest",
    "send_order": "engine.trading.execution",
    "RiskManager": "engine.trading.risk",
    "DVCManager": "engine.tracking.dvc",
}

# Run once after a name resolves. MLPipeline's model layer never imports MLflow or DVC; it exposes hooks
# that the tracking layer fills, so the seed's `MLPipeline(...).fit(..., dvc_track=True)` used through the
# package root needs the tracking implementations installed first.
_AFTER_RESOLVE: dict[str, str] = {
    "MLPipeline": "engine.tracking.model_hooks",
}


def _defines(module: str, name: str) -> bool:
    """Whether ``module``'s source defines, imports or lists in ``__all__`` the name ``name`` at top level,
    read without importing it: listing the public names (``__all__``, ``dir``) must stay as cheap as
    ``import engine``. (``__all__`` covers modules that serve their names lazily, as engine.mt5 does.)"""
    import ast

    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # a parent package is missing too
        return False
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    with open(spec.origin, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            assigned = {t.id for t in targets if isinstance(t, ast.Name)}
            names.update(assigned)
            if "__all__" in assigned and isinstance(node.value, ast.List | ast.Tuple):
                names.update(e.value for e in node.value.elts if isinstance(e, ast.Constant))
    return name in names


def _is_missing(exc: ModuleNotFoundError, module: str) -> bool:
    """True when ``module`` itself (or a parent package of it) is absent, as opposed to a dependency
    missing inside it, which must surface as the ImportError it is."""
    return exc.name is not None and (module == exc.name or module.startswith(exc.name + "."))


def _available() -> list[str]:
    return [name for name, module in _PUBLIC.items() if _defines(module, name)]


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return _available()
    module_name = _PUBLIC.get(name)
    if module_name is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module_name):
            raise
        raise AttributeError(f"engine.{name} is not available in this version: its module {module_name} "
                             "has not landed yet") from None
    try:
        value = getattr(module, name)
    except AttributeError:
        raise AttributeError(f"engine.{name} is not available in this version: {module_name} does not "
                             f"define {name} yet") from None
    hooks = _AFTER_RESOLVE.get(name)
    if hooks is not None:
        importlib.import_module(hooks).install()
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_available(), "__all__"})
