"""Bars from MetaTrader 5 over REST (``source=mt5``): the connector's client fetches them in chunks."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from engine import timeframes
from engine.connectors.mt5_rest import MT5RestClient
from engine.data.frames import to_utc
from engine.errors import ConfigError, OperationalError


@dataclass
class MT5BarSource:
    """``start``/``end`` are UTC; ``end=None`` stops before the bar still forming at the server."""

    connector: MT5RestClient
    start: str
    end: str | None = None
    volume: str = "real"
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.connector, MT5RestClient):
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
        return MT5RestClient.to_engine_bars(frame, self.volume)
