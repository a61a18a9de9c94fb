"""``_target_`` is judged on the object it names: only public classes and functions defined in engine are built."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from engine.config.build import build
from engine.config.targets import accepted_keys, resolve_target
from engine.errors import ConfigError
from engine.storage.parquet import ParquetStore


@pytest.mark.parametrize(("target", "reason"), [
    # Pass a prefix test on the string, yet are not engine's: pathlib's class and os's builtin.
    ("engine.storage.parquet.Path", "is pathlib.Path, defined outside engine"),
    ("engine.secrets.formats.os.system", "is a builtin_function_or_method, not a class or function"),
    ("engine.storage.parquet.fcntl", "is a module"),
    ("engine.storage", "is a module"),
    ("engine.errors.ConfigError", "is an exception class"),
    ("engine.config.validate._Walk", "names a private attribute"),
    ("engine.storage.parquet.NoSuchStore", "does not exist"),
    ("engine.no_such_module.Thing", "does not exist"),
    ("os.system", "is outside engine"),
    ("subprocess.Popen", "is outside engine"),
])
def test_targets_not_meant_to_be_built_are_refused(target: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_target(target, key="storage._target_")
    assert err.value.key == "storage._target_" and reason in str(err.value)


def test_a_pandas_class_re_exported_through_an_engine_module_is_refused() -> None:
    # The path must really reach pandas' class through the engine module (a module-level ``import pandas as
    # pd``), or the refusal below would be "does not exist" and prove nothing about the __module__ check.
    import engine.models.inputs

    assert engine.models.inputs.pd.DataFrame is pd.DataFrame
    with pytest.raises(ConfigError) as err:
        resolve_target("engine.models.inputs.pd.DataFrame", key="storage._target_")
    assert err.value.key == "storage._target_"
    assert "is pandas.DataFrame, defined outside engine" in str(err.value)


def test_refused_target_is_never_called(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    node = OmegaConf.create({"_target_": "engine.secrets.formats.os.system", "_args_": [f"touch {marker}"]})
    with pytest.raises(ConfigError, match="not a class or function"):
        build(node, object, key="storage")
    path_node = OmegaConf.create({"_target_": "engine.storage.parquet.Path", "_args_": [str(tmp_path)]})
    with pytest.raises(ConfigError, match="defined outside engine"):
        build(path_node, object, key="storage")
    assert not marker.exists()


def test_engine_classes_and_functions_are_built(tmp_path: Path) -> None:
    assert resolve_target("engine.storage.parquet.ParquetStore", key="k") is ParquetStore
    store = build(OmegaConf.create({"_target_": "engine.storage.parquet.ParquetStore", "root": str(tmp_path)}),
                  ParquetStore, key="storage")
    assert store.root == tmp_path


def test_accepted_keys_are_the_parameters() -> None:
    assert accepted_keys(ParquetStore) == {"root", "_target_", "_recursive_", "_convert_", "_partial_", "_args_"}

    def takes_anything(**options: object) -> None: ...

    assert accepted_keys(takes_anything) is None  # cannot tell a typo from an option
