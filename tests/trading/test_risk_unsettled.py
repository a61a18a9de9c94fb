"""A closed position whose closing deal is not in the broker's history yet: held in the risk state (persisted),
new entries refused while it is (exits pass), booked and released in one write once its deals are found, or
settled by an operator from the terminal's figure, whose booking its late deals never double."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from engine.storage.risk_state import JsonFileRiskStore
from engine.trading import risk_rules as rules
from engine.trading.risk_rules import RiskLimits
from engine.trading.risk_state import RiskState, UnsettledPosition
from tests.storage.test_risk_state_stores import Account
from tests.trading.test_risk_booking import T0, Clock, _cli, _manager

GONE = UnsettledPosition(ticket=4242, side=1, since=T0, volume=0.3, opened=T0 - dt.timedelta(hours=2))


def test_an_unsettled_position_blocks_entries_not_exits_across_processes_until_its_deals_are_booked(
        tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    account = Account()
    account.positions = lambda symbol=None: [{"type": 1, "volume": 0.2}]  # a short still held
    risk = _manager(JsonFileRiskStore(path), account=account)
    assert risk.hold_position(GONE)
    assert risk.hold_position(GONE)  # held again (a second look): still one entry
    restarted = _manager(JsonFileRiskStore(path), account=account)
    assert restarted.unsettled_positions() == {4242: GONE}  # exactly as held: side, volume, times
    entry = restarted.can_open_position("BTCUSD", 0.1, side="sell")
    assert entry["allowed"] is False and "4242" in entry["reason"] and "settle --position" in entry["reason"]
    assert restarted.can_open_position("BTCUSD", 0.2, side="buy")["allowed"] is True  # closing the short goes
    shown = restarted.get_risk_metrics()
    assert shown["state"] == "REDUCING" and list(shown["unsettled_positions"]) == ["4242"]

    found = restarted.book_deals({9001: -120.0}, position=4242)  # its closing deal surfaced
    assert found.deals == (9001,) and found.persisted
    state = JsonFileRiskStore(path).load("acct")
    assert state.unsettled == () and state.daily_pnl == -120.0 and state.booked_deals == {9001}
    assert risk.book_deals({9001: -120.0}, position=4242).deals == ()  # the other process settles it again
    assert JsonFileRiskStore(path).load("acct").daily_pnl == -120.0
    assert risk.can_open_position("BTCUSD", 0.1, side="sell")["allowed"] is True


def test_booking_the_deals_and_releasing_the_position_is_one_write() -> None:
    limits = RiskLimits(max_drawdown=0.5, max_daily_loss=0.5)
    state = rules.hold_position(rules.initial_state(10_000.0, T0, limits), GONE, T0)
    booked, new = rules.book_deals(state, {9001: -50.0, 9002: -25.0}, T0, limits, position=4242)
    assert new == {9001: -50.0, 9002: -25.0} and booked.unsettled == () and booked.daily_pnl == -75.0
    assert RiskState.from_dict(json.loads(json.dumps(state.to_dict()))) == state  # the record round-trips
    assert rules.status_of(state, limits)[0].name == "REDUCING" and rules.status_of(booked, limits)[0].name == "ACTIVE"


def test_a_loss_settled_by_hand_counts_against_the_limits_and_late_deals_are_never_booked_on_top(
        tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    clock = Clock()
    risk = _manager(JsonFileRiskStore(path), clock)  # max_daily_loss 50% of 10,000
    assert risk.hold_position(GONE)
    base = ("--file", str(path), "--key", "acct")
    shown = _cli(*base, "status")
    assert shown.returncode == 1 and json.loads(shown.stdout)["unsettled_positions"] == {"4242": GONE.describe()}
    assert _cli(*base, "reset", "--by", "alice").returncode == 0
    assert json.loads(_cli(*base, "status").stdout)["state"] == "REDUCING"  # a reset books nothing
    wrong = _cli(*base, "settle", "--position", "17", "--profit", "-10", "--by", "bob")
    assert wrong.returncode == 2 and "4242" in wrong.stderr
    assert _cli(*base, "settle", "--position", "4242", "--profit", "-10").returncode == 2  # who read it
    assert _cli(*base, "settle", "--position", "4242", "--profit", "nan", "--by", "bob").returncode == 2
    settled = _cli(*base, "settle", "--position", "4242", "--profit", "-6000", "--by", "bob")
    assert settled.returncode == 0, settled.stderr
    after = json.loads(_cli(*base, "status").stdout)
    assert after["unsettled_positions"] == {} and after["changed_by"] == "bob"
    assert after["daily_pnl"] == -6000.0 and after["state"] == "HALTED"  # the loss reached max_daily_loss
    assert risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is False
    assert JsonFileRiskStore(path).load("acct").status.name == "HALTED"  # latched by the engine, its own limits

    clock.now = T0 + dt.timedelta(minutes=30)  # the deal surfaces after all: nothing more is booked
    late = risk.book_deals({9001: -6000.0}, position=4242)
    assert late.deals == () and late.persisted
    assert JsonFileRiskStore(path).load("acct").last_balance == 4000.0
    assert risk.hold_position(GONE) and risk.unsettled_positions() == {}  # settled by hand: never held again


def test_an_unsettled_hold_the_store_refused_still_blocks_and_is_retried() -> None:
    from tests.trading.test_risk_booking import FlakyStore

    store = FlakyStore()
    risk = _manager(store)
    store.down = True
    assert not risk.hold_position(GONE)
    assert risk.unsettled_positions() == {4242: GONE}  # held in this process meanwhile
    assert risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is False
    store.down = False
    assert risk.get_risk_metrics()["persisted"]
    assert store.load("acct").unsettled_positions == {4242: GONE}


@pytest.mark.parametrize("raw", [[{"ticket": "x", "side": 1, "since": T0.isoformat()}], [{"ticket": 1}]])
def test_a_damaged_unsettled_entry_is_an_error_never_an_empty_list(raw: list[dict[str, object]]) -> None:
    record = rules.initial_state(10_000.0, T0, RiskLimits()).to_dict() | {"unsettled": raw}
    with pytest.raises(ValueError, match="damaged"):
        RiskState.from_dict(record)
