"""The simulator's settings: one frozen dataclass, the single source of its fields, defaults and bounds.

The ``connector=simulator`` config schema is generated from it (engine.config.groups.connector), the
embedded client takes it, and ``python -m engine.mt5.sim`` builds its options from its fields.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError
from engine.fields import bounded

# Not a secret: the simulator holds no money and binds to 127.0.0.1. Real deployments use
# ${secret:mt5_api_key}.
DEV_TOKEN = "sim-dev-token"


def _help(spec: Any, text: str) -> Any:
    """``spec`` (a dataclass field) with a one-line description for the command line."""
    return field(default=spec.default, metadata={**spec.metadata, "help": text})


def _plain(default: Any, text: str) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class SimSettings:
    """A one-symbol hedging account replaying real data, with seeded faults."""

    # -- data ------------------------------------------------------------------------------------------
    bars_path: str | None = _plain(None, "1m bar CSV in the shared-data layout (default: the bundled sample)")
    ticks_path: str | None = _plain(None, "quote CSV (timestamp,bid,ask,...) to serve as ticks")
    data_start: str | None = _plain(None, "first UTC time of the data to load")
    data_end: str | None = _plain(None, "UTC time to stop loading data at")
    # -- market ----------------------------------------------------------------------------------------
    symbol: str = _plain("BTCUSD", "the one symbol served")
    digits: int = _help(bounded(2, ge=0, le=8), "price digits; a point is 10**-digits")
    spread_points: int = _help(bounded(1500, ge=0), "ask minus bid in points (1500 = 15.00 USD on BTC)")
    slippage_points: int = _help(bounded(0, ge=0), "market fills slip by up to this many points (seeded)")
    contract_size: float = _help(bounded(1.0, gt=0.0), "units of the symbol per lot")
    volume_min: float = _help(bounded(0.01, gt=0.0), "smallest order in lots")
    volume_max: float = _help(bounded(100.0, gt=0.0), "largest order in lots")
    volume_step: float = _help(bounded(0.01, gt=0.0), "order volumes are multiples of this")
    balance: float = _help(bounded(10_000.0, gt=0.0), "starting balance")
    currency: str = _plain("USD", "account currency")
    leverage: int = _help(bounded(10, ge=1, le=1000), "margin = notional / leverage")
    commission_per_lot: float = _help(bounded(0.0, ge=0.0), "commission per lot, charged on every deal")
    fill_volume_cap: float | None = _help(bounded(None, gt=0.0), "most lots one market order fills; larger IOC "
                                          "orders fill partially (10010), FOK ones are refused (default: no cap)")
    login: int = _help(bounded(5_000_001, ge=1), "account login reported by /account_info")
    trade_server: str = _plain("engine-simulator", "trade server name reported by /account_info")
    # -- replay clock ------------------------------------------------------------------------------------
    server_offset_hours: float = _help(bounded(2.0, ge=-12.0, le=14.0), "broker server time = UTC + this")
    # 0 = step mode (the replay moves when told to); 60 = one simulated minute per second.
    speed: float = _help(bounded(0.0, ge=0.0), "replay speed factor (60 = a minute a second); 0 = step mode")
    start: str | None = _plain(None, "UTC replay start (default: the last bar)")
    step_on_poll: bool = _plain(False, "in step mode, each /fetch_data_pos moves one bar")
    # -- server ------------------------------------------------------------------------------------------
    max_bars: int = _help(bounded(10_000, ge=1, le=1_000_000), "cap on bars per request")
    # -- faults (probabilities per request, seeded) --------------------------------------------------------
    error_rate: float = _help(bounded(0.0, ge=0.0, le=1.0), "503 + Retry-After before execution")
    latency_ms: float = _help(bounded(0.0, ge=0.0, le=30_000.0), "delay before every answer")
    drop_rate: float = _help(bounded(0.0, ge=0.0, le=1.0), "execute, then close the connection unanswered")
    duplicate_tick_rate: float = _help(bounded(0.0, ge=0.0, le=1.0), "send a tick twice")
    seed: int = _help(bounded(42, ge=0), "seed of slippage and faults, so a failing run replays exactly")

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            bounds = spec.metadata.get("bounds")
            value = getattr(self, spec.name)
            if bounds and value is not None and (problem := _out_of_bounds(value, bounds)):
                raise ConfigError(spec.name, problem)
        if self.volume_min > self.volume_max:
            raise ConfigError("volume_max", f"must be >= volume_min ({self.volume_min}), got {self.volume_max}")

    @property
    def point(self) -> float:
        return 10.0 ** -self.digits


_COMPARISONS = {"gt": (">", operator.gt), "ge": (">=", operator.ge), "lt": ("<", operator.lt),
                "le": ("<=", operator.le)}


def _out_of_bounds(value: Any, bounds: dict[str, float | None]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, got {value!r}"
    failed = [f"{symbol} {limit}" for name, (symbol, holds) in _COMPARISONS.items()
              if (limit := bounds.get(name)) is not None and not holds(value, limit)]
    return f"must be {' and '.join(failed)}, got {value!r}" if failed else None
