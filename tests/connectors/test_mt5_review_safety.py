"""Review regressions: order identity for reconciliation, and transport retries that could resend a POST."""

from __future__ import annotations

import pandas as pd
import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from engine.connectors import contract as c
from engine.connectors.mt5_rest import MT5RestClient
from engine.connectors.simulator import DEV_TOKEN, Simulator
from engine.errors import ConfigError, InvalidRequestError, OrderRejectedError
from tests.connectors.conftest import REPLAY_START


def test_deterministic_keys_with_a_shared_prefix_get_distinct_comments(simulator: Simulator,
                                                                        client: MT5RestClient) -> None:
    """Signal-derived keys share long prefixes; a refused second order must not be 'found' as the first."""
    first = client.send_order("BTCUSD", "buy", 0.1, magic=9, idempotency_key="sig-BTCUSD-M1-2024-02-15T12:00")
    simulator.faults.fail_next, simulator.faults.only_route = 1, "/order"
    second = client.send_order("BTCUSD", "buy", 0.1, magic=9, idempotency_key="sig-BTCUSD-M1-2024-02-15T12:01")
    assert second.retcode == c.RETCODE_DONE and not second.reconciled
    assert second.deal != first.deal
    positions = client.positions()
    assert len(positions) == 2 and positions["comment"].nunique() == 2
    assert all(len(x) <= c.MAX_COMMENT for x in positions["comment"])


@pytest.mark.parametrize("retry", [Retry(total=3, allowed_methods=None), Retry(total=2, read=2, status=2,
                                                                              allowed_methods={"GET", "POST"})])
def test_a_session_whose_adapter_retries_posts_is_refused(simulator: Simulator, retry: Retry) -> None:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    with pytest.raises(ConfigError, match="max_retries"):
        MT5RestClient(simulator.url, DEV_TOKEN, session=session, server_time_offset_hours=2)
    session.close()


def test_a_session_retrying_only_connects_or_gets_is_accepted(simulator: Simulator) -> None:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=3, other=0, status_forcelist=[503])))
    session.mount("https://", HTTPAdapter(max_retries=Retry(connect=3, read=0, status=0, other=0,
                                                            allowed_methods=None)))
    with MT5RestClient(simulator.url, DEV_TOKEN, session=session, server_time_offset_hours=2) as cl:
        assert cl.account_info()["balance"] > 0
    session.close()


def test_cancel_of_an_order_that_filled_meanwhile_is_not_reported_as_cancelled(
        simulator: Simulator, client: MT5RestClient, sample_bars: pd.DataFrame) -> None:
    """A lost cancel answer reconciles by 'not pending any more'; a fill is also 'not pending'."""
    spread = simulator.market.s.spread_points * simulator.market.s.point
    now = pd.Timestamp(REPLAY_START)
    future = sample_bars.loc[now:].iloc[:240]
    limit = round(float(future["low"].iloc[1:].min()) + spread + 1.0, 2)
    placed = client.send_order("BTCUSD", "buy", 0.1, kind="limit", price=limit, magic=5)
    hit = future.index[1:][(future["low"].iloc[1:] + spread <= limit).to_numpy()][0]
    simulator.advance(int((hit - now) / pd.Timedelta(minutes=1)) + 1)
    assert client.orders().empty and len(client.positions()) == 1  # filled
    simulator.faults.fail_next, simulator.faults.only_route = 1, "/order"
    with pytest.raises(OrderRejectedError, match="filled"):
        client.cancel_order(placed.order)


def test_cancel_with_a_lost_answer_is_reconciled(simulator: Simulator, client: MT5RestClient) -> None:
    bid = client.latest_tick("BTCUSD")["bid"]
    placed = client.send_order("BTCUSD", "sell", 0.1, kind="limit", price=round(bid * 1.2, 2))
    simulator.faults.drop_next, simulator.faults.only_route = 1, "/order"
    res = client.cancel_order(placed.order)
    assert res.reconciled and res.retcode == c.RETCODE_DONE and client.orders().empty


def test_a_retrying_adapter_mounted_on_the_order_route_only_is_refused(simulator: Simulator) -> None:
    session = requests.Session()
    session.mount(simulator.url + "/order", HTTPAdapter(max_retries=Retry(total=2, allowed_methods=None)))
    with pytest.raises(ConfigError, match="max_retries"):
        MT5RestClient(simulator.url, DEV_TOKEN, session=session, server_time_offset_hours=2)
    session.close()


@pytest.mark.parametrize("call", [
    lambda cl: cl.send_order("BTCUSD", "buy", 0.1, price="cheap"),
    lambda cl: cl.send_order("BTCUSD", "buy", 0.1, sl=None),
    lambda cl: cl.send_order("BTCUSD", "buy", 0.1, magic="five"),
    lambda cl: cl.send_order("BTCUSD", "buy", 0.1, comment=123),
    lambda cl: cl.send_order("BTCUSD", "buy", 0.1, idempotency_key=42),
    lambda cl: cl.send_order("BTCUSD", "buy", 0.1, idempotency_key="  "),
    lambda cl: cl.close_position("abc"),
    lambda cl: cl.close_position(1, volume="all"),
    lambda cl: cl.cancel_order(None),
])
def test_bad_order_arguments_are_typed_errors_and_send_nothing(simulator: Simulator, client: MT5RestClient,
                                                               call) -> None:
    with pytest.raises(InvalidRequestError):
        call(client)
    assert client.positions().empty and client.orders().empty
