"""Lookahead guards of the research dataset (task=train / task=explain share ``build_dataset``)."""

from __future__ import annotations

import pandas as pd
import pytest
from rich.console import Console

from engine.errors import ConfigError

QUIET = Console(quiet=True)


def test_a_cleaner_that_judges_bars_with_later_bars_is_refused(compose_job) -> None:
    from engine.tasks.train import build_dataset

    cfg = compose_job(["+experiment=xgb_1m", "smoke=true", "tracking=off", "cleaner.causal=false"])
    with pytest.raises(ConfigError) as err:
        build_dataset(cfg, QUIET)
    assert err.value.key == "cleaner.causal"


@pytest.mark.parametrize(("end", "last_complete"), [
    ("2024-03-31T23:57:00Z", "2024-03-31 23:50"),  # data ends two minutes into the 23:55 bar
    ("2024-03-31T23:55:00Z", "2024-03-31 23:50"),  # data ends exactly on a bar boundary
])
def test_resampled_bars_end_with_the_last_complete_bar(compose_job, end: str, last_complete: str) -> None:
    from engine.config.build import build
    from engine.data.cleaning import DataCleaner
    from engine.sources.csv import CsvBarSource
    from engine.tasks.train import build_dataset

    cfg = compose_job(["+experiment=lstm_5m", "smoke=true", "tracking=off", f"source.end='{end}'"])
    data = build_dataset(cfg, QUIET)
    raw = build(cfg.source, CsvBarSource, key="source").load_bars("BTCUSD", "M1")
    assert raw.index[-1] == pd.Timestamp(end) - pd.Timedelta(minutes=1)
    assert build(cfg.cleaner, DataCleaner, key="cleaner").causal
    stamp = pd.Timestamp(last_complete, tz="UTC")
    # a bar whose minutes are not all in yet is not a bar: its close is not the 5-minute close, and a
    # label reaching it would be the return to some minute inside the bar
    assert data.bars.index[-1] == stamp
    assert data.bars["close"].iloc[-1] == raw.loc[stamp + pd.Timedelta(minutes=4), "close"]
