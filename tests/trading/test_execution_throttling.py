"""A trade server that throttles (MT5 10024, too many requests) over real HTTP against the simulator: the same
order waits (the client's backoff, recorded here instead of slept) and is resent under the same key after
looking for it in the history; it is not re-priced at once, and a server that keeps refusing ends in a
failure that says nothing was placed. Requotes (10004) are still re-priced."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from engine.errors import OrderRejectedError
from engine.mt5 import MT5RestClient, contract
from engine.mt5.sim.embedded import Simulator
from engine.trading.execution import place_order, send_order


def _throttled_client(sim: Simulator, make_client: Callable[..., MT5RestClient],
                      waits: list[float]) -> MT5RestClient:
    # No jitter and a recorded sleep: the backoff is deterministic and costs the test no time.
    return make_client(sim.url, backoff_base=0.05, backoff_cap=1.0, jitter=0.0, order_retries=2,
                       sleep=waits.append)


def _deals(sim: Simulator) -> list[dict]:
    return sim.market.history_deals(datetime(1970, 1, 2), datetime(2100, 1, 1))


def test_a_throttled_order_backs_off_looks_and_is_resent_under_its_key(
        simulator: Simulator, make_client: Callable[..., MT5RestClient]) -> None:
    waits: list[float] = []
    client = _throttled_client(simulator, make_client, waits)
    simulator.market.throttle_next = 2
    result = send_order("BTCUSD", 0.1, "buy", client=client, idempotency_key="sig-throttled")
    assert result["success"] and result["data"]["retcode"] == contract.RETCODE_DONE, result
    assert waits == [0.05, 0.1]  # one growing backoff before each resend, none before the first send
    stats = simulator.server.stats
    assert stats.handled("POST", "/order") == 3
    assert stats.handled("GET", "/history_deals_get") >= 2  # looked for before each resend
    positions = simulator.market.positions(None)
    assert [p["volume"] for p in positions] == [0.1] and len(_deals(simulator)) == 1


def test_a_server_that_keeps_throttling_places_nothing_and_says_so(
        simulator: Simulator, make_client: Callable[..., MT5RestClient]) -> None:
    waits: list[float] = []
    client = _throttled_client(simulator, make_client, waits)
    simulator.market.throttle_next = 10
    result = send_order("BTCUSD", 0.1, "buy", client=client)
    assert result["success"] is False and "too many requests" in result["error"]
    assert "nothing was placed" in result["error"] and "requote" not in result["error"]
    assert simulator.server.stats.handled("POST", "/order") == 3  # order_retries + 1, not re-priced 4 times
    assert waits == [0.05, 0.1]
    assert simulator.market.positions(None) == [] and _deals(simulator) == []


def test_place_order_raises_the_rate_limit_with_its_retcode(simulator: Simulator,
                                                            make_client: Callable[..., MT5RestClient]) -> None:
    waits: list[float] = []
    client = make_client(simulator.url, order_retries=0, sleep=waits.append)
    simulator.market.throttle_next = 1
    with pytest.raises(OrderRejectedError, match="nothing was placed") as info:
        place_order(client, "BTCUSD", "sell", 0.1)
    assert info.value.retcode == contract.RETCODE_TOO_MANY_REQUESTS and waits == []
    assert simulator.market.positions(None) == []


def test_a_requote_is_still_re_priced_without_a_pause(simulator: Simulator,
                                                      make_client: Callable[..., MT5RestClient]) -> None:
    waits: list[float] = []
    client = _throttled_client(simulator, make_client, waits)
    simulator.market.requote_next = 1
    result = send_order("BTCUSD", 0.1, "buy", client=client)
    assert result["success"] and simulator.server.stats.handled("POST", "/order") == 2
    assert waits == []
