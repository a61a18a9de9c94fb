"""The RiskManager on the order path, over real HTTP against the simulator: ``send_order(risk=...)`` asks it
before anything is sent, and a client with a RiskManager bound (``guard_orders``) asks it for every order
that may add exposure whoever sends it; closes and cancels always pass, so a HALTED account can still get
flat. The simulator's order book is checked after each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest

from engine.errors import ConfigError, OrderStateUnknownError, RiskRefusedError
from engine.mt5 import MT5RestClient, contract
from engine.mt5.sim.embedded import Simulator
from engine.trading.broker import check_order, order_exposure
from engine.trading.execution import cancel_order, close_position, place_order, send_order
from engine.trading.risk import RiskManager

LIMITS = {"max_drawdown": 0.05, "max_daily_loss": 0.05, "risk_per_trade": 0.01, "max_position_size": 0.2}


def _book(sim: Simulator) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    market = sim.market
    return market.positions(None), market.orders(None), market.history_deals(datetime(1970, 1, 2),
                                                                              datetime(2100, 1, 1))


class CountingRisk(RiskManager):
    """A real RiskManager that also counts how often it was asked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, float, str | None]] = []

    def can_open_position(self, symbol: str, volume: float, side: str | None = None) -> dict[str, Any]:
        self.asked.append((symbol, volume, side))
        return super().can_open_position(symbol, volume, side)


# -- send_order(risk=...) ---------------------------------------------------------------------------------------
def test_send_order_with_a_risk_manager_sends_what_it_allows(simulator: Simulator, client: MT5RestClient) -> None:
    risk = CountingRisk(client, **LIMITS)
    result = send_order("BTCUSD", 0.1, "buy", client=client, risk=risk)
    assert result["success"], result
    assert risk.asked == [("BTCUSD", 0.1, "buy")]  # with the side, so REDUCING can tell a reducing order
    assert [p["volume"] for p in _book(simulator)[0]] == [0.1]


def test_send_order_refused_by_risk_sends_nothing(simulator: Simulator, client: MT5RestClient) -> None:
    risk = RiskManager(client, **LIMITS)
    result = send_order("BTCUSD", 0.3, "buy", client=client, risk=risk)
    assert result == {"success": False, "error": result["error"]}
    assert result["error"].startswith("risk: ") and "max_position_size" in result["error"]
    assert simulator.server.stats.handled("POST", "/order") == 0 and _book(simulator) == ([], [], [])


def test_a_halted_risk_manager_stops_send_order(simulator: Simulator, client: MT5RestClient) -> None:
    risk = RiskManager(client, **LIMITS)
    risk.update_after_trade(-600.0)  # 6% of 10,000 in a day: HALTED
    result = send_order("BTCUSD", 0.01, "sell", client=client, risk=risk)
    assert result["success"] is False and result["error"].startswith("risk: HALTED")
    assert _book(simulator) == ([], [], [])


def test_bad_inputs_are_refused_before_the_risk_manager_is_asked(client: MT5RestClient) -> None:
    risk = CountingRisk(client, **LIMITS)
    assert "volume step" in send_order("BTCUSD", 0.015, "buy", client=client, risk=risk)["error"]
    assert risk.asked == []


class _Raising:
    def can_open_position(self, symbol: str, volume: float, side: str | None = None) -> Mapping[str, Any]:
        raise RuntimeError("risk store on fire")


class _Mute:
    def can_open_position(self, symbol: str, volume: float, side: str | None = None) -> Any:
        return None


@pytest.mark.parametrize(("gate", "needle"), [(_Raising(), "the risk check failed"),
                                              (_Mute(), "no decision from the risk check")])
def test_a_gate_that_fails_refuses(simulator: Simulator, client: MT5RestClient, gate: Any, needle: str) -> None:
    result = send_order("BTCUSD", 0.01, "buy", client=client, risk=gate)
    assert result["success"] is False and result["error"].startswith("risk: ") and needle in result["error"]
    assert _book(simulator) == ([], [], [])


# -- a RiskManager bound to the client --------------------------------------------------------------------------
def test_a_guarded_client_checks_orders_from_every_caller(simulator: Simulator, client: MT5RestClient) -> None:
    risk = CountingRisk(client, **LIMITS)
    client.guard_orders(risk)
    assert client.order_guard is risk
    # The seed call without risk=, and the typed layer underneath: both pass the gate.
    refused = send_order("BTCUSD", 0.3, "buy", client=client)
    assert refused["success"] is False and refused["error"].startswith("risk: ")
    with pytest.raises(RiskRefusedError, match="max_position_size"):
        place_order(client, "BTCUSD", "sell", 0.25)
    assert simulator.server.stats.handled("POST", "/order") == 0 and _book(simulator) == ([], [], [])
    assert [a[2] for a in risk.asked] == ["buy", "sell"]


