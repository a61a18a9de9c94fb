"""The paper/live trading loop: closed bar -> incremental features -> model -> signal -> RiskManager -> order.

For each closed bar of the feed (never the one still forming), in order:

1. the features are updated incrementally (:mod:`engine.data.incremental`) and the model gives class
   probabilities; the signal is the backtest's (:func:`engine.trading.signals.signals_from_proba`);
2. the broker's positions are read (reconciliation): positions that vanished since the last look were closed
   by a stop-loss / take-profit, by this loop or by someone else; their profit is booked with the RiskManager
   and a stop keeps the stopped side out until the signal changes, as in the backtest. One whose closing deal
   is not in the broker's history yet blocks new entries until it is found (:mod:`engine.trading.live_settle`);
3. :func:`engine.trading.signals.order_intent` (the backtest kernel's ``decide``) says what to do at the next
   open; a fresh bar's intent is executed (:mod:`engine.trading.live_orders`), reconciling after every order.

Everything is recorded in the audit trail (:mod:`engine.trading.audit`), one atomic append per step (plus a
write-ahead of each order request). A restart resumes after the last completed bar: bars that closed while
the loop was down update the features but are not traded (their next open has passed), and order requests
that never got an answer are looked for at the broker, never resent. A stop request (SIGTERM, Ctrl-C) is
honoured between bars; ``flatten_on_stop`` then closes this strategy's positions.

Pure over small protocols (Clock, BarFeed, LiveBroker, RiskGate, AuditStore): no Hydra, no HTTP here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from engine.errors import DataQualityError, EngineError, RetryableError
from engine.trading.audit import AuditLog
from engine.trading.backtest import BacktestSettings
from engine.trading.execution import DEFAULT_DEVIATION, DEFAULT_MAGIC
from engine.trading.live_feed import Clock
from engine.trading.live_orders import LiveBroker, OrderDesk, RiskGate
from engine.trading.live_settle import Settlement
from engine.trading.positions import Closed, Holding, holding
from engine.trading.signals import class_probabilities, order_intent, signals_from_proba

log = logging.getLogger("engine.trading.live")


class Predictor(Protocol):
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities [n, k], classes ordered down .. up."""
        ...


class FeatureState(Protocol):
    """engine.data.incremental.IncrementalFeatures."""

    names: list[str]

    def update(self, time: pd.Timestamp, bar: Mapping[str, float]) -> np.ndarray: ...

    def model_input(self) -> np.ndarray | None: ...


class BarIndicator(Protocol):
    """An indicator updated one bar at a time (engine.data.indicator_state.Atr: the ATR of ATR stops)."""

    def update(self, high: float, low: float, close: float) -> float: ...


class _NoIndicator:
    def update(self, high: float, low: float, close: float) -> float:
        return math.nan


class BarFeed(Protocol):
    """engine.trading.live_feed.BrokerBarFeed."""

    now: pd.Timestamp | None

    def closed_bars(self, count: int) -> pd.DataFrame: ...

    def closed_after(self, last: pd.Timestamp | None, most: int) -> pd.DataFrame: ...


@dataclass(frozen=True)
class LiveSettings:
    symbol: str = "BTCUSD"
    bar_seconds: int = 60
    session: str = "default"  # names the audit trail and the risk state of this strategy instance
    magic: int = DEFAULT_MAGIC
    deviation: int = DEFAULT_DEVIATION
    warmup: int = 2_000  # closed bars loaded before trading starts
    max_signal_age: float | None = None  # seconds after its close a bar may still trade; None = half a bar
    flatten_on_stop: bool = False
    heartbeat_seconds: float = 10.0
    # A position gone without its closing deal in the history blocks entries until booked; after this long
    # (broker time) an ERROR names the operator's command, and again every as long (engine.trading.live_settle).
    unsettled_alarm_seconds: float = 900.0
    max_bars: int | None = None  # end by itself after this many bars (smoke runs, tests)
    # After the warm-up, move every object alive (model, history, feature state) out of the garbage
    # collector's scans: a full collection over them would land on some bar's latency. Process-wide:
    # for a process that runs one session (task=live), not for a library caller.
    freeze_gc: bool = False

    @property
    def signal_age(self) -> float:
        return self.bar_seconds / 2 if self.max_signal_age is None else float(self.max_signal_age)


