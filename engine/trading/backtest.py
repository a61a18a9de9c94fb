"""A pure next-bar backtest: signals -> positions filled at the NEXT bar's open -> equity, trades, metrics.

Timing (the one rule that keeps a backtest honest): a signal computed from bar ``t`` (its features use
data up to bar t's close) can only be traded at bar ``t+1``'s open. The first bar is always flat. A
position is valued at each next open; the last bar is marked to its own close, where anything still held
is liquidated (and pays for it).

Positions (``BacktestSettings.sizing``):

- ``rebalance``: a fraction of equity (the signal, in [-1, 1]) re-sized every bar, so a position is never
  held as a fixed size; costs are charged on the change of the fraction only. The quick model of the
  first evaluations, kept for comparison. No stops.
- ``equity``: at entry, lots worth ``equity_fraction x |signal|`` of equity, held at that size until closed.
- ``lots``: ``fixed_lots`` per trade.
- ``risk``: the RiskManager's sizing (:func:`engine.trading.sizing.position_size`): ``risk.risk_per_trade`` of
  equity lost if the stop is hit, from the stop distance and the symbol's tick size/value.
  Lots are rounded down to the volume step and capped at ``volume_max`` and ``risk.max_position_size``;
  an entry that rounds to less than the minimum lot is skipped (``n_skipped``). Shorts are held at a fixed
  size like longs.

Stops (lot modes): ``stop_loss`` / ``take_profit`` distances in points (``stop_unit=points``, multiples of
``point``) or in ATR multiples (``stop_unit=atr``, the ATR known at the signal bar's close), fixed from the
entry price. They are checked against each bar's open, low and high: a bar that opens beyond a level fills
at that open (the gap price); when both levels lie inside one bar the stop-loss is assumed (the worse one).
After a stop the trade is not re-entered until the signal changes (:mod:`engine.trading.signals`).

Costs, in basis points of traded notional at the bar's (mid) price: half the quoted spread, slippage and
commission, on every fill: entries, exits, stops and the final liquidation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import ConfigError, DataQualityError
from engine.fields import bounded, check, choice
from engine.trading.performance import METRIC_NAMES, SECONDS_PER_YEAR, periods_per_year, summarize
from engine.trading.risk_rules import RiskLimits
from engine.trading.sizing import SymbolSpec

# pandas and the numba kernels (fills, signals) load on first use: the backtest config schema is generated
# from BacktestSettings, and `python -m engine --cfg job` must not pay for them.
if TYPE_CHECKING:
    import pandas as pd

    from engine.trading.signals import class_probabilities, signals_from_proba

SIZING = ("rebalance", "equity", "lots", "risk")
STOP_UNITS = ("points", "atr")
TRADE_COLUMNS = ("entry_time", "exit_time", "side", "size", "entry_price", "exit_price", "pnl", "costs", "net_pnl",
                 "return", "bars", "exit_reason")

__all__ = ["METRIC_NAMES", "SECONDS_PER_YEAR", "BacktestResult", "BacktestSettings", "class_probabilities",
           "periods_per_year", "run_backtest", "signals_from_proba", "trades"]


def __getattr__(name: str) -> Any:
    if name in ("class_probabilities", "signals_from_proba"):
        from engine.trading import signals

        return getattr(signals, name)
    raise AttributeError(f"module 'engine.trading.backtest' has no attribute {name!r}")


def _no_trades() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=list(TRADE_COLUMNS))


@dataclass(frozen=True)
class BacktestSettings:
    """Signal thresholds, positions, stops, costs and the symbol. Thresholds apply to class probabilities:
    long when P(up) > ``long_threshold``, short when P(down) > ``short_threshold`` (and ``allow_short``)."""

    long_threshold: float = bounded(0.55, ge=0.0, le=1.0)
    short_threshold: float = bounded(0.55, ge=0.0, le=1.0)
    allow_short: bool = True
    spread_bps: float = bounded(2.0, ge=0.0)  # quoted spread; half of it is paid per unit traded
    commission_bps: float = bounded(1.0, ge=0.0)
    slippage_bps: float = bounded(0.5, ge=0.0)
    initial_equity: float = bounded(10_000.0, gt=0.0)
    sizing: str = choice("rebalance", SIZING)
    equity_fraction: float = bounded(1.0, gt=0.0, le=10.0)  # sizing=equity: notional / equity at entry
    fixed_lots: float = bounded(0.1, gt=0.0)  # sizing=lots
    stop_loss: float | None = bounded(None, gt=0.0)  # distance from the entry, in stop_unit
    take_profit: float | None = bounded(None, gt=0.0)
    stop_unit: str = choice("points", STOP_UNITS)
    atr_period: int = bounded(14, ge=1)  # stop_unit=atr: Wilder ATR over this many bars
    # The symbol, as MT5's symbol_info reports it (the simulator's BTCUSD: 1 lot = 1 BTC, prices in 0.01).
    volume_min: float = bounded(0.01, gt=0.0)
    volume_max: float = bounded(100.0, gt=0.0)
    volume_step: float = bounded(0.01, gt=0.0)
    tick_size: float = bounded(0.01, gt=0.0)
    tick_value: float = bounded(0.01, gt=0.0)  # account currency per tick per lot
    point: float = bounded(0.01, gt=0.0)

    def __post_init__(self) -> None:
        check(self, "backtest")  # the bounds above; the config layer applies the same ones before any work
        if self.sizing == "risk" and self.stop_loss is None:
            raise ConfigError("backtest.stop_loss", "sizing=risk sizes each trade from its stop distance; set "
                                                    "backtest.stop_loss (points, or ATR multiples)")
        if self.sizing == "rebalance" and (self.stop_loss is not None or self.take_profit is not None):
            raise ConfigError("backtest.sizing", "stops need positions held in lots; use sizing=equity, lots or "
                                                 "risk (rebalance re-sizes a fraction of equity every bar)")
        if self.volume_max < self.volume_min:
            raise ConfigError("backtest.volume_max", f"must be >= volume_min ({self.volume_min}), "
                                                     f"got {self.volume_max}")

    @property
    def cost_rate(self) -> float:
        """Fraction of notional paid per unit of position traded."""
        return (self.spread_bps / 2 + self.slippage_bps + self.commission_bps) / 1e4

    @property
    def symbol(self) -> SymbolSpec:
        return SymbolSpec(volume_min=self.volume_min, volume_max=self.volume_max, volume_step=self.volume_step,
                          tick_size=self.tick_size, tick_value=self.tick_value, point=self.point)

    @property
    def has_stops(self) -> bool:
        return self.stop_loss is not None or self.take_profit is not None

    @property
    def uses_atr(self) -> bool:
        return self.has_stops and self.stop_unit == "atr"


@dataclass(frozen=True)
class BacktestResult:
    frame: pd.DataFrame  # per bar: signal, position, price_return, gross, traded, cost, net, equity, exposure
    metrics: dict[str, float]
    trades: pd.DataFrame = field(default_factory=_no_trades)
    initial_equity: float | None = None  # None: derived from the first bar

    @property
    def equity(self) -> pd.Series:
        return self.frame["equity"]

    @property
    def initial(self) -> float:
        """The equity before the first bar."""
        if self.initial_equity is not None:
            return self.initial_equity
        return float(self.equity.iloc[0] / (1.0 + self.frame["net"].iloc[0]))

    @property
    def buy_and_hold(self) -> pd.Series:
        """Equity of holding the initial equity in the asset from the first open, marked like ``equity``."""
        import pandas as pd

        return pd.Series(self.initial * np.cumprod(1.0 + self.frame["price_return"].to_numpy()),
                         index=self.frame.index, name="buy_and_hold")


def run_backtest(signals: pd.Series, bars: pd.DataFrame, settings: BacktestSettings, *, bar_seconds: float,
                 limits: RiskLimits | None = None, atr: pd.Series | np.ndarray | None = None) -> BacktestResult:
    """Trade ``signals`` (decided at each bar's close, indexed like ``bars``) on ``bars``' next opens.

    ``bars`` needs open and close, plus high and low when stops are set; ``limits`` gives the risk per
    trade and the lot cap (default: :class:`RiskLimits`' defaults); ``atr`` (one value per bar, known at its
    close) is required for ATR stops.
    """
    sig, opens, closes = _checked(signals, bars)
    if settings.sizing == "rebalance":
        frame, book = _rebalanced(sig, opens, closes, bars.index, settings, bar_seconds)
        skipped = 0
    else:
        frame, book, skipped = _in_lots(sig, opens, closes, bars, settings, bar_seconds, limits or RiskLimits(),
                                        atr)
    metrics = summarize(frame, book, initial_equity=settings.initial_equity, bar_seconds=bar_seconds,
                        skipped=skipped)
    return BacktestResult(frame=frame, metrics=metrics, trades=book, initial_equity=settings.initial_equity)


def _checked(signals: pd.Series, bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pandas as pd

    if len(bars) == 0:
        raise DataQualityError("backtest needs at least one bar; the evaluation span is empty")
    missing = [c for c in ("open", "close") if c not in bars.columns]
    if missing:
        raise DataQualityError(f"backtest bars lack column(s) {missing}")
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise DataQualityError("backtest bars need a DatetimeIndex (the open time of each bar)")
    if not signals.index.equals(bars.index):
        raise DataQualityError("signals and bars must share the same index (one signal per bar, decided at "
                               "that bar's close); align them with signals.reindex(bars.index)")
    sig = signals.to_numpy(dtype="float64", na_value=np.nan)
    sig = np.where(np.isnan(sig), 0.0, sig)  # no decision = flat
    if np.any(np.abs(sig) > 1):
        raise DataQualityError("signals must lie in [-1, 1] (fractions of equity)")
    opens = _prices(bars, "open")
    closes = _prices(bars, "close")
    return sig, opens, closes


def _prices(bars: pd.DataFrame, column: str) -> np.ndarray:
    # a private, writable float64 copy: numba compiles one specialisation for it (pandas may hand out
    # read-only views, which would need a second one)
    values = np.array(bars[column].to_numpy(dtype="float64"), dtype="float64", copy=True)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise DataQualityError("backtest bars need finite, positive prices; clean them first")
    return values


def _exit_prices(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    return np.concatenate([opens[1:], closes[-1:]])


def _rebalanced(sig: np.ndarray, opens: np.ndarray, closes: np.ndarray, index: pd.Index,
                settings: BacktestSettings, bar_seconds: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fractions of equity re-sized every bar: ``equity[j] = equity[j-1] * (1 + position[j] * r[j] - cost[j])``."""
    import pandas as pd

    position = np.concatenate([[0.0], sig[:-1]])  # the fill happens at the next bar's open
    price_return = _exit_prices(opens, closes) / opens - 1.0
    gross = position * price_return
    traded = np.abs(np.diff(position, prepend=0.0))
    traded[-1] += abs(position[-1])  # liquidate at the last close
    cost = traded * settings.cost_rate
    net = gross - cost
    equity = settings.initial_equity * np.cumprod(1.0 + net)
    frame = pd.DataFrame({"signal": sig, "position": position, "price_return": price_return, "gross": gross,
                          "traded": traded, "cost": cost, "net": net, "equity": equity,
                          "exposure": np.abs(position)}, index=index)
    return frame, _rebalanced_trades(frame, opens, closes, settings, bar_seconds)


def _runs(position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) of every run of bars holding a position of one sign."""
    side = np.sign(position)
    edges = np.flatnonzero(np.diff(np.concatenate([[0.0], side, [0.0]])) != 0)
    starts, stops = edges[:-1], edges[1:]
    keep = side[starts] != 0
    return starts[keep], stops[keep]


def trades(frame: pd.DataFrame, cost_rate: float) -> pd.DataFrame:
    """One row per trade of a ``rebalance`` frame (a run of bars holding a position of the same sign):
    first and last bar held, side and net return = sum of the bars' position * price_return minus entry
    and exit costs."""
    import pandas as pd

    pos = frame["position"].to_numpy()
    starts, stops = _runs(pos)
    summed = np.concatenate([[0.0], np.cumsum(frame["gross"].to_numpy())])
    size = np.abs(pos[starts])
    return pd.DataFrame({"entry": frame.index[starts], "exit": frame.index[stops - 1],
                         "side": np.sign(pos[starts]), "bars": stops - starts,
                         "net_return": summed[stops] - summed[starts] - 2 * size * cost_rate},
                        columns=["entry", "exit", "side", "bars", "net_return"])


def _rebalanced_trades(frame: pd.DataFrame, opens: np.ndarray, closes: np.ndarray, settings: BacktestSettings,
                       bar_seconds: float) -> pd.DataFrame:
    pos = frame["position"].to_numpy()
    starts, stops = _runs(pos)
    n = len(pos)
    before = np.concatenate([[settings.initial_equity], frame["equity"].to_numpy()[:-1]])
    money = np.concatenate([[0.0], np.cumsum(frame["gross"].to_numpy() * before)])
    size = np.abs(pos[starts])
    ended = stops == n  # still held at the last bar: liquidated at its close, charged on that bar
    exit_base = before[np.minimum(stops, n - 1)]
    costs = size * settings.cost_rate * (before[starts] + exit_base)
    pnl = money[stops] - money[starts]
    legacy = trades(frame, settings.cost_rate)["net_return"].to_numpy()
    exit_price = np.where(ended, closes[-1], opens[np.minimum(stops, n - 1)])
    return _table(frame.index, starts, np.minimum(stops, n - 1), ended, np.sign(pos[starts]), size, opens[starts],
                  exit_price, pnl, costs, legacy, stops - starts,
                  np.where(ended, "end", "signal").astype(object), bar_seconds)


def _table(index: pd.Index, entry: np.ndarray, exit_: np.ndarray, at_close: np.ndarray, side: np.ndarray,
           size: np.ndarray, entry_price: np.ndarray, exit_price: np.ndarray, pnl: np.ndarray, costs: np.ndarray,
           returns: np.ndarray, held: np.ndarray, reasons: np.ndarray, bar_seconds: float) -> pd.DataFrame:
    """The trades table. Exit times: the open of the bar whose open filled a signal's exit or inside which a
    stop was hit; the last bar's close for the final liquidation."""
    import pandas as pd

    from engine.trading.signals import EXIT_REASONS

    times = pd.DatetimeIndex(index).as_unit("ns")
    stamps = times.asi8[exit_].copy()
    stamps[at_close] += round(bar_seconds * 1e9)
    exit_time = pd.DatetimeIndex(stamps.astype("datetime64[ns]"))
    if times.tz is not None:
        exit_time = exit_time.tz_localize("UTC").tz_convert(times.tz)
    return pd.DataFrame({
        "entry_time": times[entry], "exit_time": exit_time,
        "side": side.astype("int64"), "size": size, "entry_price": entry_price, "exit_price": exit_price,
        "pnl": pnl, "costs": costs, "net_pnl": pnl - costs, "return": returns, "bars": held.astype("int64"),
        "exit_reason": pd.Categorical(reasons, categories=EXIT_REASONS),
    }, columns=list(TRADE_COLUMNS))


def _distances(settings: BacktestSettings, n: int, atr: pd.Series | np.ndarray | None,
               index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Price distances of the stop-loss and take-profit set by each bar's signal (NaN: none)."""
    import pandas as pd

    unit = np.full(n, settings.point)
    if settings.uses_atr:
        if atr is None:
            raise DataQualityError("stop_unit=atr needs the ATR of every bar (known at its close)")
        if isinstance(atr, pd.Series) and not atr.index.equals(index):
            raise DataQualityError("the ATR series must be indexed like the bars")
        unit = np.asarray(atr, dtype="float64")
        if unit.shape != (n,):
            raise DataQualityError(f"need one ATR value per bar ({n}); got shape {unit.shape}")
    nan = np.full(n, np.nan)
    sl = unit * settings.stop_loss if settings.stop_loss is not None else nan
    tp = unit * settings.take_profit if settings.take_profit is not None else nan
    return np.array(sl, dtype="float64"), np.array(tp, dtype="float64")


def _in_lots(sig: np.ndarray, opens: np.ndarray, closes: np.ndarray, bars: pd.DataFrame,
             settings: BacktestSettings, bar_seconds: float, limits: RiskLimits,
             atr: pd.Series | np.ndarray | None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    import pandas as pd

    from engine.trading.fills import SIZE_EQUITY, SIZE_LOTS, SIZE_RISK, simulate, step_decimals
    from engine.trading.signals import EXIT_REASONS

    modes = {"equity": SIZE_EQUITY, "lots": SIZE_LOTS, "risk": SIZE_RISK}
    n = len(sig)
    if settings.has_stops:
        missing = [c for c in ("high", "low") if c not in bars.columns]
        if missing:
            raise DataQualityError(f"stops are checked against each bar's high and low; the bars lack {missing}")
        highs, lows = _prices(bars, "high"), _prices(bars, "low")
    else:
        highs, lows = opens, opens  # never consulted without stop levels
    sl, tp = _distances(settings, n, atr, bars.index)
    spec = settings.symbol
    value_per_price = spec.tick_value / spec.tick_size
    sizing = np.array([settings.equity_fraction, settings.fixed_lots, limits.risk_per_trade, spec.volume_min,
                       min(spec.volume_max, limits.max_position_size), spec.volume_step, spec.point,
                       spec.point_value, value_per_price], dtype="float64")
    (lots, pnl, cost, traded, equity, t_entry, t_exit, t_side, t_lots, t_in, t_out, t_pnl, t_cost, t_reason,
     skipped) = simulate(sig, opens, highs, lows, closes, sl, tp, modes[settings.sizing], sizing,
                         step_decimals(spec.volume_step), float(settings.initial_equity), float(settings.cost_rate),
                         settings.stop_loss is not None, settings.take_profit is not None)
    before = np.concatenate([[settings.initial_equity], equity[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(before > 0, 1.0 / before, 0.0)  # a wiped-out account earns no returns
    frame = pd.DataFrame({"signal": sig, "position": lots, "price_return": _exit_prices(opens, closes) / opens - 1.0,
                          "gross": pnl * per, "traded": traded * per, "cost": cost * per,
                          "net": np.where(before > 0, equity * per - 1.0, 0.0), "equity": equity,
                          "exposure": np.abs(lots) * value_per_price * opens * per}, index=bars.index)
    reasons = np.asarray(EXIT_REASONS, dtype=object)[t_reason]
    returns = (t_pnl - t_cost) * per[t_entry]
    held = t_exit - t_entry + (t_reason != 0)
    book = _table(bars.index, t_entry, t_exit, reasons == "end", t_side, t_lots, t_in, t_out, t_pnl, t_cost,
                  returns, held, reasons, bar_seconds)
    return frame, book, int(skipped)
