"""Every option of cleaner/features/labels composes, validates and builds; bad values exit early."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.config.build import build
from engine.config.validate import validate
from engine.data.cleaning import DataCleaner
from engine.data.features import FeatureEngineering
from engine.data.labels import LabelSpec
from engine.errors import ConfigError

OPTIONS = {"cleaner": ("default", "strict", "off"), "features": ("minimal", "standard", "full"),
           "labels": ("binary", "ternary")}
TYPES = {"cleaner": DataCleaner, "features": FeatureEngineering, "labels": LabelSpec}


def test_defaults_select_data_groups(compose) -> None:
    cfg = compose([])
    assert cfg.features.timeframes == ["1min", "5min"] and cfg.labels.kind == "binary" and cfg.cleaner.causal


@pytest.mark.parametrize(("group", "option"), [(g, o) for g, opts in OPTIONS.items() for o in opts])
def test_every_option_builds(compose, group: str, option: str) -> None:
    cfg = compose([f"{group}={option}"])
    validate(cfg)
    obj = build(cfg[group], TYPES[group], key=group)
    assert isinstance(obj, TYPES[group])


@pytest.mark.parametrize("override", ["cleaner.zscore=-1", "cleaner.missing=zero", "features.rsi=[0]",
                                      "features.timeframes=[5min,1min]", "features.macd=[12,26]",
                                      "labels.horizon=0", "labels.kind=up", "features.levels=log",
                                      "cleaner.contamination=0.9"])
def test_bad_values_fail_naming_the_key(compose, override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as err:
        validate(compose([override]))
    assert err.value.key.startswith(key.split(".")[0]) and key.split(".")[1] in str(err.value)


def test_unknown_key_is_refused(compose) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose(["features.rsii=[14]"])


@pytest.mark.parametrize(("override", "nearest"), [("+cleaner.zscoree=3", "zscore"), ("+features.rsii=[3]", "rsi"),
                                                   ("+labels.horizn=3", "horizon")])
def test_appended_unknown_key_is_refused(compose, override: str, nearest: str) -> None:
    # An append (+key=value) passes Hydra's own check; validation names it and the nearest valid key.
    key = override[1:].split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}: unknown key; did you mean {nearest}\?"):
        validate(compose([override]))


def test_the_modules_schemas_come_from_import_without_pandas_or_numba() -> None:
    """The cleaner/features/labels/task schemas are generated from these classes, so composing a config
    imports their modules: the numeric stack loads on first use instead (FeatureEngineering's computation
    lives in engine.data.feature_columns)."""
    probe = ("import sys\n"
             "import engine.data.cleaning, engine.data.dataset, engine.data.features, engine.data.labels\n"
             "fe = engine.data.features.FeatureEngineering(timeframes=['1min', '5min'])\n"
             "heavy = {'pandas', 'numba'} & set(sys.modules)\n"
             "assert fe.level_columns() and not heavy, heavy\n"
             "import engine.data.feature_columns\n"
             "assert {'pandas', 'numba'} <= set(sys.modules)  # the probe itself can see a heavy import\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
