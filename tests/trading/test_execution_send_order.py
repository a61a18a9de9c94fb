"""The seed's ``send_order`` (engine.trading.execution) over real HTTP against the simulator: every path
returns the seed's result dict, and the simulator's order book is checked afterwards."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
import requests

from engine.mt5 import MT5RestClient, contract
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from engine.trading.execution import MAX_REPRICES, send_order
from tests.mt5.conftest import REPLAY_START, wait_until


def _book(sim: Simulator) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(positions, pending orders, deals) straight from the simulated terminal."""
    from datetime import datetime

    market = sim.market
    return market.positions(None), market.orders(None), market.history_deals(datetime(1970, 1, 2),
                                                                              datetime(2100, 1, 1))


def test_the_seed_example_runs_literally(simulator: Simulator) -> None:
    client = MT5RestClient(simulator.url, DEV_TOKEN)
    result = send_order("BTCUSD", 0.01, "buy", client=client)
    assert result["success"] is True, result
    assert result["data"]["retcode"] == contract.RETCODE_DONE and result["data"]["volume"] == 0.01
    positions, pending, deals = _book(simulator)
    assert len(positions) == 1 and positions[0]["volume"] == 0.01 and not pending and len(deals) == 1
    client.close()


def test_a_market_order_fills_at_the_quote_and_is_booked_once(simulator: Simulator, client: MT5RestClient) -> None:
    ask = client.latest_tick("BTCUSD")["ask"]
    result = send_order("BTCUSD", 0.1, "BUY", client=client, sl=round(ask * 0.9, 2), magic=77)
    assert result["success"] and result["data"]["price"] == ask and "reconciled" not in result
    assert "warning" not in result
    positions, _, deals = _book(simulator)
    assert [(p["volume"], p["magic"], p["sl"]) for p in positions] == [(0.1, 77, round(ask * 0.9, 2))]
    assert len(deals) == 1


def test_a_limit_order_is_placed_pending(simulator: Simulator, client: MT5RestClient) -> None:
    bid = client.latest_tick("BTCUSD")["bid"]
    result = send_order("BTCUSD", 0.05, "sell", round(bid * 1.1, 2), client=client)
    assert result["success"] and result["data"]["retcode"] == contract.RETCODE_PLACED
    positions, pending, _ = _book(simulator)
    assert not positions and [o["price_open"] for o in pending] == [round(bid * 1.1, 2)]


def test_a_partial_fill_is_reported_as_such(make_simulator: Callable[..., Simulator],
                                            make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, fill_volume_cap=0.05))
    result = send_order("BTCUSD", 0.1, "sell", client=make_client(sim.url))
    assert result["success"] and result["data"]["retcode"] == contract.RETCODE_DONE_PARTIAL
    assert result["data"]["volume"] == 0.05 and "partially filled: 0.05 of 0.1" in result["warning"]
    positions, _, _ = _book(sim)
    assert [p["volume"] for p in positions] == [0.05]


def test_a_requote_is_re_priced_and_then_fills_once(simulator: Simulator, client: MT5RestClient) -> None:
    simulator.market.requote_next = 1
    result = send_order("BTCUSD", 0.1, "buy", client=client)
    assert result["success"] and result["data"]["retcode"] == contract.RETCODE_DONE
    assert simulator.server.stats.handled("POST", "/order") == 2  # the requoted order, then the re-priced one
    positions, _, deals = _book(simulator)
    assert len(positions) == 1 and len(deals) == 1


def test_requotes_beyond_the_budget_place_nothing(make_simulator: Callable[..., Simulator],
                                                  make_client: Callable[..., MT5RestClient]) -> None:
    # Every fill slips (up to 5.00 USD) and the budget is 0 points: each attempt is requoted.
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, slippage_points=500))
    result = send_order("BTCUSD", 0.1, "buy", client=make_client(sim.url), deviation=0)
    assert result == {"success": False, "error": result["error"]} and "requoted" in result["error"]
    assert sim.server.stats.handled("POST", "/order") == MAX_REPRICES + 1
    assert _book(sim) == ([], [], [])


def test_a_refusal_is_an_explicit_failure(simulator: Simulator, client: MT5RestClient) -> None:
    simulator.market.market_closed = True
    result = send_order("BTCUSD", 0.1, "sell", client=client)
    assert result["success"] is False and "10018" in result["error"] and "market closed" in result["error"]
    assert _book(simulator) == ([], [], [])


@pytest.mark.parametrize("fault", ["drop_next", "stall_next", "garble_next"])
def test_a_lost_slow_or_garbled_answer_after_execution_is_reconciled_not_resent(
        make_simulator: Callable[..., Simulator], make_client: Callable[..., MT5RestClient], fault: str) -> None:
    sim = make_simulator()
    client = make_client(sim.url, read_timeout=0.5)
    sim.faults.only_route, sim.faults.stall_seconds = "/order", 1.5
    setattr(sim.faults, fault, 1)
    result = send_order("BTCUSD", 0.2, "buy", client=client, magic=9)
    assert result["success"] and result["reconciled"] is True, result
    assert "reconciled" not in result["data"]  # the engine's finding, kept apart from the venue's result
    # A stalled answer is still held by the server: count once it has let every request go.
    wait_until(lambda: sim.server.stats.in_flight == 0, "the server has answered or dropped every request")
    assert sim.server.stats.handled("POST", "/order") == 1  # found by magic+comment: never sent again
    positions, _, deals = _book(sim)
    assert [(p["volume"], p["magic"]) for p in positions] == [(0.2, 9)] and len(deals) == 1


