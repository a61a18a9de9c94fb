from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class BarSource(Protocol):
    """Anything that yields conforming bars for a symbol and timeframe."""

    def load_bars(self, symbol: str, timeframe: str) -> pd.DataFrame: ...

    def describe(self) -> str:
        """One line for logs and MLflow tags: where the bars came from."""
        ...
