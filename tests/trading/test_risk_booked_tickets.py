"""Which booked deal tickets the risk state remembers, and when a retried booking is the same booking: a partly
booked position held unsettled for longer than the retention keeps its booked tickets (its look for the rest
still lists them), an operator's settle on the wall clock prunes nothing the engine booked on its own clock,
and a full booking queued behind a partial one of the same deals (the store down) still releases the position."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from engine.storage.risk_state import JsonFileRiskStore
from engine.trading.risk_rules import BOOKED_RETENTION
from engine.trading.risk_state import UnsettledPosition
from tests.trading.test_risk_booking import T0, Clock, FlakyStore, _cli, _manager

PART = UnsettledPosition(ticket=77, side=1, since=T0, volume=0.2, opened=T0 - dt.timedelta(hours=1),
                         booked_volume=0.1)


def test_a_partly_booked_position_held_beyond_the_retention_keeps_its_booked_deals(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    clock = Clock()
    risk = _manager(JsonFileRiskStore(path), clock)
    assert risk.book_deals({2: -10.0}, keep=PART).deals == (2,)  # the first piece; the rest not listed yet
    clock.now = T0 + BOOKED_RETENTION + dt.timedelta(days=3)  # still unsettled; other trades are booked meanwhile
    assert risk.book_deals({5: 4.0}).deals == (5,)
    assert JsonFileRiskStore(path).load("acct").booked_deals == {2, 5}, "a held position's booked deal was forgotten"
    # its look (from its open time) lists the first piece again with the rest: only the rest is booked
    rest = risk.book_deals({2: -10.0, 3: -20.0}, position=77)
    assert rest.deals == (3,) and rest.persisted
    state = JsonFileRiskStore(path).load("acct")
    assert state.unsettled == () and state.last_balance == pytest.approx(10_000.0 - 10.0 + 4.0 - 20.0)
    clock.now += BOOKED_RETENTION + dt.timedelta(hours=1)  # released: the usual retention applies again
    risk.book_deals({6: 1.0})
    assert JsonFileRiskStore(path).load("acct").booked_deals == {6}


def test_an_operator_settle_on_the_wall_clock_prunes_nothing_the_engine_booked(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    risk = _manager(JsonFileRiskStore(path), Clock())  # the engine's clock: broker time of a 2024 replay
    assert risk.book_deals({1: 5.0, 2: -3.0}).persisted
    assert risk.hold_position(dataclasses.replace(PART, ticket=4242, booked_volume=0.0))
    settled = _cli("--file", str(path), "--key", "acct", "settle", "--position", "4242", "--profit", "-7",
                   "--by", "bob")  # stamped now (wall clock), years after the replay's bookings
    assert settled.returncode == 0, settled.stderr
    state = JsonFileRiskStore(path).load("acct")
    assert state.booked_deals >= {1, 2}, "the operator's settle forgot the engine's booked deals"
    assert risk.book_deals({1: 5.0, 2: -3.0}).deals == ()  # settled again: nothing booked twice
    assert JsonFileRiskStore(path).load("acct").last_balance == pytest.approx(10_000.0 + 5.0 - 3.0 - 7.0)


def test_a_full_booking_queued_behind_a_partial_one_of_the_same_deals_still_releases_the_position() -> None:
    store = FlakyStore()
    risk = _manager(store)
    store.down = True
    assert not risk.book_deals({2: -10.0}, keep=PART).persisted  # waits in memory
    # the next look finds the same deals cover the position (its size was read meanwhile): book it whole
    assert not risk.book_deals({2: -10.0}, position=77).persisted
    store.down = False
    risk.get_risk_metrics()  # the store is back: what waits is written
    state = store.load("acct")
    assert state.booked_deals == {2} and state.daily_pnl == pytest.approx(-10.0)
    assert state.unsettled == (), "the full booking's release was dropped as a retry of the partial one"
    assert risk.unsettled_positions() == {}
