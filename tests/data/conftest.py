"""Real Binance BTC/USDT 1m bars for the data-transform tests (read once per session)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


def read_bars(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    df = df.set_index(pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), utc=True), name="timestamp"))
    return df.astype("float64")


@pytest.fixture(scope="session")
def week_bars(shared_data_dir: Path) -> pd.DataFrame:
    """10,080 real 1m bars, 2024-01-01..07, no gaps."""
    return read_bars(shared_data_dir / "btcusdt_binance_1m_2024-01-01_to_2024-01-07.csv")


@pytest.fixture(scope="session")
def outage_bars(shared_data_dir: Path) -> pd.DataFrame:
    """2023-03-23..25: the 80-minute Binance outage on 03-24 and the 72 zero-volume bars before it."""
    df = read_bars(shared_data_dir / "btcusdt_binance_1m_2023.csv.gz")
    return df.loc["2023-03-23":"2023-03-25"].copy()


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    """The bundled sample (always in the repo): the first 20,000 bars of 2024Q1."""
    path = Path(__file__).resolve().parents[2] / "data" / "sample" / "btcusdt_binance_1m_2024Q1.csv.gz"
    return read_bars(path).iloc[:20_000]
