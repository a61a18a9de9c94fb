"""Config schemas live one module per conf group and are generated from the components they configure, so a
setting, its default and its bounds are written once (the component's) and enforced alike by both."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from omegaconf import OmegaConf

from engine.cli import CONF_DIR
from engine.config.derive import schema_from
from engine.config.groups import GROUP_MODULES, modules, schemas
from engine.config.validate import validate
from engine.data.cleaning import DataCleaner
from engine.errors import ConfigError
from engine.fields import bounded, bounded_items

_NOT_SCHEMA_GROUPS = {"experiment", "hparams_search", "hydra"}


def test_every_conf_group_has_its_schema_module() -> None:
    conf_groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()} - _NOT_SCHEMA_GROUPS
    assert conf_groups <= set(GROUP_MODULES)
    assert set(schemas()) <= conf_groups
    assert all(isinstance(m.SCHEMAS, dict) for m in modules())
    config_dir = CONF_DIR.parent / "engine" / "config"
    assert not list(config_dir.glob("groups_*.py")) and not (config_dir / "schema.py").exists()


def _generated() -> list[tuple[str, str, type]]:
    return [(g, o, s) for g, opts in schemas().items() for o, s in opts.items() if hasattr(s, "__settings__")]


@pytest.mark.parametrize(("group", "option", "schema"), _generated(), ids=lambda v: v if isinstance(v, str) else "")
def test_generated_schema_keeps_the_components_bounds(group: str, option: str, schema: type) -> None:
    component = schema.__settings__
    if not dataclasses.is_dataclass(component):
        return  # a constructor's parameters carry no metadata of their own
    own = {f.name: f for f in dataclasses.fields(component)}
    for f in dataclasses.fields(schema):
        if f.name in own:
            assert dict(own[f.name].metadata).items() <= dict(f.metadata).items(), f"{group}/{option}.{f.name}"


@pytest.mark.parametrize("value", [1.0, 0.5])
def test_cleaner_spread_mult_has_one_rule(compose, value: float) -> None:
    # The schema said > 1 and the cleaner > 0; the cleaner's field now holds the one rule (> 1).
    with pytest.raises(ConfigError, match=r"cleaner\.spread_mult: must be > 1\.0"):
        DataCleaner(spread_mult=value)
    with pytest.raises(ConfigError, match=r"cleaner\.spread_mult: must be > 1\.0"):
        validate(compose([f"cleaner.spread_mult={value}"]))
    validate(compose(["cleaner.spread_mult=1.5"]))
    assert DataCleaner(spread_mult=1.5).spread_mult == 1.5


def test_risk_is_a_typed_group(compose) -> None:
    from engine.config.groups.risk import RiskConfig

    cfg = compose([])
    assert OmegaConf.get_type(cfg.risk) is RiskConfig
    assert {"risk": "default"} in OmegaConf.load(CONF_DIR / "config.yaml").defaults


def test_keys_only_check_still_refuses_unknown_keys(compose) -> None:
    cfg = compose(["source=csv", "+features.rsii=[3]"])  # source.path is ???: a value problem only
    with pytest.raises(ConfigError, match=r"features\.rsii: unknown key; did you mean rsi\?"):
        validate(cfg, values=False)


@dataclass(frozen=True)
class _Settings:
    periods: Sequence[int] = bounded_items((3, 5), ge=1)
    path: str | bytes = "x"
    rate: float = bounded(0.5, gt=0.0)
    required: int = field(default=0)


def test_schema_from_gives_omegaconf_types_and_fresh_defaults() -> None:
    schema = schema_from(_Settings, target="engine.tests.Thing", defaults={"required": 7})
    node = OmegaConf.structured(schema)
    assert node._target_ == "engine.tests.Thing" and list(node.periods) == [3, 5] and node.required == 7
    node.periods.append(9)
    assert list(OmegaConf.structured(schema).periods) == [3, 5]  # the default is not shared
    assert {f.name: f.type for f in dataclasses.fields(schema)}["path"] is str  # str | bytes -> str
    assert dict(dataclasses.fields(schema)[3].metadata) == {"bounds": {"gt": 0.0, "ge": None, "lt": None, "le": None}}


@pytest.mark.parametrize("kwargs", [{"exclude": ("nope",)}, {"defaults": {"nope": 1}}, {"meta": {"nope": {}}}])
def test_schema_from_refuses_names_the_component_does_not_have(kwargs: dict) -> None:
    with pytest.raises(TypeError, match="nope"):
        schema_from(_Settings, **kwargs)
