"""A position closed in two pieces whose second closing deal reaches the history late (the simulator's
``delay_deals_next``): when the loop finds the position gone, the first deal is booked, once, and the position
stays unsettled (new entries refused) until the second deal appears; that one is booked, once, and the position
released — across a restart too (JSON file and PostgreSQL stores)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.storage.risk_state import JsonFileRiskStore
from engine.trading.execution import close_position, send_order
from tests.live.conftest import Rig
from tests.live.test_booking_and_unknown_orders import QUIET, risk_stores  # noqa: F401 - a fixture
from tests.live.test_unsettled_positions import DELAY_BARS, _bar, _entry_refused

DONE = 10009  # TRADE_RETCODE_DONE


def _net(deal: dict[str, Any]) -> float:
    return float(deal["profit"]) + float(deal.get("commission") or 0) + float(deal.get("swap") or 0)


def _closed_in_two_pieces_the_second_late(rig: Rig) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """The loop takes over a 0.2-lot position of its magic; someone closes 0.1 lots of it, then the rest, whose
    deal reaches the history ``DELAY_BARS`` bars later. Returns (position, first closing deal, second)."""
    assert send_order("BTCUSD", 0.2, "buy", client=rig.client, magic=rig.loop.settings.magic)["success"]
    ticket = int(rig.client.positions("BTCUSD")["ticket"].iloc[0])
    rig.loop.start()
    rig.simulator.advance(3)
    assert close_position(rig.client, ticket, 0.1, magic=777, comment="manual part").retcode == DONE
    faults = rig.simulator.faults
    faults.delay_deals_next, faults.delay_deals_seconds = 1, DELAY_BARS * 60
    assert close_position(rig.client, ticket, magic=777, comment="manual rest").retcode == DONE
    first, second = [d for d in rig.simulator.market.account.deals if d["position_id"] == ticket and d["entry"] == 1]
    listed = set(rig.client.history_deals(pd.Timestamp("2024-01-01", tz="UTC"),
                                          pd.Timestamp("2025-01-01", tz="UTC"))["ticket"])
    assert int(first["ticket"]) in listed and int(second["ticket"]) not in listed, "the fault missed its deal"
    assert first["volume"] == pytest.approx(0.1) and second["volume"] == pytest.approx(0.1)
    assert _net(first) != 0 and _net(second) != 0
    return ticket, first, second


def test_a_position_closed_in_pieces_is_held_until_its_last_closing_deal_is_booked(
        make_rig: Callable[..., Rig], risk_stores: Callable[[], Any], tmp_path: Path) -> None:  # noqa: F811
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=risk_stores(), session="pieces",
                   audit_root=tmp_path / "audit")
    balance = rig.risk.get_risk_metrics()["last_balance"]
    ticket, first, second = _closed_in_two_pieces_the_second_late(rig)

    _bar(rig)  # gone: the first deal booked, the position held for the rest
    state = risk_stores().load("pieces")
    (held,) = state.unsettled
    assert held.ticket == ticket and held.booked_volume == pytest.approx(0.1)
    assert state.booked_deals == {int(first["ticket"])}
    assert state.last_balance == pytest.approx(balance + _net(first))
    assert _entry_refused(rig)
    looks = 1
    while ticket in risk_stores().load("pieces").unsettled_positions:
        assert looks < DELAY_BARS + 3, "the late deal was never booked"
        assert risk_stores().load("pieces").last_balance == pytest.approx(balance + _net(first)), "booked twice"
        assert _entry_refused(rig)
        _bar(rig)
        looks += 1
    assert looks >= DELAY_BARS - 1  # released when the second deal appeared, not before
    for _ in range(3):
        _bar(rig)
    state = risk_stores().load("pieces")
    assert state.unsettled == () and state.booked_deals == {int(first["ticket"]), int(second["ticket"])}
    assert state.last_balance == pytest.approx(balance + _net(first) + _net(second))
    assert not _entry_refused(rig)
    exits = [r.detail for r in rig.records("fill") if r.detail.get("ticket") == ticket]
    assert [(e["booked_deals"], bool(e.get("partial"))) for e in exits] == [
        ([int(first["ticket"])], True), ([int(second["ticket"])], False)]
    assert exits[0]["remaining_volume"] == pytest.approx(0.1)
    refusals = [r.detail for r in rig.records("risk_refusal") if r.detail.get("unsettled_position") == ticket]
    assert len(refusals) == 1 and refusals[0]["partial"] is True


def test_a_restart_while_a_position_is_partly_booked_books_the_rest_once(
        make_rig: Callable[..., Rig], risk_stores: Callable[[], Any], tmp_path: Path) -> None:  # noqa: F811
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=risk_stores(), session="pieces",
                   audit_root=tmp_path / "audit")
    balance = rig.risk.get_risk_metrics()["last_balance"]
    ticket, first, second = _closed_in_two_pieces_the_second_late(rig)
    _bar(rig)
    assert risk_stores().load("pieces").unsettled_positions[ticket].booked_volume == pytest.approx(0.1)
    # The process dies here. A new one over the same stores and trail:
    again = make_rig(decision=QUIET, max_bars=None, simulator=rig.simulator, risk_store=risk_stores(),
                     session="pieces", audit_root=tmp_path / "audit")
    refused = again.risk.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and str(ticket) in refused["reason"]
    again.loop.start()
    state = risk_stores().load("pieces")
    assert ticket in state.unsettled_positions and state.last_balance == pytest.approx(balance + _net(first))
    for _ in range(DELAY_BARS + 3):
        _bar(again)
    state = risk_stores().load("pieces")
    assert state.unsettled == () and state.booked_deals == {int(first["ticket"]), int(second["ticket"])}
    assert state.last_balance == pytest.approx(balance + _net(first) + _net(second)), "booked twice, or not at all"
    booked = [r.detail["booked_deals"] for r in again.records("fill") if r.detail.get("ticket") == ticket]
    assert [b for b in booked if b] == [[int(first["ticket"])], [int(second["ticket"])]]  # the trail of both
    assert again.risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True


def test_a_partial_close_long_before_the_position_vanishes_is_booked_with_the_rest(
        make_rig: Callable[..., Rig], tmp_path: Path) -> None:
    """The look for a vanished position's closing deals reaches back to its open time, not only 30 days: a part
    closed 35 days before the rest is booked with it (and the opening deal gives the size to compare with)."""
    path = tmp_path / "risk" / "state.json"
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=JsonFileRiskStore(path), session="old")
    balance = rig.risk.get_risk_metrics()["last_balance"]
    assert send_order("BTCUSD", 0.2, "buy", client=rig.client, magic=rig.loop.settings.magic)["success"]
    ticket = int(rig.client.positions("BTCUSD")["ticket"].iloc[0])
    rig.loop.start()
    rig.simulator.advance(3)
    assert close_position(rig.client, ticket, 0.1, magic=777, comment="manual part").retcode == DONE
    rig.loop.reconcile(rig.loop.last_time.to_pydatetime(), why="look")  # the loop sees it open, 0.1 lots now
    assert rig.simulator.advance(35 * 24 * 60) == 35 * 24 * 60
    assert close_position(rig.client, ticket, magic=777, comment="manual rest").retcode == DONE
    first, second = [d for d in rig.simulator.market.account.deals if d["position_id"] == ticket and d["entry"] == 1]
    _bar(rig)  # gone: both closing deals booked, once, and the position settled
    state = JsonFileRiskStore(path).load("old")
    assert state.booked_deals == {int(first["ticket"]), int(second["ticket"])}, "the early partial close was missed"
    assert state.unsettled == () and state.last_balance == pytest.approx(balance + _net(first) + _net(second))
