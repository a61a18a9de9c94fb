"""Position size from a risk budget: the pure maths shared by the RiskManager and the backtest.

    lots = risk_per_trade × equity ÷ (stop distance in points × value of one point per lot)

The value of one point per lot comes from the symbol's tick size and tick value (MT5's
``trade_tick_size`` / ``trade_tick_value``: the account-currency value of a move of one tick for one
lot), so ``distance_points × point_value == |entry − stop| ÷ tick_size × tick_value``. The result is
rounded DOWN to the volume step (never more risk than the budget) and capped at the symbol's
maximum and the caller's cap; when even the minimum lot would risk more than the budget the answer is
0 lots with a reason, not the minimum lot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.errors import DataQualityError

# Float noise allowed when comparing volumes: 0.1 + 0.2 lots must count as 0.3 lots.
VOLUME_EPS = 1e-9


@dataclass(frozen=True)
class SymbolSpec:
    """What sizing needs to know about a symbol, in MT5's units."""

    volume_min: float
    volume_max: float
    volume_step: float
    tick_size: float
    tick_value: float
    point: float

    def __post_init__(self) -> None:
        for name in ("volume_min", "volume_max", "volume_step", "tick_size", "tick_value", "point"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value <= 0:
                raise DataQualityError(f"symbol info: {name} must be a positive number, got {value!r}")
        if self.volume_max < self.volume_min:
            raise DataQualityError(f"symbol info: volume_max {self.volume_max} < volume_min {self.volume_min}")

    @property
    def point_value(self) -> float:
        """Account-currency value of a one-point move for one lot."""
        return self.tick_value * self.point / self.tick_size

    @classmethod
    def from_info(cls, info: Mapping[str, Any], account_currency: str | None = None) -> SymbolSpec:
        """From an MT5 ``symbol_info`` answer.

        When the answer lacks ``trade_tick_size``/``trade_tick_value`` (the engine's simulator omits
        them), one tick is taken as one point worth ``point × trade_contract_size`` — true only when the
        symbol's profit currency is the account currency, so any other case is refused.
        """
        try:
            if "trade_tick_size" in info and "trade_tick_value" in info:
                tick_size, tick_value = float(info["trade_tick_size"]), float(info["trade_tick_value"])
            else:
                profit_ccy = info.get("currency_profit")
                if account_currency is None or profit_ccy != account_currency:
                    raise DataQualityError(
                        f"symbol info lacks trade_tick_size/trade_tick_value and its profit currency "
                        f"{profit_ccy!r} is not the account currency {account_currency!r}: cannot value a point")
                tick_size = float(info["point"])
                tick_value = tick_size * float(info["trade_contract_size"])
            return cls(volume_min=float(info["volume_min"]), volume_max=float(info["volume_max"]),
                       volume_step=float(info["volume_step"]), tick_size=tick_size, tick_value=tick_value,
                       point=float(info["point"]))
        except KeyError as exc:
            raise DataQualityError(f"symbol info lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, DataQualityError):
                raise
            raise DataQualityError(f"symbol info has a non-numeric field: {exc}") from None


@dataclass(frozen=True)
class SizeDecision:
    """A volume in lots (0 when nothing may be traded) and why."""

    volume: float
    reason: str


def floor_to_step(volume: float, step: float) -> float:
    """``volume`` rounded down to a whole number of ``step``s, printed exactly (0.29999 → 0.29 at 0.01)."""
    steps = math.floor(volume / step + VOLUME_EPS)  # 0.3 / 0.1 is 2.9999999999999996
    decimals = max(0, -Decimal(str(step)).normalize().as_tuple().exponent)  # type: ignore[operator]
    return round(max(steps, 0) * step, decimals)


def loss_per_lot(entry: float, stop_loss: float, spec: SymbolSpec) -> float:
    """Account-currency loss of one lot from ``entry`` to ``stop_loss``."""
    distance_points = abs(entry - stop_loss) / spec.point
    return distance_points * spec.point_value


def position_size(equity: float, risk_fraction: float, entry: float, stop_loss: float, spec: SymbolSpec,
                  cap: float | None = None) -> SizeDecision:
    """Lots such that hitting ``stop_loss`` from ``entry`` loses at most ``risk_fraction × equity``.

    ``cap`` (e.g. the risk limit's max_position_size) lowers the symbol's ``volume_max``.
    """
    numbers = {"equity": equity, "risk_fraction": risk_fraction, "entry": entry, "stop_loss": stop_loss}
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return SizeDecision(0.0, f"{name} must be a finite number, got {value!r}")
    if equity <= 0:
        return SizeDecision(0.0, f"no equity to risk ({equity:.2f})")
    if entry <= 0 or stop_loss <= 0:
        return SizeDecision(0.0, f"prices must be > 0 (entry {entry}, stop {stop_loss})")
    per_lot = loss_per_lot(entry, stop_loss, spec)
    if per_lot <= 0:
        return SizeDecision(0.0, f"the stop {stop_loss} is at the entry price {entry}: the risk is undefined")
    budget = risk_fraction * equity
    ceiling = spec.volume_max if cap is None else min(spec.volume_max, cap)
    if ceiling < spec.volume_min - VOLUME_EPS:
        return SizeDecision(0.0, f"the position cap {ceiling} is below the symbol's minimum lot {spec.volume_min}")
    raw = budget / per_lot
    volume = floor_to_step(min(raw, ceiling), spec.volume_step)
    if volume < spec.volume_min - VOLUME_EPS:
        return SizeDecision(0.0, f"even the minimum lot {spec.volume_min} risks {spec.volume_min * per_lot:.2f}, "
                                 f"more than the budget {budget:.2f} ({risk_fraction:.2%} of equity {equity:.2f})")
    capped = " (capped)" if raw > ceiling else ""
    return SizeDecision(volume, f"{volume} lots{capped} risk {volume * per_lot:.2f} of a budget {budget:.2f} "
                                f"({risk_fraction:.2%} of equity {equity:.2f}); {per_lot:.2f} per lot to the stop")
