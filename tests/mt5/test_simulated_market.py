"""The simulated market behind the contract, driven over real HTTP: the replay clock, fills at real
prices with spread, slippage and commission, limit orders and stops on closed bars."""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import pytest

from engine.mt5 import contract
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import SimSettings
from engine.trading.execution import close_position, place_order
from tests.mt5.conftest import REPLAY_START

PRICES = ["open", "high", "low", "close"]


def test_replay_advances_in_step_mode_and_at_speed(make_simulator: Callable[..., Simulator],
                                                   make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator()
    client = make_client(sim.url, server_time_offset_hours=2)
    t0 = client.latest_tick("BTCUSD")["time"]
    assert sim.advance(5) == 5
    assert client.latest_tick("BTCUSD")["time"] - t0 == pd.Timedelta(minutes=5)
    fast = make_simulator(settings=SimSettings(start=REPLAY_START, speed=3000.0))
    fast_client = make_client(fast.url, server_time_offset_hours=2)
    first = fast_client.latest_tick("BTCUSD")["time"]
    deadline = time.monotonic() + 5
    while fast_client.latest_tick("BTCUSD")["time"] == first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fast_client.latest_tick("BTCUSD")["time"] > first


def test_market_round_trip_moves_balance_by_the_real_price_change(make_simulator: Callable[..., Simulator],
                                                                  make_client: Callable[..., MT5RestClient],
                                                                  sample_bars: pd.DataFrame) -> None:
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, spread_points=1000, commission_per_lot=4.0))
    client = make_client(sim.url)
    opened = place_order(client, "BTCUSD", "buy", 0.5, magic=9)
    now = pd.Timestamp(REPLAY_START)
    assert opened.retcode == contract.RETCODE_DONE and opened.price == round(sample_bars.loc[now, "open"] + 10.0, 2)
    sim.advance(30)
    later = now + pd.Timedelta(minutes=30)
    account = client.account_info()
    floating = (sample_bars.loc[later, "open"] - opened.price) * 0.5
    assert account["equity"] == pytest.approx(10_000 - 2.0 + floating, abs=0.01)
    closed = close_position(client, int(client.positions()["ticket"].iloc[0]))
    assert closed.price == sample_bars.loc[later, "open"]
    assert client.account_info()["balance"] == pytest.approx(10_000 - 4.0 + floating, abs=0.01)
    deals = client.history_deals()
    assert list(deals["entry"]) == [contract.DEAL_ENTRY_IN, contract.DEAL_ENTRY_OUT]
    assert list(deals["time"]) == [now, later]  # server time converted back to UTC


def test_slippage_is_seeded_and_within_bounds(make_simulator: Callable[..., Simulator],
                                              make_client: Callable[..., MT5RestClient]) -> None:
    prices = []
    for _ in range(2):
        sim = make_simulator(settings=SimSettings(start=REPLAY_START, slippage_points=500, seed=3))
        client = make_client(sim.url)
        ask = client.latest_tick("BTCUSD")["ask"]
        fills = [place_order(client, "BTCUSD", "buy", 0.01).price for _ in range(5)]
        assert all(ask <= p <= ask + 5.0 for p in fills) and len(set(fills)) > 1
        prices.append(fills)
    assert prices[0] == prices[1]


def test_limit_order_fills_when_real_prices_reach_it(simulator: Simulator, client: MT5RestClient,
                                                     sample_bars: pd.DataFrame) -> None:
    spread = simulator.market.settings.spread_points * simulator.market.settings.point
    now = pd.Timestamp(REPLAY_START)
    future = sample_bars.loc[now:].iloc[:240]
    limit = round(float(future["low"].iloc[1:].min()) + spread + 1.0, 2)  # reached within 4 hours
    assert limit < future["open"].iloc[0] + spread
    placed = place_order(client, "BTCUSD", "buy", 0.1, kind="limit", price=limit, magic=5)
    assert placed.retcode == contract.RETCODE_PLACED
    hit = future.index[1:][(future["low"].iloc[1:] + spread <= limit).to_numpy()][0]
    steps = int((hit - now) / pd.Timedelta(minutes=1))
    simulator.advance(steps)  # the bar that reaches the limit is still forming: no fill yet
    assert client.positions().empty and len(client.orders()) == 1
    simulator.advance(1)
    pos = client.positions()
    assert len(pos) == 1 and pos["price_open"].iloc[0] <= limit and pos["magic"].iloc[0] == 5
    assert client.orders().empty


def test_stop_loss_closes_on_the_first_real_bar_that_reaches_it(simulator: Simulator, client: MT5RestClient,
                                                               sample_bars: pd.DataFrame) -> None:
    now = pd.Timestamp(REPLAY_START)
    future = sample_bars.loc[now:].iloc[:240]
    sl = round(float(future["low"].min()) + 0.5, 2)
    opened = place_order(client, "BTCUSD", "buy", 0.1, sl=sl, magic=3)
    hit = future.index[(future["low"] <= sl).to_numpy()][0]
    simulator.advance(int((hit - now) / pd.Timedelta(minutes=1)) + 1)
    assert client.positions().empty
    exit_deal = client.history_deals().iloc[-1]
    assert exit_deal["comment"] == "sl" and exit_deal["entry"] == contract.DEAL_ENTRY_OUT
    assert exit_deal["price"] == min(sl, future.loc[hit, "open"])
    assert exit_deal["time"] == hit + pd.Timedelta(seconds=59)
    assert exit_deal["profit"] == pytest.approx((exit_deal["price"] - opened.price) * 0.1, abs=0.01)


def test_step_on_poll_moves_one_bar_per_poll(make_simulator: Callable[..., Simulator],
                                             make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, step_on_poll=True))
    client = make_client(sim.url, server_time_offset_hours=2)
    first, second = client.bars("BTCUSD", "M1", 1), client.bars("BTCUSD", "M1", 1)
    assert second.index[-1] - first.index[-1] == pd.Timedelta(minutes=1)


def test_the_simulator_reads_the_same_sample_as_the_csv_source(sample_bars: pd.DataFrame) -> None:
    """The simulator reads its CSVs itself (sources sit above the MT5 adapter): same file, same bars."""
    from engine.mt5.sim.data import SAMPLE_BARS
    from engine.sources.csv import SAMPLE_PATH, CsvBarSource

    assert SAMPLE_BARS == SAMPLE_PATH
    pd.testing.assert_frame_equal(sample_bars, CsvBarSource(str(SAMPLE_PATH)).load_bars("BTCUSD", "M1"))
