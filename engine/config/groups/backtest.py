"""Schema of the ``backtest`` group, generated from :class:`engine.trading.backtest.BacktestSettings`: signal
thresholds on class probabilities and trading costs in basis points."""

from __future__ import annotations

from engine.config.derive import schema_from
from engine.trading.backtest import BacktestSettings

BacktestConfig = schema_from(BacktestSettings, target="engine.trading.backtest.BacktestSettings",
                             name="BacktestConfig", build_check=True)

SCHEMAS: dict[str, dict[str, type]] = {"backtest": {"backtest": BacktestConfig}}
