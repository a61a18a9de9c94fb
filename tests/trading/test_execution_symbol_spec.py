"""send_order reads a symbol's contract once a minute, not once per order (one round trip fewer), and a
stale copy can only get an order refused by the server, never placed outside the live contract; the refusal
drops the copy."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from engine.mt5 import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.trading.execution import send_order


def test_orders_reuse_the_symbol_contract_but_read_each_quote(simulator: Simulator, client: MT5RestClient) -> None:
    stats = simulator.server.stats
    assert send_order("BTCUSD", 0.01, "buy", client=client)["success"]
    before = stats.per_route()
    for _ in range(2):
        assert send_order("BTCUSD", 0.01, "buy", client=client)["success"]
    after = stats.per_route()
    grew = {route: after[route] - before.get(route, 0) for route in after if after[route] != before.get(route, 0)}
    # two requests per order: a fresh quote prices each market order; the contract read is remembered
    assert grew == {("GET", "/symbol_info_tick"): 2, ("POST", "/order"): 2}
    assert after[("GET", "/symbol_info")] == 1

def test_the_contract_is_read_again_once_it_is_older_than_max_age(simulator: Simulator,
                                                                  client: MT5RestClient) -> None:
    first = client.symbol_spec("BTCUSD")
    first["volume_max"] = -1.0  # a caller's copy: mutating it does not touch the remembered contract
    assert client.symbol_spec("BTCUSD")["volume_max"] == simulator.market.settings.volume_max
    assert simulator.server.stats.handled("GET", "/symbol_info") == 1
    client.symbol_spec("BTCUSD", max_age_s=0.0)
    assert simulator.server.stats.handled("GET", "/symbol_info") == 2


def test_a_contract_changed_since_it_was_read_gets_the_order_refused_not_placed(simulator: Simulator,
                                                                                 client: MT5RestClient) -> None:
    assert send_order("BTCUSD", 0.01, "buy", client=client)["success"]  # remembers volume_max 100
    # the broker lowers the largest order after the client read the contract
    changed = dataclasses.replace(simulator.market.settings, volume_max=0.02)
    market = simulator.market
    market.settings = market.account.settings = market.dealer.settings = changed
    result = send_order("BTCUSD", 0.05, "buy", client=client)
    assert result["success"] is False and "10014" in result["error"], result
    # the refusal dropped the remembered contract: the next order is checked against the new one, client-side
    posts = simulator.server.stats.handled("POST", "/order")
    again = send_order("BTCUSD", 0.05, "buy", client=client)
    assert again["success"] is False and "0.02" in again["error"] and "10014" not in again["error"], again
    assert simulator.server.stats.handled("POST", "/order") == posts
    assert simulator.server.stats.handled("GET", "/symbol_info") == 2
    assert [p["volume"] for p in market.positions(None)] == [0.01]
    assert len(market.history_deals(datetime(1970, 1, 2), datetime(2100, 1, 1))) == 1
