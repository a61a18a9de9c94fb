"""A position that vanishes at the broker before its closing deal reaches the deal history (the simulator's
``delay_deals_next`` fault, as MT5's history lags): the loop holds it unsettled in the risk state, refuses new
entries meanwhile, looks again every bar, and books it exactly once when the deal appears — across a restart
too. Left unsettled past ``unsettled_alarm_seconds``, it is an ERROR naming the operator's ``settle`` command,
whose booking the late deal never doubles."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.storage.risk_state import JsonFileRiskStore
from engine.trading.execution import close_position, send_order
from tests.live.conftest import Rig
from tests.live.test_booking_and_unknown_orders import QUIET, _next_bars, risk_stores  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]
DELAY_BARS = 5


def _closed_with_a_late_deal(rig: Rig, delay_bars: int) -> tuple[int, int, float]:
    """The loop takes over a position of its magic, which someone then closes; the closing deal reaches the
    history ``delay_bars`` bars later. Returns (position, closing deal, its profit net of costs)."""
    assert send_order("BTCUSD", 0.2, "buy", client=rig.client, magic=rig.loop.settings.magic)["success"]
    ticket = int(rig.client.positions("BTCUSD")["ticket"].iloc[0])
    rig.loop.start()
    rig.simulator.advance(3)
    faults = rig.simulator.faults
    faults.delay_deals_next, faults.delay_deals_seconds = 1, delay_bars * 60
    close_position(rig.client, ticket, magic=777, comment="manual close")
    (deal,) = [d for d in rig.simulator.market.account.deals if d["position_id"] == ticket and d["entry"] == 1]
    listed = rig.client.history_deals(pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2025-01-01", tz="UTC"))
    assert int(deal["ticket"]) not in set(listed["ticket"]), "the fault did not hold the deal back"
    profit = float(deal["profit"]) + float(deal.get("commission") or 0) + float(deal.get("swap") or 0)
    assert profit != 0
    return ticket, int(deal["ticket"]), profit


def _bar(rig: Rig) -> None:
    rig.simulator.advance(1)
    _next_bars(rig)


def _entry_refused(rig: Rig) -> bool:
    """Whether the loop's own entry path refuses a buy now (nothing reaches the broker if so)."""
    positions = len(rig.client.positions("BTCUSD"))
    at = rig.loop.last_time.to_pydatetime()
    filled = rig.loop.orders.open(at, 1, 1.0, math.nan)
    assert filled == (len(rig.client.positions("BTCUSD")) == positions + 1)
    if filled:  # undo, so the test's books stay those of the one closed position
        ticket = int(rig.client.positions("BTCUSD")["ticket"].iloc[-1])
        close_position(rig.client, ticket, magic=rig.loop.settings.magic)
    return not filled


def test_a_position_whose_closing_deal_is_late_blocks_entries_and_is_booked_once_when_it_appears(
        make_rig: Callable[..., Rig], tmp_path: Path) -> None:
    path = tmp_path / "risk" / "state.json"
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=JsonFileRiskStore(path), session="late")
    balance = rig.risk.get_risk_metrics()["last_balance"]
    ticket, deal, profit = _closed_with_a_late_deal(rig, DELAY_BARS)

    _bar(rig)  # the position is gone, its deal not listed: held, persisted, nothing booked
    state = JsonFileRiskStore(path).load("late")
    assert list(state.unsettled_positions) == [ticket] and state.unsettled[0].volume == pytest.approx(0.2)
    assert state.unsettled[0].opened is not None and state.last_balance == pytest.approx(balance)
    assert _entry_refused(rig)
    looks = 1
    while ticket in JsonFileRiskStore(path).load("late").unsettled_positions:
        assert looks < DELAY_BARS + 3, "the late deal was never booked"
        assert JsonFileRiskStore(path).load("late").last_balance == pytest.approx(balance)
        assert _entry_refused(rig)
        _bar(rig)
        looks += 1
    assert looks >= DELAY_BARS - 1  # booked when it appeared, not before
    for _ in range(3):  # later looks book nothing more
        _bar(rig)
    state = JsonFileRiskStore(path).load("late")
    assert state.last_balance == pytest.approx(balance + profit) and state.daily_pnl == pytest.approx(profit)
    assert deal in state.booked_deals and state.unsettled == ()
    assert not _entry_refused(rig)

    exits = [r.detail for r in rig.records("fill") if r.detail.get("ticket") == ticket]
    assert [(e["reason"], e["booked_deals"], bool(e.get("deals_missing")), bool(e.get("resolved")))
            for e in exits] == [("unknown", [], True, False), ("external", [deal], False, True)]
    refusals = [r.detail for r in rig.records("risk_refusal") if r.detail.get("unsettled_position") == ticket]
    assert refusals and refusals[0]["persisted"] is True
    entries = [r.detail["reason"] for r in rig.records("risk_refusal") if r.detail.get("side") == 1]
    assert entries and all("not booked" in reason for reason in entries)
    awaiting = [r.detail.get("awaiting_deals") for r in rig.records("reconcile")]
    assert [ticket] in awaiting and awaiting[-1] is None