def test_send_order_asks_a_bound_risk_manager_once(simulator: Simulator, client: MT5RestClient) -> None:
    risk = CountingRisk(client, **LIMITS)
    client.guard_orders(risk)
    assert send_order("BTCUSD", 0.1, "buy", client=client, risk=risk)["success"]
    assert len(risk.asked) == 1  # not once by send_order and again by the client


def test_a_guarded_client_still_closes_and_cancels_when_halted(simulator: Simulator,
                                                               client: MT5RestClient) -> None:
    risk = RiskManager(client, **LIMITS)
    client.guard_orders(risk)
    opened = place_order(client, "BTCUSD", "buy", 0.1)
    bid = client.latest_tick("BTCUSD")["bid"]
    pending = place_order(client, "BTCUSD", "sell", 0.1, kind="limit", price=round(bid * 1.1, 2))
    risk.halt(by="test", note="closing time")
    with pytest.raises(RiskRefusedError, match="HALTED"):
        place_order(client, "BTCUSD", "buy", 0.01)
    assert close_position(client, opened.order).retcode == contract.RETCODE_DONE
    assert cancel_order(client, pending.order).retcode == contract.RETCODE_DONE
    positions, orders, _ = _book(simulator)
    assert positions == [] and orders == []


def test_a_bound_gate_cannot_be_swapped(client: MT5RestClient) -> None:
    first, second = RiskManager(client, **LIMITS), RiskManager(client, **LIMITS)
    with pytest.raises(ConfigError, match="needs a RiskManager"):
        client.guard_orders(None)  # type: ignore[arg-type]
    client.guard_orders(first)
    client.guard_orders(first)  # the same gate again is harmless
    with pytest.raises(ConfigError, match="cannot be replaced"):
        client.guard_orders(second)
    assert client.order_guard is first


class _AllowOnce(RiskManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowed_once = False

    def can_open_position(self, symbol: str, volume: float, side: str | None = None) -> dict[str, Any]:
        if self.allowed_once:
            return {"allowed": False, "reason": "limits changed meanwhile"}
        self.allowed_once = True
        return super().can_open_position(symbol, volume, side)


def test_a_resend_refused_after_a_lost_answer_is_unknown_not_nothing(
        simulator: Simulator, make_client: Callable[..., MT5RestClient]) -> None:
    """The first attempt failed without an answer and is not in the history; the gate refuses the resend.
    The lost attempt may still surface, so the outcome is unknown rather than "refused, nothing placed"."""
    client = make_client(simulator.url)
    client.guard_orders(_AllowOnce(client, **LIMITS))
    simulator.faults.fail_next, simulator.faults.only_route = 1, "/order"
    with pytest.raises(OrderStateUnknownError, match="limits changed meanwhile"):
        place_order(client, "BTCUSD", "buy", 0.1)
    assert _book(simulator) == ([], [], [])


# -- which requests the gate sees -----------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "expected"), [
    ({"action": "DEAL", "symbol": "BTCUSD", "type": "BUY", "volume": 0.1}, ("BTCUSD", 0.1, "buy")),
    ({"action": "PENDING", "symbol": "BTCUSD", "type": "SELL_LIMIT", "volume": 0.2}, ("BTCUSD", 0.2, "sell")),
    ({"action": 1, "symbol": "BTCUSD", "type": 1, "volume": 1}, ("BTCUSD", 1.0, "sell")),
    ({"action": "TRADE_ACTION_PENDING", "symbol": "X", "type": "ORDER_TYPE_BUY_STOP", "volume": 0.1},
     ("X", 0.1, "buy")),
    ({"action": "REMOVE", "order": 5}, None),
    ({"action": "SLTP", "position": 5, "sl": 1.0}, None),
    ({"action": "DEAL", "symbol": "BTCUSD", "type": "SELL", "volume": 0.1, "position": 7}, None),
])
def test_order_exposure_reads_names_and_numbers(body: dict[str, Any], expected: Any) -> None:
    assert order_exposure(body) == expected


@pytest.mark.parametrize("body", [
    {"action": "DEAL", "symbol": "BTCUSD", "type": "HOLD", "volume": 0.1},
    {"action": "DEAL", "symbol": "BTCUSD", "type": 42, "volume": 0.1},
    {"action": "DEAL", "symbol": "BTCUSD", "type": "BUY", "volume": float("nan")},
    {"action": "DEAL", "symbol": "BTCUSD", "type": "BUY"},
    {"action": 1.0, "symbol": "BTCUSD", "type": "BUY", "volume": 0.1},
])
def test_an_unreadable_request_is_refused_without_asking(body: dict[str, Any]) -> None:
    with pytest.raises(RiskRefusedError, match="cannot tell what the order would add"):
        check_order(_Raising(), body)