@dataclass
class Heartbeat:
    wall: dt.datetime
    last_bar: pd.Timestamp | None
    position: float  # net lots of this strategy (+ long, - short)
    equity: float
    lag_seconds: float  # broker time now minus the last processed bar's close
    state: str  # the RiskManager's status, and the loop's when it is not running normally
    bars: int
    orders: int

    def line(self) -> str:
        last = "-" if self.last_bar is None else self.last_bar.strftime("%Y-%m-%d %H:%M")
        return (f"heartbeat {self.wall:%H:%M:%S} last bar {last} lag {self.lag_seconds:5.1f}s position "
                f"{self.position:+.2f} equity {self.equity:,.2f} state {self.state} bars {self.bars} "
                f"orders {self.orders}")


@dataclass
class LiveStats:
    bars: int = 0
    decisions: int = 0  # bars with a model decision (features complete)
    stale_bars: int = 0  # processed after their trading window (catch-up after a restart)
    stops: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, closed bar in hand -> order request


class LiveLoop:
    """One strategy instance trading one symbol at one bar size. Build, then :meth:`run` until ``stop``."""

    def __init__(self, *, settings: LiveSettings, decision: BacktestSettings,
                 features: Callable[[pd.DataFrame], FeatureState], model: Predictor, feed: BarFeed, clock: Clock,
                 broker: LiveBroker, risk: RiskGate, audit: AuditLog,
                 atr: BarIndicator | None = None, on_heartbeat: Callable[[Heartbeat], None] | None = None,
                 timer: Callable[[], float] = time.perf_counter, describe: Mapping[str, Any] | None = None) -> None:
        self.settings, self.decision = settings, decision
        self._make_features, self.model, self.feed, self.clock = features, model, feed, clock
        self.broker, self.risk, self.audit = broker, risk, audit
        self.on_heartbeat, self.timer, self.describe = on_heartbeat, timer, dict(describe or {})
        self.stats = LiveStats()
        self._t0 = 0.0
        self._timed = False
        self.orders = OrderDesk(broker, risk, audit, symbol=settings.symbol, session=settings.session,
                                magic=settings.magic, deviation=settings.deviation, decision=decision,
                                on_sent=self._sent)
        self.features: FeatureState | None = None
        if decision.uses_atr and atr is None:
            raise EngineError("stop_unit=atr needs an ATR state (engine.data.indicator_state.Atr)")
        self.atr = atr if atr is not None else _NoIndicator()
        self.tickets: dict[int, int] = {}  # our positions at the last reconcile: ticket -> side
        self.settlement = Settlement(broker, risk, audit, symbol=settings.symbol, session=settings.session,
                                     alarm_seconds=settings.unsettled_alarm_seconds, now=self._broker_now)
        self.stopped = 0
        self.last_time: pd.Timestamp | None = None
        self.holding = Holding()
        self.equity = math.nan
        self._beat = 0.0
        self.state = "starting"

    # -- life cycle --------------------------------------------------------------------------------------
    def start(self) -> list[tuple[pd.Timestamp, dict[str, float]]]:
        """Take over the session's trail, reconcile with the broker and warm the features up; returns the
        bars that closed after the last completed one (a restart's catch-up)."""
        resume = self.audit.resume()
        self.stopped, self.tickets = resume.stopped, dict(resume.tickets)
        self.settlement.unsettled = dict(resume.unsettled)
        self.orders.unheld = dict(resume.unheld_orders)
        history = self.feed.closed_bars(self.settings.warmup)
        if not len(history):
            raise EngineError("the feed has no closed bars to warm up from")
        catch_up = history.iloc[0:0]
        if resume.last_done is not None:
            done = pd.Timestamp(resume.last_done)
            catch_up, history = history.loc[history.index > done], history.loc[history.index <= done]
            if not len(history):  # down for longer than the warm-up: start afresh on what there is
                history, catch_up = catch_up, catch_up.iloc[0:0]
        self.audit.add("session_start", None, settings=asdict(self.settings), decision=asdict(self.decision),
                       resumed_after=resume.last_done, in_flight=len(resume.in_flight), warmup_bars=len(history),
                       catch_up_bars=len(catch_up), **self.describe)
        for request in resume.in_flight:
            self.orders.resolve(request)
        self.orders.recheck(None)
        self.features = self._make_features(history)
        for row in history.itertuples():
            self.atr.update(row.high, row.low, row.close)
        self.last_time = history.index[-1]
        self._stops(self.settlement.recheck(None))
        self.reconcile(None, why="start")
        self.audit.flush()
        if self.settings.freeze_gc:
            gc.collect()
            gc.freeze()
        self.state = "running"
        return _rows(catch_up)

    def run(self, stop: threading.Event) -> LiveStats:
        """Trade until ``stop`` is set, the clock ends or ``max_bars`` bars were processed."""
        reason = "stop requested"
        try:
            for when, bar in self.start():
                if stop.is_set():
                    break
                self.on_bar(when, bar)
            while not stop.is_set() and not self._enough():
                if not self.clock.wait(stop):
                    reason = "stop requested" if stop.is_set() else "the feed has no more bars"
                    break
                try:
                    fresh = self.feed.closed_after(self.last_time, self.settings.warmup)
                except RetryableError as exc:
                    self.stats.errors += 1
                    self.state = "feed unreachable"
                    log.warning("feed: %s; retrying at the next look", exc)
                    continue
                for when, bar in _rows(fresh):
                    if stop.is_set() or self._enough():
                        break
                    self.on_bar(when, bar)
                self._heartbeat()
            else:
                reason = "stop requested" if stop.is_set() else f"max_bars={self.settings.max_bars} reached"
        except BaseException as exc:
            reason = f"failed: {type(exc).__name__}"
            raise
        finally:
            self.finish(reason)
        return self.stats

    def _enough(self) -> bool:
        return self.settings.max_bars is not None and self.stats.bars >= self.settings.max_bars

    def finish(self, reason: str) -> None:
        """The last step: flatten when configured, record the session's end. Nothing half-written is left:
        the step in progress when a stop arrived has completed before this runs."""
        self.state = "stopping"
        try:
            if self.settings.flatten_on_stop and self.features is not None:
                when = self.last_time.to_pydatetime() if self.last_time is not None else None
                current = self.reconcile(when, why="flatten")
                if current.tickets and when is not None:
                    self.orders.close(when, current, action="flatten")
                    self.reconcile(when, why="after flatten")
            self.audit.add("session_stop", None, reason=reason, bars=self.stats.bars, decisions=self.stats.decisions,
                           **self.orders.counts, stops=self.stats.stops, errors=self.stats.errors)
        finally:
            self.audit.flush()
        self.state = "stopped"
        log.info("live session %s stopped (%s) after %d bars", self.settings.session, reason, self.stats.bars)

    # -- one bar -------------------------------------------------------------------------------------------
    def on_bar(self, when: pd.Timestamp, bar: Mapping[str, float]) -> None:
        """The whole step of one closed bar; its records are appended at once when it ends."""
        self._t0 = self.timer()
        at = when.to_pydatetime()
        assert self.features is not None, "start() first"
        fresh = self._fresh(when)
        values = {k: float(bar[k]) for k in ("open", "high", "low", "close", "volume")}
        self.audit.add("bar", at, **values, fresh=fresh)
        self.last_time = when
        self.stats.bars += 1
        self.stats.stale_bars += not fresh
        self._timed = False
        try:
            self.features.update(when, values)
        except DataQualityError as exc:  # an impossible bar: never fed to the model, recorded, skipped
            self.stats.errors += 1
            self.audit.add("bar_done", at, seconds=self.timer() - self._t0, rejected=str(exc))
            self.audit.flush()
            return
        atr = self.atr.update(values["high"], values["low"], values["close"])
        try:
            self._decide_and_trade(at, atr, fresh)
            self.state = "running"
        except EngineError as exc:  # the broker or the model failed this step: record it, try the next bar
            self.stats.errors += 1
            self.state = "degraded"
            self.audit.add("reconcile", at, why="step failed", error=f"{type(exc).__name__}: {exc}",
                           tickets={str(t): s for t, s in self.tickets.items()}, **self.orders.describe())
            log.error("step of bar %s failed: %s", when, exc)
        self.audit.add("bar_done", at, seconds=self.timer() - self._t0)
        self.audit.flush()

    def _decide_and_trade(self, at: dt.datetime, atr: float, fresh: bool) -> None:
        if self.risk.unresolved_orders() or self.orders.unheld:  # an order of unknown fate blocks entries
            self.orders.recheck(at)
        self._stops(self.settlement.recheck(at))  # so does a closed position not booked yet
        x = self.features.model_input()
        p_up = p_down = math.nan
        signal = math.nan
        if x is not None:
            p_up_a, p_down_a = class_probabilities(np.asarray(self.model.predict_proba(x), dtype="float64"))
            signal = float(signals_from_proba(p_up_a, p_down_a, self.decision)[0])
            p_up, p_down = float(p_up_a[0]), float(p_down_a[0])
            self.stats.decisions += 1
        current = self.reconcile(at, why="bar")
        before = self.stopped
        intent = order_intent(current.side, signal, self.stopped)
        self.stopped = intent.stopped
        self.audit.add("decision", at, signal=signal, p_up=p_up, p_down=p_down, held=current.side,
                       close_held=intent.close_held, open_side=intent.open_side, stopped_before=before,
                       stopped_after=intent.stopped, reason=intent.reason, fresh=fresh,
                       executed=fresh and (intent.close_held or bool(intent.open_side)))
        if not fresh or not (intent.close_held or intent.open_side):
            return
        if intent.close_held:
            self.orders.close(at, current)
            current = self.reconcile(at, why="after close")
            if current.side != 0:
                self.audit.add("risk_refusal", at, side=intent.open_side, volume=0.0,
                               reason="the held position could not be closed; no new entry this bar")
                return
        if intent.open_side:
            self.orders.open(at, intent.open_side, abs(signal), atr)
            self.reconcile(at, why="after open")

    def _fresh(self, when: pd.Timestamp) -> bool:
        now = self.feed.now
        if now is None:
            return False
        age = (now - when).total_seconds() - self.settings.bar_seconds
        return age <= self.settings.signal_age

    def _sent(self) -> None:
        if not self._timed:  # the first order request of a bar: what the latency budget is about
            self.stats.latencies.append(self.timer() - self._t0)
            self._timed = True

    # -- reconciliation --------------------------------------------------------------------------------------
    def reconcile(self, at: dt.datetime | None, why: str) -> Holding:
        """Read this strategy's positions from the broker; settle the ones that vanished."""
        current = holding(self.broker.positions(self.settings.symbol), self.settings.symbol, self.settings.magic)
        vanished = {t: s for t, s in self.tickets.items() if t not in current.tickets}
        if vanished:
            self._stops(self.settlement.settle(at, vanished, self.holding))
        self.tickets = {**current.tickets, **self.settlement.unsettled}
        self.holding = current
        self.audit.add("reconcile", at, why=why, **current.describe(), **self.settlement.describe(),
                       **self.orders.describe())
        return current

    def _stops(self, closed: list[Closed]) -> None:
        for position in closed:  # a stopped side is not re-entered until the signal leaves it
            self.stopped = position.side
            self.stats.stops += 1

    def _broker_now(self) -> pd.Timestamp:
        return self.feed.now or pd.Timestamp.now(tz="UTC")  # a stop hit early in a long outage is booked too

    # -- heartbeat --------------------------------------------------------------------------------------------
    def heartbeat(self) -> Heartbeat:
        with contextlib.suppress(EngineError, KeyError, TypeError, ValueError):  # the last known equity then
            self.equity = float(self.broker.account_info()["equity"])
        risk_state = str(self.risk.get_risk_metrics().get("state", "UNKNOWN"))
        now, last = self.feed.now, self.last_time
        lag = (now - last).total_seconds() - self.settings.bar_seconds if now is not None and last is not None \
            else math.nan
        state = risk_state if self.state == "running" else f"{risk_state}/{self.state}"
        return Heartbeat(dt.datetime.now(dt.UTC), last, self.holding.net, self.equity, lag, state, self.stats.bars,
                         self.orders.counts["orders"])

    def _heartbeat(self) -> None:
        if self.on_heartbeat is None:
            return
        now = time.monotonic()
        if now - self._beat >= self.settings.heartbeat_seconds:
            self._beat = now
            self.on_heartbeat(self.heartbeat())


def _rows(bars: pd.DataFrame) -> list[tuple[pd.Timestamp, dict[str, float]]]:
    """(open time, OHLCV) per bar: plain dicts, not Series (a Series lookup per value costs more than the
    whole feature update)."""
    return list(zip(bars.index, bars.to_dict("records"), strict=True))


__all__ = ["BarFeed", "BarIndicator", "FeatureState", "Heartbeat", "LiveLoop", "LiveSettings", "LiveStats", "Predictor"]
