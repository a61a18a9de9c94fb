"""Closed trades are booked by their closing deals, exactly once, in the same compare-and-set write as the
balances they move; an order of unknown fate blocks new exposure (not exits) in every process reading the
state until it is released, and the operator command clears it, recording who."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.storage.risk_state import JsonFileRiskStore
from engine.trading.risk import RiskManager
from engine.trading.risk_rules import BOOKED_RETENTION
from engine.trading.risk_state import MemoryRiskStore, RiskState
from tests.storage.test_risk_state_stores import REPO, Account

T0 = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def _manager(store: Any, clock: Clock | None = None, account: Account | None = None) -> RiskManager:
    return RiskManager(account or Account(), max_drawdown=0.5, max_daily_loss=0.5, store=store, key="acct",
                       clock=clock or Clock())


def test_each_closing_deal_is_booked_once_whatever_is_settled_again(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    risk = _manager(JsonFileRiskStore(path))
    first = risk.book_deals({1: -50.0, 2: -10.0})
    assert first.deals == (1, 2) and first.profit == -60.0 and first.persisted
    assert risk.book_deals({1: -50.0, 2: -10.0}).deals == ()  # the same trade settled again
    later = risk.book_deals({2: -10.0, 3: -5.0})  # a late closing deal of the same position
    assert later.deals == (3,) and later.profit == -5.0
    restarted = _manager(JsonFileRiskStore(path))  # another process over the same file
    assert restarted.book_deals({1: -50.0, 3: -5.0}).deals == ()
    state = JsonFileRiskStore(path).load("acct")
    assert state.daily_pnl == -65.0 and state.last_balance == 10_000.0 - 65.0
    assert state.booked_deals == {1, 2, 3}


def test_booked_tickets_are_forgotten_only_after_the_settlement_window(tmp_path: Path) -> None:
    clock = Clock()
    risk = _manager(MemoryRiskStore(), clock)
    risk.book_deals({1: 5.0})
    clock.now = T0 + BOOKED_RETENTION - dt.timedelta(hours=1)
    risk.book_deals({2: 5.0})
    assert risk.store.load("acct").booked_deals == {1, 2}
    clock.now = T0 + BOOKED_RETENTION + dt.timedelta(hours=1)
    risk.book_deals({3: 5.0})
    assert risk.store.load("acct").booked_deals == {2, 3}


class FlakyStore(MemoryRiskStore):
    """A store that refuses writes while ``down``."""

    down = False

    def save(self, key: str, state: RiskState) -> bool:
        if self.down:
            raise OSError("disk full")
        return super().save(key, state)


def test_a_booking_the_store_refused_is_retried_and_still_booked_once() -> None:
    store = FlakyStore()
    risk = _manager(store)
    store.down = True
    refused = risk.book_deals({7: -100.0})
    assert refused.deals == (7,) and not refused.persisted
    assert risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is False  # unsaved: reduce only
    assert not risk.book_deals({7: -100.0}).persisted  # settled again while the store is down: not doubled
    store.down = False
    assert risk.book_deals({7: -100.0}).persisted
    assert store.load("acct").daily_pnl == -100.0 and store.load("acct").booked_deals == {7}


def test_an_order_of_unknown_fate_blocks_entries_but_not_exits_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    account = Account()
    account.positions = lambda symbol=None: [{"type": 0, "volume": 0.3}]  # a long held
    risk = _manager(JsonFileRiskStore(path), account=account)
    assert risk.hold_order("s/2024-03-01T12:00:00+00:00/open", "no answer (RequestTimeoutError)")
    restarted = _manager(JsonFileRiskStore(path), account=account)
    entry = restarted.can_open_position("BTCUSD", 0.1, side="buy")
    assert entry["allowed"] is False and "order state unknown (s/2024-03-01T12:00:00+00:00/open)" in entry["reason"]
    assert "clear-order" in entry["reason"]
    assert restarted.can_open_position("BTCUSD", 0.3, side="sell")["allowed"] is True  # an exit still goes
    assert restarted.get_risk_metrics()["unresolved_orders"] == {
        "s/2024-03-01T12:00:00+00:00/open": "no answer (RequestTimeoutError)"}
    assert restarted.release_order("s/2024-03-01T12:00:00+00:00/open")
    assert risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True  # the first process sees it


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.risk_cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def test_the_operator_clears_an_unknown_order_by_name_and_reset_does_not(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    key = "s/2024-03-01T12:00:00+00:00/open"
    _manager(JsonFileRiskStore(path)).hold_order(key, "no answer")
    base = ("--file", str(path), "--key", "acct")
    shown = _cli(*base, "status")
    assert shown.returncode == 1 and json.loads(shown.stdout)["unresolved_orders"] == {key: "no answer"}
    assert _cli(*base, "reset", "--by", "alice").returncode == 0
    assert json.loads(_cli(*base, "status").stdout)["state"] == "REDUCING"  # a reset is not a check of the order
    wrong = _cli(*base, "clear-order", "--order", "other", "--by", "alice")
    assert wrong.returncode == 2 and key in wrong.stderr
    assert _cli(*base, "clear-order", "--order", key).returncode == 2  # --by is required: who checked
    cleared = _cli(*base, "clear-order", "--order", key, "--by", "bob")
    assert cleared.returncode == 0, cleared.stderr
    after = json.loads(_cli(*base, "status").stdout)
    assert after["state"] == "ACTIVE" and after["unresolved_orders"] == {} and after["changed_by"] == "bob"


@pytest.mark.parametrize("profit", [float("nan"), float("inf")])
def test_a_deal_profit_must_be_a_number(profit: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        _manager(MemoryRiskStore()).book_deals({1: profit})
