"""One public face: the seed's names import from ``engine`` itself, lazily, as the very objects their
modules define (README, section "API")."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys

import pytest

import engine

# The seed's names and where each one lives in this code base (README's API table says the same).
SEED = {
    "SecureConfig": "engine.secrets",
    "TimescaleDBClient": "engine.storage.timescaledb",
    "DataCleaner": "engine.data.cleaning",
    "FeatureEngineering": "engine.data.features",
    "MLPipeline": "engine.models.pipeline",
    "MT5RestClient": "engine.mt5",
}
# Names that join the public face as their modules land in later issues.
LATER = {
    "DataIngestor": "engine.ingest",
    "send_order": "engine.trading.execution",
    "RiskManager": "engine.trading.risk",
    "DVCManager": "engine.tracking.dvc",
}
HEAVY = ("pandas", "numpy", "torch", "lightning", "mlflow", "hydra", "omegaconf", "sklearn")


def test_import_engine_loads_no_heavy_library() -> None:
    """`python -m engine --help` stays instant only if the package root imports nothing heavy, even when
    its public names are listed."""
    code = ("import sys, engine; names = engine.__all__; listing = dir(engine); "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(("name", "module"), sorted(SEED.items()))
def test_seed_names_are_the_objects_their_modules_define(name: str, module: str) -> None:
    ns: dict[str, object] = {}
    exec(f"from engine import {name}", ns)
    assert ns[name] is getattr(importlib.import_module(module), name)
    assert name in engine.__all__ and name in dir(engine)


@pytest.mark.parametrize(("name", "module"), sorted(LATER.items()))
def test_later_names_resolve_once_their_module_lands(name: str, module: str) -> None:
    landed = importlib.util.find_spec(module) is not None and hasattr(importlib.import_module(module), name)
    if landed:
        assert getattr(engine, name) is getattr(importlib.import_module(module), name)
        assert name in engine.__all__ and name in dir(engine)
    else:
        with pytest.raises(AttributeError, match=f"engine.{name} is not available in this version"):
            getattr(engine, name)
        assert name not in engine.__all__ and name not in dir(engine)


def test_table_and_all_agree_with_the_readme_map() -> None:
    assert engine._PUBLIC == {**SEED, **LATER}
    assert set(SEED) <= set(engine.__all__) <= set(SEED) | set(LATER)


def test_star_import_gives_every_landed_name() -> None:
    ns: dict[str, object] = {}
    exec("from engine import *", ns)
    assert set(SEED) <= set(ns)
    assert ns["SecureConfig"] is importlib.import_module("engine.secrets").SecureConfig


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'SecureConfg'"):
        engine.SecureConfg  # noqa: B018
    assert not hasattr(engine, "load_bars")


def test_a_missing_dependency_inside_a_module_is_not_mistaken_for_a_missing_module(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the target module's own absence means "not landed"; an ImportError raised while importing
    it (a broken install) must surface as itself."""
    monkeypatch.setitem(engine._PUBLIC, "Probe", "json.no_such_submodule")
    with pytest.raises(AttributeError, match="has not landed yet"):
        engine.Probe  # noqa: B018

    def broken(name: str, *args: object, **kwargs: object) -> object:
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    monkeypatch.setitem(engine._PUBLIC, "Probe", "engine.some_new_module")
    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="pyarrow"):
        engine.Probe  # noqa: B018


def test_mlpipeline_from_the_package_root_comes_with_the_tracking_hooks() -> None:
    """The model layer never imports DVC; `from engine import MLPipeline` installs the tracking layer's
    versioning so the seed's `dvc_track=True` works without further setup (fresh process: the hook
    registry is process-wide)."""
    code = "\n".join([
        "from engine.errors import OperationalError",
        "from engine.models import hooks",
        "try:",
        "    hooks.versioning_hooks(None); print('installed before')",
        "except OperationalError:",
        "    print('absent before')",
        "from engine import MLPipeline",
        "print(type(hooks.versioning_hooks(None)).__module__)",
    ])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["absent before", "engine.tracking.model_hooks"]


def test_readme_api_table_matches_the_package() -> None:
    from pathlib import Path

    readme = (Path(engine.__file__).resolve().parents[1] / "README.md").read_text()
    rows = re.findall(r"^\| .* \| `from engine import (\w+)`( — not landed yet)? \| `([\w.]+)` \|$", readme,
                      flags=re.MULTILINE)
    assert {name: module for name, _, module in rows} == {**SEED, **LATER}
    for name, not_landed, _ in rows:
        assert bool(not_landed) == (name not in engine.__all__), name