def test_a_wrong_key_is_a_failure_that_never_shows_the_key(simulator: Simulator,
                                                           make_client: Callable[..., MT5RestClient],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    secret = "wrong-key-that-must-stay-hidden-42"
    caplog.set_level(logging.DEBUG)
    result = send_order("BTCUSD", 0.1, "buy", client=make_client(simulator.url, api_key=secret))
    assert result["success"] is False and "API key" in result["error"]
    assert secret not in repr(result) and secret not in caplog.text
    assert _book(simulator) == ([], [], [])


def test_a_server_that_is_down_is_a_failure_not_an_exception() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = MT5RestClient(f"http://127.0.0.1:{port}", DEV_TOKEN, retries=1, backoff_base=0.01, connect_timeout=1.0)
    result = send_order("BTCUSD", 0.1, "buy", client=client)
    assert result["success"] is False and "cannot reach" in result["error"]


@pytest.mark.parametrize(("args", "kwargs", "needle"), [
    (("BTCUSD", 0, "buy"), {}, "positive"),
    (("BTCUSD", -0.1, "buy"), {}, "positive"),
    (("BTCUSD", "0.1", "buy"), {}, "positive"),
    (("BTCUSD", 0.001, "buy"), {}, "0.01..100.0"),
    (("BTCUSD", 500.0, "buy"), {}, "0.01..100.0"),
    (("BTCUSD", 0.015, "buy"), {}, "volume step"),
    (("BTCUSD", 0.1, "hold"), {}, "order_type"),
    (("BTCUSD", 0.1, None), {}, "order_type"),
    (("BTCUSD", 0.1, "buy", 0.0), {}, "price"),
    (("BTCUSD", 0.1, "buy", "cheap"), {}, "price"),
    (("BTCUSD", 0.1, "buy", 1e9), {}, "below the ask"),
    (("BTCUSD", 0.1, "sell", 1.0), {}, "above the bid"),
    (("BTCUSD", 0.1, "buy"), {"deviation": -1}, "deviation"),
    (("BTCUSD", 0.1, "buy"), {"sl": "low"}, "sl"),
    (("NOPE", 0.1, "buy"), {}, "NOPE"),
])
def test_bad_inputs_are_refused_before_anything_is_sent(simulator: Simulator, client: MT5RestClient,
                                                        args: tuple, kwargs: dict, needle: str) -> None:
    result = send_order(*args, client=client, **kwargs)
    assert result["success"] is False and needle in result["error"], result
    assert simulator.server.stats.handled("POST", "/order") == 0
    assert _book(simulator) == ([], [], [])


def test_no_client_is_the_only_exception() -> None:
    with pytest.raises(ValueError, match="client"):
        send_order("BTCUSD", 0.1, "buy")


class _BrokenClient(MT5RestClient):
    """A real client with a bug in one read: send_order must not leak the exception's text."""

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        raise RuntimeError("internal detail: token=abc123")


def test_an_unexpected_error_is_logged_and_returned_as_a_generic_message(
        simulator: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    result = send_order("BTCUSD", 0.1, "buy", client=_BrokenClient(simulator.url, DEV_TOKEN))
    assert result["success"] is False and "unexpected error" in result["error"]
    assert "abc123" not in result["error"] and "RuntimeError" in caplog.text
    assert _book(simulator) == ([], [], [])


class _AnswerRecorder(requests.Session):
    """A real session that keeps the decoded JSON of every POST /order answer: what the server said."""

    def __init__(self) -> None:
        super().__init__()
        self.order_answers: list[Any] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().request(method, url, *args, **kwargs)
        if method == "POST" and str(url).endswith("/order"):
            self.order_answers.append(response.json())
        return response


@pytest.mark.parametrize("price", [None, "limit"])
def test_data_is_the_servers_order_result_untouched(simulator: Simulator,
                                                    make_client: Callable[..., MT5RestClient],
                                                    price: str | None) -> None:
    session = _AnswerRecorder()
    client = make_client(simulator.url, session=session)
    limit = None if price is None else round(client.latest_tick("BTCUSD")["bid"] * 0.9, 2)
    result = send_order("BTCUSD", 0.1, "buy", limit, client=client)
    assert result["success"], result
    (answer,) = session.order_answers  # {"message": ..., "result": {...}}: the MT5 result is "result"
    assert result["data"] == answer["result"]
    assert "retcode_external" in result["data"] and set(result) == {"success", "data"}
    session.close()
