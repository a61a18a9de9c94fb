"""The ``risk`` config group: each option composes and builds the RiskManager's limits, and typos or
out-of-range values fail at composition with one error naming the key, before any work."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from omegaconf import DictConfig

from engine.config.build import build
from engine.config.validate import validate
from engine.errors import ConfigError
from engine.trading.risk import RiskManager
from engine.trading.risk_rules import RiskLimits


class Offline:
    """A broker that cannot be reached: the RiskManager still builds (and would refuse every order)."""

    def account_info(self) -> dict[str, float]:
        raise ConnectionError("down")

    symbol_info = positions = orders = account_info


@pytest.mark.parametrize(("option", "max_position_size"), [("default", 1.0), ("conservative", 0.1)])
def test_each_risk_option_builds_limits_the_risk_manager_takes(
        compose: Callable[[list[str]], DictConfig], option: str, max_position_size: float) -> None:
    cfg = compose([f"risk={option}"])
    validate(cfg)
    limits = build(cfg.risk, RiskLimits, key="risk")
    assert limits.max_position_size == max_position_size
    assert RiskManager.from_limits(Offline(), limits).limits == limits


def test_default_options_match_the_seed_defaults(compose: Callable[[list[str]], DictConfig]) -> None:
    built = build(compose([]).risk, RiskLimits, key="risk")
    seed = RiskManager(Offline()).limits
    assert built == seed == RiskLimits()


@pytest.mark.parametrize(("override", "key"), [
    ("risk.max_drawdown=5", "risk.max_drawdown"),
    ("risk.max_daily_loss=0", "risk.max_daily_loss"),
    ("risk.risk_per_trade=nan", "risk.risk_per_trade"),
    ("risk.max_position_size=-1", "risk.max_position_size"),
    ("+risk.max_drawdwn=0.1", "risk.max_drawdwn"),
])
def test_bad_risk_values_and_typos_fail_before_any_work(compose: Callable[[list[str]], DictConfig],
                                                        override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(compose([override]))
    assert info.value.key == key
