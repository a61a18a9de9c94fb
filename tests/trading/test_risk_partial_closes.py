"""A position closed in several deals (partial closes, a stop-out filled in pieces) that is gone while only some
of its closing deals are listed: the ones found are booked (each once, by ticket) and the position stays held
unsettled until the closing volume covers its size, then it is released in the write booking the last deal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from engine.storage.risk_state import JsonFileRiskStore
from engine.trading import risk_rules as rules
from engine.trading.positions import closed_positions
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import RiskState, UnsettledPosition
from tests.trading.test_risk_booking import T0, _manager

GONE = UnsettledPosition(ticket=77, side=1, since=T0, volume=0.2, opened=T0 - dt.timedelta(hours=1))
LIMITS = RiskLimits(max_drawdown=0.5, max_daily_loss=0.5)


def _deal(ticket: int, entry: int, volume: float, profit: float = 0.0, position: int = 77,
          comment: str = "sl 51000") -> dict:
    return {"ticket": ticket, "entry": entry, "position_id": position, "volume": volume, "price": 50_000.0,
            "profit": profit, "commission": -0.5 if entry == 1 else 0.0, "swap": 0.0, "comment": comment}


def test_the_closing_volume_found_is_compared_with_the_opening_deals_else_the_last_seen_lots() -> None:
    opened_then_part = [_deal(1, 0, 0.3), _deal(2, 1, 0.1, -10.0)]
    (closed,) = closed_positions({77: 1}, opened_then_part)
    assert closed.volume == pytest.approx(0.1) and closed.opened_volume == pytest.approx(0.3)
    # the last look saw 0.2 lots (a partial close of 0.1 before it): the opening deals decide, 0.2 is missing
    assert closed.remaining(0.2, 0.005) == pytest.approx(0.2)
    (whole,) = closed_positions({77: 1}, [*opened_then_part, _deal(3, 1, 0.1, -9.0), _deal(4, 1, 0.0999, -8.0)])
    assert whole.remaining(0.2, 0.005) == 0.0  # within half a 0.01 step
    assert whole.deal_profits == {2: -10.5, 3: -9.5, 4: -8.5} and whole.stopped
    (unlisted_open,) = closed_positions({77: 1}, [_deal(2, 1, 0.1, -10.0)])  # the opening deal is not listed
    assert unlisted_open.opened_volume is None and unlisted_open.remaining(0.2, 0.005) == pytest.approx(0.1)
    assert unlisted_open.remaining(None, 0.005) is None  # nothing to compare with
    (none,) = closed_positions({77: 1}, [_deal(1, 0, 0.3)])
    assert none.deals == () and none.opened_volume == pytest.approx(0.3) and none.remaining(None, 0.005) == 0.3


def test_a_partial_booking_keeps_the_position_held_and_the_rest_releases_it_each_deal_once() -> None:
    state = rules.initial_state(10_000.0, T0, LIMITS)
    part = dataclasses.replace(GONE, booked_volume=0.1)
    booked, new = rules.book_deals(state, {2: -10.0}, T0, LIMITS, keep=part)
    assert new == {2: -10.0} and booked.unsettled == (part,) and booked.daily_pnl == -10.0
    assert rules.status_of(booked, LIMITS)[0].name == "REDUCING"  # still blocks new entries
    again, new = rules.book_deals(booked, {2: -10.0}, T0, LIMITS, keep=part)  # the same deal seen again
    assert new == {} and again.daily_pnl == -10.0 and again.unsettled == (part,)
    done, new = rules.book_deals(again, {2: -10.0, 3: -20.0}, T0, LIMITS, position=77)
    assert new == {3: -20.0} and done.unsettled == () and done.daily_pnl == -30.0
    assert rules.status_of(done, LIMITS)[0].name == "ACTIVE"
    # an operator who settled the rest by hand: a late deal is never booked on top
    by_hand = rules.settle_by_hand(again, 77, -20.0, T0, LIMITS, by="bob")
    late, new = rules.book_deals(by_hand, {3: -20.0}, T0, LIMITS, position=77)
    assert new == {} and late.daily_pnl == -30.0
    assert rules.book_deals(by_hand, {4: -1.0}, T0, LIMITS, keep=part)[1] == {}
    # the record round-trips with the booked volume; one written before it existed booked none
    assert RiskState.from_dict(json.loads(json.dumps(booked.to_dict()))) == booked
    older = {k: v for k, v in part.to_dict().items() if k != "booked_volume"}
    assert UnsettledPosition.from_dict(older) == GONE
    assert "0.1 lots of closing deals booked" in part.describe()


def test_a_partial_booking_survives_a_restart_and_the_rest_is_booked_once(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    risk = _manager(JsonFileRiskStore(path))
    part = dataclasses.replace(GONE, booked_volume=0.1)
    first = risk.book_deals({2: -10.0}, keep=part)
    assert first.deals == (2,) and first.persisted
    restarted = _manager(JsonFileRiskStore(path))
    assert restarted.unsettled_positions() == {77: part}
    refused = restarted.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and "77" in refused["reason"]
    assert restarted.book_deals({2: -10.0}, keep=part).deals == ()  # settled again after the restart
    rest = restarted.book_deals({2: -10.0, 3: -20.0}, position=77)
    assert rest.deals == (3,) and rest.persisted
    state = JsonFileRiskStore(path).load("acct")
    assert state.unsettled == () and state.daily_pnl == -30.0 and state.booked_deals == {2, 3}
    assert risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True