def test_a_restart_while_a_position_is_unsettled_still_books_it_once(
        make_rig: Callable[..., Rig], risk_stores: Callable[[], Any], tmp_path: Path) -> None:  # noqa: F811
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=risk_stores(), session="late",
                   audit_root=tmp_path / "audit")
    balance = rig.risk.get_risk_metrics()["last_balance"]
    ticket, deal, profit = _closed_with_a_late_deal(rig, DELAY_BARS)
    _bar(rig)
    assert ticket in risk_stores().load("late").unsettled_positions
    # The process dies here (nothing after the last completed bar is written). A new one, same stores:
    again = make_rig(decision=QUIET, max_bars=None, simulator=rig.simulator, risk_store=risk_stores(),
                     session="late", audit_root=tmp_path / "audit")
    refused = again.risk.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and str(ticket) in refused["reason"]  # from the stored state alone
    again.loop.start()
    for _ in range(DELAY_BARS + 3):
        _bar(again)
    state = risk_stores().load("late")
    assert state.unsettled == () and deal in state.booked_deals
    assert state.last_balance == pytest.approx(balance + profit), "booked twice, or not at all"
    assert state.daily_pnl == pytest.approx(profit)
    booked = [r.detail["booked_deals"] for r in again.records("fill") if r.detail.get("ticket") == ticket]
    assert [b for b in booked if b] == [[deal]]
    assert again.risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True


def test_an_unsettled_position_is_an_error_naming_the_settle_command_and_a_late_deal_never_doubles_it(
        make_rig: Callable[..., Rig], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "risk" / "state.json"
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=JsonFileRiskStore(path), session="late",
                   unsettled_alarm_seconds=150.0)
    ticket, deal, profit = _closed_with_a_late_deal(rig, delay_bars=20)
    balance = rig.risk.get_risk_metrics()["last_balance"]
    with caplog.at_level(logging.ERROR, logger="engine.trading.live"):
        for _ in range(8):
            _bar(rig)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and str(ticket) in r.getMessage()]
    command = f"python -m engine.risk_cli --key late settle --position {ticket} --profit PROFIT --by NAME"
    assert len(errors) == 2 and all(command in e for e in errors)  # after 2.5 min, and again 2.5 min later
    overdue = [r.detail for r in rig.records("risk_refusal") if r.detail.get("overdue")]
    assert len(overdue) == 2 and command in overdue[0]["reason"]
    assert ticket in JsonFileRiskStore(path).load("late").unsettled_positions  # never dropped

    settled = subprocess.run([sys.executable, "-m", "engine.risk_cli", "--file", str(path), "--key", "late",
                              "settle", "--position", str(ticket), "--profit", f"{profit:.2f}", "--by", "carol"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert settled.returncode == 0, settled.stderr
    assert json.loads(settled.stdout)["unsettled_positions"] == {}
    for _ in range(16):  # the deal reaches the history now: nothing is booked on top of the operator's figure
        _bar(rig)
    state = JsonFileRiskStore(path).load("late")
    assert state.unsettled == () and state.changed_by == "carol"
    assert state.last_balance == pytest.approx(balance + round(profit, 2))
    assert deal not in state.booked_deals
    assert not _entry_refused(rig)
    assert all(not r.detail.get("booked_deals") for r in rig.records("fill") if r.detail.get("ticket") == ticket)
