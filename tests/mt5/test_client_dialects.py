"""MT5RestClient and the execution layer against all three servers (real HTTP on 127.0.0.1), the dialect
detected from /health: bars, ticks, positions, market orders, closes and history read alike; what the
quant-server bridge lacks is a clear error naming the route, and its lost answers are reconciled by the
position an order opened (or the exit deal a close added), never resent blind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from engine.errors import OperationalError, OrderStateUnknownError
from engine.mt5 import contract
from engine.mt5.client import MT5RestClient
from engine.mt5.dialect import ENGINE, QUANT_SERVER
from engine.trading.execution import close_position, order_comment, place_order
from tests.mt5.conftest import BridgeUnderTest

KINDS = ["simulator", "bridge", "quant_server"]


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


@pytest.fixture
def client(server: Any, make_client: Callable[..., MT5RestClient]) -> MT5RestClient:
    # The dialect is detected; the offset is given (the bridges' clocks are the wall clock, not the replay's).
    return make_client(server.url, server_time_offset_hours=2)


def test_the_dialect_is_detected_from_health(server: Any, client: MT5RestClient, request: Any) -> None:
    want = QUANT_SERVER if "quant_server" in request.node.callspec.id else ENGINE
    assert client.dialect == want


def test_bars_and_quotes_read_alike(client: MT5RestClient, simulator: Any,
                                    make_client: Callable[..., MT5RestClient]) -> None:
    want = make_client(simulator.url, dialect=ENGINE).bars_range("BTCUSD", "M5", "2024-02-01", "2024-02-02")
    got = client.bars_range("BTCUSD", "M5", "2024-02-01", "2024-02-02")
    cols = ["open", "high", "low", "close", "tick_volume", "spread"]
    pd.testing.assert_frame_equal(got[cols], want[cols])  # RFC 1123 or ISO times: the same UTC index
    assert len(client.bars("BTCUSD", "M1", 50)) == 50
    tick = client.latest_tick("BTCUSD")
    assert tick["ask"] > tick["bid"] and tick["time"].tzinfo is not None
    assert client.symbol_info("BTCUSD")["volume_step"] == 0.01


def test_orders_close_and_history(client: MT5RestClient) -> None:
    assert client.positions().empty
    opened = place_order(client, "BTCUSD", "buy", 0.1, magic=21)
    assert opened.retcode == contract.RETCODE_DONE and not opened.reconciled
    held = client.positions(magic=21)
    assert len(held) == 1 and held["comment"].iloc[0] == order_comment(opened.idempotency_key)
    ticket = int(held["ticket"].iloc[0])
    closed = close_position(client, ticket, volume=0.04)  # partial
    assert closed.retcode == contract.RETCODE_DONE
    assert client.positions()["volume"].iloc[0] == pytest.approx(0.06)
    deals = client.history_deals(position=ticket)
    assert list(deals["entry"]) == [contract.DEAL_ENTRY_IN, contract.DEAL_ENTRY_OUT]
    assert int(client.history_orders(ticket=opened.order)["state"].iloc[0]) == contract.ORDER_STATE_FILLED


def test_what_the_quant_server_lacks_is_a_clear_error(quant_server: BridgeUnderTest,
                                                      make_client: Callable[..., MT5RestClient]) -> None:
    client = make_client(quant_server.url, server_time_offset_hours=2)
    for call, route in ((client.account_info, "/account_info"), (client.orders, "/orders_get"),
                        (lambda: client.ticks_range("BTCUSD", "2024-02-01", "2024-02-01T00:10Z"), "/fetch_ticks_range"),
                        (client.history_deals, "/history_deals_get"),
                        (lambda: place_order(client, "BTCUSD", "buy", 0.1, kind="limit", price=1000.0), "POST /order")):
        with pytest.raises(OperationalError, match=route):
            call()
    assert quant_server.server.handled("POST", "/order") == 0  # the limit order was never sent as a market one


def test_a_lost_order_answer_on_the_quant_server_is_reconciled(quant_server: BridgeUnderTest,
                                                               make_client: Callable[..., MT5RestClient]) -> None:
    client = make_client(quant_server.url, server_time_offset_hours=2, read_timeout=0.3, order_retries=2)
    quant_server.server.stall_next, quant_server.server.stall_seconds = 1, 1.0
    res = place_order(client, "BTCUSD", "sell", 0.1, magic=31)
    assert res.reconciled and res.retcode == contract.RETCODE_DONE and res.deal > 0
    assert quant_server.server.handled("POST", "/order") == 1  # looked for, found, not resent
    assert len(client.positions()) == 1


def test_a_terminal_timeout_on_the_quant_server_is_reconciled(quant_server: BridgeUnderTest,
                                                              make_client: Callable[..., MT5RestClient]) -> None:
    client = make_client(quant_server.url, server_time_offset_hours=2)
    quant_server.mt5.state["next_order_send"] = "timeout_after"  # executed, answered 10012 in a 400
    res = place_order(client, "BTCUSD", "buy", 0.1, magic=32)
    assert res.reconciled and quant_server.server.handled("POST", "/order") == 1
    assert len(client.positions()) == 1


def test_a_lost_close_answer_on_the_quant_server_is_reconciled_by_the_exit_deal(
        quant_server: BridgeUnderTest, make_client: Callable[..., MT5RestClient]) -> None:
    client = make_client(quant_server.url, server_time_offset_hours=2, read_timeout=0.3)
    place_order(client, "BTCUSD", "buy", 0.2, magic=33)
    ticket = int(client.positions()["ticket"].iloc[0])
    quant_server.server.stall_next, quant_server.server.only_route = 1, "/close_position"
    res = close_position(client, ticket)
    assert res.reconciled and "exit deal" in res.comment
    assert quant_server.server.handled("POST", "/close_position") == 1
    assert client.positions().empty


def test_nothing_found_is_an_unknown_state_never_a_resend(quant_server: BridgeUnderTest,
                                                         make_client: Callable[..., MT5RestClient]) -> None:
    """That bridge has no Idempotency-Key, so a lost answer the look cannot find is never resent: the order
    may still be executing, or may have filled and been closed already, and a resend would place it twice.
    The caller gets OrderStateUnknownError ("check the terminal"), with one POST made."""
    client = make_client(quant_server.url, server_time_offset_hours=2, read_timeout=0.3, order_retries=1)
    quant_server.mt5.state["next_order_send"] = "none_before"  # a 500 there: was it executed? unknowable
    with pytest.raises(OrderStateUnknownError, match="keeps no idempotency keys"):
        place_order(client, "BTCUSD", "buy", 0.1, magic=34)
    assert quant_server.server.handled("POST", "/order") == 1 and client.positions().empty
    quant_server.server.stall_next, quant_server.server.only_route = 5, "/get_positions"
    quant_server.server.stall_seconds = 0.5
    quant_server.mt5.state["next_order_send"] = "none_before"
    with pytest.raises(OrderStateUnknownError, match="check the terminal"):
        place_order(client, "BTCUSD", "buy", 0.1, magic=35)
    assert quant_server.server.handled("POST", "/order") == 2  # the lookups failed: no second send
