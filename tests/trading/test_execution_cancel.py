"""Cancelling a pending order (engine.trading.execution) over real HTTP against the simulator: a lost
answer counts as cancelled only if the history says so, never when the order filled meanwhile."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.errors import OrderRejectedError
from engine.mt5 import contract
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.trading.execution import cancel_order, place_order
from tests.mt5.conftest import REPLAY_START


def test_cancel_pending_order(client: MT5RestClient) -> None:
    bid = client.latest_tick("BTCUSD")["bid"]
    placed = place_order(client, "BTCUSD", "sell", 0.1, kind="limit", price=round(bid * 1.2, 2))
    assert len(client.orders()) == 1
    assert cancel_order(client, placed.order).retcode == contract.RETCODE_DONE
    assert client.orders().empty
    with pytest.raises(OrderRejectedError):
        cancel_order(client, placed.order)


def test_cancel_of_an_order_that_filled_meanwhile_is_not_reported_as_cancelled(
        simulator: Simulator, client: MT5RestClient, sample_bars: pd.DataFrame) -> None:
    """A lost cancel answer reconciles by 'not pending any more'; a fill is also 'not pending'."""
    spread = simulator.market.settings.spread_points * simulator.market.settings.point
    now = pd.Timestamp(REPLAY_START)
    future = sample_bars.loc[now:].iloc[:240]
    limit = round(float(future["low"].iloc[1:].min()) + spread + 1.0, 2)
    placed = place_order(client, "BTCUSD", "buy", 0.1, kind="limit", price=limit, magic=5)
    hit = future.index[1:][(future["low"].iloc[1:] + spread <= limit).to_numpy()][0]
    simulator.advance(int((hit - now) / pd.Timedelta(minutes=1)) + 1)
    assert client.orders().empty and len(client.positions()) == 1  # filled
    simulator.faults.fail_next, simulator.faults.only_route = 1, "/order"
    with pytest.raises(OrderRejectedError, match="filled"):
        cancel_order(client, placed.order)


def test_cancel_with_a_lost_answer_is_reconciled(simulator: Simulator, client: MT5RestClient) -> None:
    bid = client.latest_tick("BTCUSD")["bid"]
    placed = place_order(client, "BTCUSD", "sell", 0.1, kind="limit", price=round(bid * 1.2, 2))
    simulator.faults.drop_next, simulator.faults.only_route = 1, "/order"
    res = cancel_order(client, placed.order)
    assert res.reconciled and res.retcode == contract.RETCODE_DONE and client.orders().empty
