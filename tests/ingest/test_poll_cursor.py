"""The poll cursor never skips a row and never takes one twice, whatever shape the answers come in.

The feed here is an in-memory implementation of the Feed protocol over a fixed tick/bar set, answering the
way the REST contract does (whole-second request times, rows in ``[start, end)`` after the client's filter),
with the answer faults of a real bridge switched on per test: prefixes of the rows, spurious empty answers
(a hiccup the next request does not repeat: the poll asks twice before it steps over an empty window), rows
sent twice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.ingest.poll import Series, poll_bars, poll_ticks

T0 = pd.Timestamp("2024-03-05 00:00", tz="UTC")


class ListFeed:
    max_bars = 7

    def __init__(self, ticks: pd.DataFrame, seed: int = 0, truncate: float = 0.0, empty: float = 0.0,
                 repeat: float = 0.0) -> None:
        self.ticks, self.rng = ticks, np.random.default_rng(seed)
        self.truncate, self.empty, self.repeat = truncate, empty, repeat
        self.now = ticks.index[-1]
        self.requests = 0
        self.hiccup = False

    def latest_tick(self, symbol: str) -> dict:
        return {"time": self.now}

    def server_offset(self, symbol: str = "BTCUSD") -> pd.Timedelta:
        return pd.Timedelta(hours=2)

    def _answer(self, rows: pd.DataFrame) -> pd.DataFrame:
        self.requests += 1
        # A spurious empty answer (a bridge hiccup) is not repeated by the very next request.
        hiccup = len(rows) and not self.hiccup and self.rng.random() < self.empty
        self.hiccup = bool(hiccup)
        if hiccup:
            return rows.iloc[:0]
        if len(rows) > 1 and self.rng.random() < self.truncate:
            rows = rows.iloc[: self.rng.integers(1, len(rows))]
        if len(rows) and self.rng.random() < self.repeat:
            rows = pd.concat([rows, rows.iloc[[0]]]).sort_index(kind="stable")
        return rows

    def ticks_range(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        # The server reads whole seconds (from start's second to end's last millisecond, up to now); the
        # client keeps [start, end): rows the server sends before ``start`` are dropped after truncation.
        served = self.ticks.loc[(self.ticks.index >= start.floor("s"))
                                & (self.ticks.index < end.floor("s") + pd.Timedelta(seconds=1))
                                & (self.ticks.index <= self.now)]
        answer = self._answer(served)
        return answer.loc[(answer.index >= start) & (answer.index < end)]

    def bars_range(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        bid = self.ticks.loc[self.ticks.index <= self.now, "bid"]
        bars = bid.resample("1min").ohlc().dropna()
        bars["real_volume"] = bid.resample("1min").count()
        return self._answer(bars.loc[(bars.index >= start) & (bars.index < end)])


def ticks(n: int = 3_000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ms = np.sort(rng.integers(0, 40 * 60_000, n))  # crowded milliseconds and seconds
    ms[1::7] = ms[0::7][: len(ms[1::7])]  # every 7th pair shares a millisecond
    index = T0 + pd.to_timedelta(np.sort(ms), unit="ms")
    bid = (60_000 + rng.normal(0, 5, n)).round(2)
    return pd.DataFrame({"bid": bid, "ask": bid + 1.0, "volume": rng.integers(0, 3, n) / 10.0},
                        index=pd.DatetimeIndex(index, name="timestamp"))


def drain_ticks(feed: ListFeed, span: str = "2min", polls: int = 5_000) -> pd.DataFrame:
    series = Series("BTCUSD", None, cursor=T0 - pd.Timedelta(microseconds=1))
    taken = []
    for _ in range(polls):
        polled = poll_ticks(feed, series, feed.now, span)
        taken.append(polled.rows)
        if polled.caught_up and series.cursor >= feed.now and not len(polled.rows):
            break
    return pd.concat(taken)


def same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    order = ["timestamp", "bid", "ask", "volume"]
    a = got[["bid", "ask", "volume"]].reset_index().sort_values(order, ignore_index=True)
    b = want.reset_index().drop_duplicates().sort_values(order, ignore_index=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


@pytest.mark.parametrize("faults", [{}, {"truncate": 0.5}, {"empty": 0.3}, {"repeat": 0.5},
                                    {"truncate": 0.4, "empty": 0.2, "repeat": 0.3}])
def test_ticks_are_taken_once_each_under_answer_faults(faults: dict) -> None:
    source = ticks()
    feed = ListFeed(source, seed=3, **faults)
    same_rows(drain_ticks(feed), source)


def test_a_live_feed_is_followed_without_gaps_or_repeats() -> None:
    source = ticks(seed=4)
    feed = ListFeed(source, seed=4, truncate=0.3, empty=0.1)
    series = Series("BTCUSD", None, cursor=T0 - pd.Timedelta(microseconds=1))
    taken = []
    for now in pd.date_range(T0, source.index[-1] + pd.Timedelta(seconds=5), freq="5s"):
        feed.now = now  # the feed's clock moves; rows appear as it passes them
        for _ in range(20):
            polled = poll_ticks(feed, series, now, "1min")
            taken.append(polled.rows)
            if polled.caught_up and not len(polled.rows):
                break
    same_rows(pd.concat(taken), source)


def test_only_closed_bars_are_taken_and_each_once() -> None:
    source = ticks(seed=5)
    feed = ListFeed(source, seed=5, truncate=0.5, empty=0.2)
    feed.now = source.index[-1]
    series = Series("BTCUSD", "M1", cursor=T0 - pd.Timedelta(minutes=1))
    taken = []
    for _ in range(500):
        polled = poll_bars(feed, series, feed.now, "real")
        taken.append(polled.rows)
        if polled.caught_up:
            break
    bars = pd.concat(taken)
    forming = feed.now.floor("1min")
    assert bars.index.is_unique and bars.index.max() == forming - pd.Timedelta(minutes=1)
    assert list(bars.index) == list(pd.date_range(T0, forming - pd.Timedelta(minutes=1), freq="1min"))
    assert feed.requests > len(bars) / feed.max_bars  # a chunk per request, never one request for all
