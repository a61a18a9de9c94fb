"""Which order requests skip the risk gate: only a deal against a real position ticket (a close)."""

from __future__ import annotations

import pytest

from engine.trading.broker import order_exposure


def _deal(**extra: object) -> dict[str, object]:
    return {"action": "DEAL", "type": "BUY", "symbol": "BTCUSD", "volume": 50.0, **extra}


def test_a_plain_deal_is_gated() -> None:
    assert order_exposure(_deal()) == ("BTCUSD", 50.0, "buy")


def test_a_deal_closing_a_position_ticket_skips_the_gate() -> None:
    assert order_exposure(_deal(position=123456)) is None


@pytest.mark.parametrize("position", ["x", "1", True, 0, -5, 1.5])
def test_a_bogus_position_does_not_open_the_gate(position: object) -> None:
    # a truthy non-ticket "position" used to mark any opening deal as a close and skip the risk check
    assert order_exposure(_deal(position=position)) == ("BTCUSD", 50.0, "buy")
