"""Refusals and bad order arguments (engine.trading.execution) over real HTTP against the simulator: the
broker's retcode comes back on a typed error, bad arguments are refused before anything is sent, and
neither changes the account."""

from __future__ import annotations

import pytest

from engine.errors import InvalidRequestError, OrderRejectedError, RequoteError
from engine.mt5 import contract
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.embedded import Simulator
from engine.trading.execution import cancel_order, close_position, place_order


@pytest.mark.parametrize(("kwargs", "market_closed", "error", "retcode"), [
    ({"volume": 0.013}, False, OrderRejectedError, contract.RETCODE_INVALID_VOLUME),
    ({"volume": 500.0}, False, OrderRejectedError, contract.RETCODE_INVALID_VOLUME),
    ({"volume": 50.0}, False, OrderRejectedError, contract.RETCODE_NO_MONEY),
    ({"volume": 0.1}, True, OrderRejectedError, contract.RETCODE_MARKET_CLOSED),
    ({"volume": 0.1, "price": 1000.0, "deviation": 10}, False, RequoteError, contract.RETCODE_REQUOTE),
])
def test_refusals_raise_with_the_retcode_and_change_nothing(simulator: Simulator, client: MT5RestClient,
                                                             kwargs: dict, market_closed: bool,
                                                             error: type[Exception], retcode: int) -> None:
    simulator.market.market_closed = market_closed
    before = client.account_info()
    with pytest.raises(error) as info:
        place_order(client, "BTCUSD", "buy", **kwargs)
    assert info.value.retcode == retcode  # type: ignore[attr-defined]
    assert client.positions().empty and client.history_deals().empty
    assert client.account_info() == before


@pytest.mark.parametrize(("call", "needle"), [
    (lambda cl: place_order(cl, "BTCUSD", "hold", 0.1), "side"),
    (lambda cl: place_order(cl, "BTCUSD", "buy", 0), "volume"),
])
def test_bad_side_or_volume_gets_a_typed_error(client: MT5RestClient, call, needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        call(client)
    assert client.positions().empty


@pytest.mark.parametrize("call", [
    lambda cl: place_order(cl, "BTCUSD", "buy", 0.1, price="cheap"),
    lambda cl: place_order(cl, "BTCUSD", "buy", 0.1, sl=None),
    lambda cl: place_order(cl, "BTCUSD", "buy", 0.1, magic="five"),
    lambda cl: place_order(cl, "BTCUSD", "buy", 0.1, comment=123),
    lambda cl: place_order(cl, "BTCUSD", "buy", 0.1, idempotency_key=42),
    lambda cl: place_order(cl, "BTCUSD", "buy", 0.1, idempotency_key="  "),
    lambda cl: close_position(cl, "abc"),
    lambda cl: close_position(cl, 1, volume="all"),
    lambda cl: cancel_order(cl, None),
])
def test_bad_order_arguments_are_typed_errors_and_send_nothing(simulator: Simulator, client: MT5RestClient,
                                                               call) -> None:
    with pytest.raises(InvalidRequestError):
        call(client)
    assert client.positions().empty and client.orders().empty
