"""The ingestor's settings: one frozen dataclass, the source of the ``task=ingest`` config keys."""

from __future__ import annotations

from dataclasses import dataclass

from engine import timeframes
from engine.errors import ConfigError
from engine.fields import bounded, choice


@dataclass(frozen=True)
class IngestSettings:
    symbols: tuple[str, ...] = ("BTCUSD",)
    timeframes: tuple[str, ...] = ("M1",)  # closed bars of each; () for ticks only
    ticks: bool = True
    poll_interval: float = bounded(1.0, gt=0)  # seconds between polls of a series that is caught up
    batch_size: int = bounded(5_000, ge=1)  # rows: a buffer this full is written at once
    flush_interval: float = bounded(2.0, gt=0)  # seconds: buffers are written at least this often
    # All buffers together. At this size polling pauses (the rows wait at the source, which keeps its history)
    # until writes succeed again: nothing is ever dropped.
    max_buffer_rows: int = bounded(500_000, ge=1)
    start: str | None = None  # UTC start of a series the store does not hold yet; None = lookback before now
    lookback: str = "1h"
    tick_span: str = "10min"  # longest tick window asked for in one request
    bar_volume: str = choice("real", ("real", "tick"))  # MT5 real_volume or tick_volume becomes the bar volume
    backoff_base: float = bounded(0.2, gt=0)  # seconds; doubles per consecutive failure
    backoff_cap: float = bounded(10.0, gt=0)
    log_interval: float = bounded(30.0, gt=0)  # seconds between counter lines in the log

    def __post_init__(self) -> None:
        import pandas as pd  # here, not at the top: the task config schema is generated from these fields

        if not self.symbols:
            raise ConfigError("task.symbols", "name at least one symbol")
        for tf in self.timeframes:
            if timeframes.parse(tf, "task.timeframes").mt5 in ("W1", "MN1"):
                raise ConfigError("task.timeframes", f"{tf}: weekly and monthly bars are not ingested live")
        if not self.ticks and not self.timeframes:
            raise ConfigError("task.ticks", "nothing to ingest: set ticks=true or name timeframes")
        if self.bar_volume not in ("real", "tick"):
            raise ConfigError("task.bar_volume", f"use 'real' or 'tick', not {self.bar_volume!r}")
        for key in ("lookback", "tick_span"):
            try:
                ok = pd.Timedelta(getattr(self, key)) > pd.Timedelta(0)
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(f"task.{key}", f"{getattr(self, key)!r} is not a positive duration such as '10min'")
        if self.start is not None:
            try:
                pd.Timestamp(self.start)
            except ValueError:
                raise ConfigError("task.start", f"{self.start!r} is not a date/time") from None
