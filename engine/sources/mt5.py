"""Bars from MetaTrader 5 over REST (``source=mt5``): the connector's client fetches them in chunks.

The connector is any object with the client's bar reads (engine.mt5.MT5RestClient has them); this module
does not import the MT5 adapter, so the simulator may read its data through engine.sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from engine import timeframes
from engine.data.frames import to_utc
from engine.errors import ConfigError, OperationalError


@runtime_checkable
class MT5BarClient(Protocol):
    """The reads of engine.mt5.MT5RestClient a bar source needs."""

    base_url: str

    def server_offset(self, symbol: str) -> pd.Timedelta: ...

    def latest_tick(self, symbol: str) -> dict[str, Any]: ...

    def bars_range(self, symbol: str, timeframe: str, start: str | pd.Timestamp, end: str | pd.Timestamp, *,
                   progress: bool = False) -> pd.DataFrame: ...

    def to_engine_bars(self, frame: pd.DataFrame, volume: str = "real") -> pd.DataFrame: ...


@dataclass
class MT5BarSource:
    """``start``/``end`` are UTC; ``end=None`` stops before the bar still forming at the server."""

    connector: MT5BarClient
    start: str
    end: str | None = None
    volume: str = "real"
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.connector, MT5BarClient):
            raise ConfigError("source.connector", "source=mt5 needs a connector: add connector=simulator or "
                                                  "connector=mt5_rest")

    def describe(self) -> str:
        return f"mt5:{self.connector.base_url}"

    def load_bars(self, symbol: str, timeframe: str) -> pd.DataFrame:
        tf = timeframes.parse(timeframe)
        if self.end is not None:
            end = to_utc(self.end)
        else:
            # The forming bar is incomplete: stop at its open (floored in server time, as MT5 cuts bars).
            offset = self.connector.server_offset(symbol)
            now = self.connector.latest_tick(symbol)["time"] + offset
            end = (now.floor(tf.pandas) if tf.mt5 not in ("W1", "MN1") else now.floor("1D")) - offset
        frame = self.connector.bars_range(symbol, tf.mt5, to_utc(self.start), end, progress=self.progress)
        if frame.empty:
            raise OperationalError(f"{self.describe()} returned no {symbol} {tf.mt5} bars between {self.start} and "
                                   f"{end.isoformat()}; check the symbol, the range and the terminal's history")
        return self.connector.to_engine_bars(frame, self.volume)
