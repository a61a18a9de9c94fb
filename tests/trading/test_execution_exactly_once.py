"""Exactly-once orders (engine.trading.execution) over real HTTP against the simulator: lost, refused,
slow and garbled answers are reconciled by magic+comment before any resend, and never place an order
twice; distinct orders keep distinct identities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from engine.errors import OrderStateUnknownError
from engine.mt5 import contract
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import SimSettings
from engine.trading.execution import close_position, order_comment, place_order
from tests.mt5.conftest import REPLAY_START, wait_until


def test_a_dropped_answer_is_reconciled_not_resent(simulator: Simulator, client: MT5RestClient) -> None:
    simulator.faults.drop_next, simulator.faults.only_route = 1, "/order"
    res = place_order(client, "BTCUSD", "buy", 0.2, magic=42)
    assert res.reconciled and res.retcode == contract.RETCODE_DONE
    positions = client.positions()
    assert len(positions) == 1 and positions["magic"].iloc[0] == 42
    assert positions["comment"].iloc[0] == order_comment(res.idempotency_key)


def test_a_refused_attempt_is_resent_once_with_the_same_key(simulator: Simulator, client: MT5RestClient) -> None:
    simulator.faults.fail_next, simulator.faults.only_route = 1, "/order"
    res = place_order(client, "BTCUSD", "sell", 0.1, idempotency_key="signal-2024-02-15T12:00")
    assert res.retcode == contract.RETCODE_DONE and not res.reconciled
    assert len(client.positions()) == 1


class _CountingSession(requests.Session):
    """A real session that counts the order POSTs it sends: the attempts the execution layer made."""

    def __init__(self) -> None:
        super().__init__()
        self.order_posts = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if method == "POST" and str(url).endswith("/order"):
            self.order_posts += 1
        return super().request(method, url, *args, **kwargs)


def test_slow_server_never_gets_a_duplicate_order(make_simulator: Callable[..., Simulator],
                                                  make_client: Callable[..., MT5RestClient]) -> None:
    """Every answer times out; the client gives up with a typed error, yet the order exists once."""
    sim = make_simulator(settings=SimSettings(start=REPLAY_START, latency_ms=400))
    session = _CountingSession()
    client = make_client(sim.url, read_timeout=0.15, retries=0, order_retries=2, session=session)
    with pytest.raises(OrderStateUnknownError, match="check the terminal"):
        place_order(client, "BTCUSD", "buy", 0.1, magic=77)
    # Not a fixed pause: wait until the server has handled every attempt the client sent, then count.
    wait_until(lambda: sim.server.stats.handled("POST", "/order") == session.order_posts >= 1,
               "the server has handled every order POST the client sent", timeout=10)
    assert len(sim.market.positions(None)) == 1
    session.close()


def test_close_position_reconciles_a_dropped_answer(simulator: Simulator, client: MT5RestClient) -> None:
    place_order(client, "BTCUSD", "buy", 0.3, magic=1)
    ticket = int(client.positions()["ticket"].iloc[0])
    simulator.faults.drop_next, simulator.faults.only_route = 1, "/close_position"
    res = close_position(client, ticket, 0.1)
    assert res.reconciled
    pos = client.positions()
    assert len(pos) == 1 and pos["volume"].iloc[0] == pytest.approx(0.2)  # closed 0.1 once, not twice


def test_a_garbled_answer_after_execution_is_reconciled_not_resent(simulator: Simulator,
                                                                   client: MT5RestClient) -> None:
    """A proxy page (HTTP 200, HTML) after the order ran must not lead to a second order."""
    simulator.faults.garble_next, simulator.faults.only_route = 1, "/order"
    res = place_order(client, "BTCUSD", "buy", 0.3, magic=43)
    assert res.reconciled and res.retcode == contract.RETCODE_DONE
    positions = client.positions()
    assert len(positions) == 1 and positions["volume"].iloc[0] == pytest.approx(0.3)


def test_garbled_answers_everywhere_end_in_order_state_unknown(simulator: Simulator,
                                                               make_client: Callable[..., MT5RestClient]) -> None:
    simulator.faults.garble_next, simulator.faults.only_route = 1, "/order"
    client = make_client(simulator.url, order_retries=0)
    with pytest.raises(OrderStateUnknownError, match="check the terminal"):
        place_order(client, "BTCUSD", "sell", 0.1, magic=44)
    assert len(simulator.market.positions(None)) == 1


def test_deterministic_keys_with_a_shared_prefix_get_distinct_comments(simulator: Simulator,
                                                                        client: MT5RestClient) -> None:
    """Signal-derived keys share long prefixes; a refused second order must not be 'found' as the first."""
    first = place_order(client, "BTCUSD", "buy", 0.1, magic=9, idempotency_key="sig-BTCUSD-M1-2024-02-15T12:00")
    simulator.faults.fail_next, simulator.faults.only_route = 1, "/order"
    second = place_order(client, "BTCUSD", "buy", 0.1, magic=9, idempotency_key="sig-BTCUSD-M1-2024-02-15T12:01")
    assert second.retcode == contract.RETCODE_DONE and not second.reconciled
    assert second.deal != first.deal
    positions = client.positions()
    assert len(positions) == 2 and positions["comment"].nunique() == 2
    assert all(len(x) <= contract.MAX_COMMENT for x in positions["comment"])
