"""Where the live loop's bars and time come from: closed bars of a broker feed, and the clocks that pace it.

A bar is closed when the broker's time has passed its end: the feed reads the latest bars and then the
latest tick, and keeps only bars with ``open + length <= tick time``. The bar still forming is never handed
out, whatever its values look like. Reading the tick after the bars matters: a bar that ends between the two
reads was complete when it was read.

Clocks say when to look again: :class:`PollClock` waits a fixed interval (a terminal, or a simulator whose
replay runs on its own), :class:`ReplayClock` moves an in-process simulator by one bar per look (paper
replays, the parity test, ``smoke=true``), paced or as fast as the loop goes.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

import pandas as pd

from engine.errors import ConfigError
from engine.timeframes import Timeframe

BAR_COLUMNS = ("open", "high", "low", "close", "volume")  # the bar contract (engine.data.frames)


class BarsClient(Protocol):
    """What the feed reads (engine.mt5.MT5RestClient satisfies it)."""

    max_bars: int

    def bars(self, symbol: str, timeframe: str, count: int, start_pos: int = 0) -> pd.DataFrame:
        """The latest ``count`` bars, oldest first; the last may be the one still forming."""
        ...

    def latest_tick(self, symbol: str) -> dict[str, Any]:
        """At least ``time`` (a UTC Timestamp), ``bid`` and ``ask``."""
        ...


class BrokerBarFeed:
    """Closed bars of ``symbol`` at ``timeframe`` from a broker, as engine bars (``open..close, volume``).

    ``volume``: ``real`` (the exchange volume; falls back to tick volume when the broker reports none, as CFD
    brokers do) or ``tick``. The features use the volume column, so it must be the kind the model was
    trained on.
    """

    def __init__(self, client: BarsClient, symbol: str, timeframe: Timeframe, *, volume: str = "real") -> None:
        if volume not in ("real", "tick"):
            raise ConfigError("task.volume", f"{volume!r}: use real or tick")
        self.client, self.symbol, self.timeframe, self.volume = client, symbol, timeframe, volume
        self.length = pd.Timedelta(seconds=timeframe.seconds)
        self.now: pd.Timestamp | None = None  # broker time (UTC) at the last read
        self.quote: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"BrokerBarFeed({self.symbol} {self.timeframe.mt5} from {self.client!r})"

    def closed_bars(self, count: int) -> pd.DataFrame:
        """Up to the last ``count`` closed bars, oldest first."""
        count = max(1, min(int(count), int(self.client.max_bars) - 1))
        frame = self.client.bars(self.symbol, self.timeframe.mt5, count + 1)
        self.quote = self.client.latest_tick(self.symbol)
        self.now = pd.Timestamp(self.quote["time"])
        if len(frame):
            frame = frame.loc[frame.index + self.length <= self.now]
        return self._engine_bars(frame.iloc[-count:])

    def closed_after(self, last: pd.Timestamp | None, most: int) -> pd.DataFrame:
        """Closed bars opening after ``last`` (all of the last ``most`` when None), oldest first."""
        if last is None or self.now is None:
            return self.closed_bars(most)
        behind = int((self.now - last) / self.length) + 2  # the bars since, and one to spare
        bars = self.closed_bars(min(max(behind, 2), most))
        return bars.loc[bars.index > last]

    def _engine_bars(self, frame: pd.DataFrame) -> pd.DataFrame:
        if "real_volume" not in frame.columns:  # already engine bars (a feed of engine frames)
            return frame.loc[:, list(BAR_COLUMNS)]
        real = frame["real_volume"]
        use_real = self.volume == "real" and bool((real > 0).any())
        out = frame.loc[:, ["open", "high", "low", "close"]].astype("float64")
        out["volume"] = (real if use_real else frame["tick_volume"]).astype("float64")
        return out


class Clock(Protocol):
    def wait(self, stop: threading.Event) -> bool:
        """Return when a new bar may have closed: True to look, False when no bar will come any more."""
        ...


class PollClock:
    """Look every ``interval`` seconds (until ``stop`` is set)."""

    def __init__(self, interval: float = 1.0) -> None:
        if interval <= 0:
            raise ConfigError("task.poll_interval", f"must be > 0 seconds, got {interval!r}")
        self.interval = float(interval)

    def wait(self, stop: threading.Event) -> bool:
        return not stop.wait(self.interval)


class Steppable(Protocol):
    def advance(self, bars: int = 1) -> int:
        """Move the replay ``bars`` one-minute bars forward; how many it moved."""
        ...


class ReplayClock:
    """Moves an in-process simulator one ``timeframe`` bar per look; ``pace`` seconds of wall time per bar
    (0: as fast as the loop consumes them). False once the data is exhausted."""

    def __init__(self, market: Steppable, timeframe: Timeframe, pace: float = 0.0) -> None:
        if timeframe.seconds % 60:
            raise ConfigError("timeframe", f"the simulator replays whole minutes; {timeframe.mt5} is not one")
        self.market, self.minutes, self.pace = market, timeframe.seconds // 60, max(float(pace), 0.0)
        self._due = time.monotonic()

    def wait(self, stop: threading.Event) -> bool:
        if self.pace:
            self._due += self.pace
            if stop.wait(max(self._due - time.monotonic(), 0.0)):
                return False
            self._due = max(self._due, time.monotonic() - self.pace)  # a slow loop does not build a backlog
        elif stop.is_set():
            return False
        return self.market.advance(self.minutes) == self.minutes


__all__ = ["BarsClient", "BrokerBarFeed", "Clock", "PollClock", "ReplayClock", "Steppable"]
