"""Timeframe names: MT5 travels as ``M1``/``H1``; pandas resamples with ``1min``/``1h``.

Both spellings are accepted everywhere a timeframe is configured; ``parse`` returns the canonical
:class:`Timeframe`. ``MN1`` (calendar month) has no fixed length and is accepted only where a fixed
duration is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from engine.errors import ConfigError


@dataclass(frozen=True)
class Timeframe:
    mt5: str
    pandas: str
    seconds: int

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)


_ALL = (
    Timeframe("M1", "1min", 60),
    Timeframe("M2", "2min", 120),
    Timeframe("M3", "3min", 180),
    Timeframe("M5", "5min", 300),
    Timeframe("M10", "10min", 600),
    Timeframe("M15", "15min", 900),
    Timeframe("M30", "30min", 1800),
    Timeframe("H1", "1h", 3600),
    Timeframe("H4", "4h", 14400),
    Timeframe("D1", "1D", 86400),
    Timeframe("W1", "7D", 604800),
    Timeframe("MN1", "MS", 2_592_000),
)
_BY_NAME = {tf.mt5.upper(): tf for tf in _ALL} | {tf.pandas.upper(): tf for tf in _ALL}
# Common pandas aliases users type.
_BY_NAME |= {"1T": _BY_NAME["M1"], "5T": _BY_NAME["M5"], "15T": _BY_NAME["M15"], "30T": _BY_NAME["M30"],
             "60MIN": _BY_NAME["H1"], "1H": _BY_NAME["H1"], "4H": _BY_NAME["H4"], "1D": _BY_NAME["D1"]}

NAMES = tuple(tf.mt5 for tf in _ALL)


def parse(name: str, key: str = "timeframe") -> Timeframe:
    """Return the timeframe for an MT5 (``M5``) or pandas (``5min``) name; ConfigError otherwise."""
    tf = _BY_NAME.get(str(name).strip().upper())
    if tf is None:
        raise ConfigError(key, f"unknown timeframe {name!r}; use one of {', '.join(NAMES)} (or 1min, 5min, 1h, ...)")
    return tf
