"""Money safety of the live loop against the simulator, with crashes and lost answers.

A position closed while the loop runs is booked with the RiskManager exactly once, whenever the process dies:
the booked deals live in the risk state record (JSON file or PostgreSQL row) and are written with the balances.
An order whose answer is lost beyond reconciliation blocks new entries, persistently, until a later look finds
it at the broker.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.storage.audit import ParquetAuditStore
from engine.storage.risk_state import JsonFileRiskStore, PostgresRiskStore
from engine.trading.audit import AuditRecord
from engine.trading.backtest import BacktestSettings
from engine.trading.execution import close_position, order_comment, send_order
from engine.trading.live import _rows
from engine.trading.risk_state import RiskState
from tests.live.conftest import Rig

QUIET = BacktestSettings(long_threshold=0.99, short_threshold=0.99, sizing="lots", fixed_lots=0.1)  # never trades


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the engine handles it; nothing after it is written."""


class DiesWritingAnExit:
    """An audit store whose process dies when the step that records a closed position is written."""

    def __init__(self, inner: ParquetAuditStore) -> None:
        self.inner, self.dead = inner, False

    def append(self, records: Sequence[AuditRecord]) -> None:
        if self.dead or any(r.kind == "fill" and r.detail.get("action") == "exit" for r in records):
            self.dead = True
            raise Killed
        self.inner.append(records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class DiesBooking:
    """A risk store whose process dies while it writes a booking (nothing of that write is stored)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def save(self, key: str, state: RiskState) -> bool:
        if state.booked:
            raise Killed
        return self.inner.save(key, state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(params=["json", pytest.param("postgres", marks=pytest.mark.postgres)])
def risk_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """A new store object over the same persisted state at each call (one per process)."""
    if request.param == "json":
        yield lambda: JsonFileRiskStore(tmp_path / "risk" / "state.json")
        return
    pg = request.getfixturevalue("pg")
    table = f"risk_live_{uuid.uuid4().hex[:8]}"
    made: list[PostgresRiskStore] = []

    def make() -> PostgresRiskStore:
        made.append(PostgresRiskStore(pg.host, pg.port, pg.dbname, pg.user, pg.password, table=table))
        return made[-1]

    yield make
    for store in made:
        store.close()


def _held_then_closed_elsewhere(rig: Rig) -> tuple[int, float]:
    """The loop takes over a position of its magic, which someone else then closes; returns the position and
    the profit (net of costs) of its closing deal at the broker."""
    assert send_order("BTCUSD", 0.2, "buy", client=rig.client, magic=rig.loop.settings.magic)["success"]
    ticket = int(rig.client.positions("BTCUSD")["ticket"].iloc[0])
    rig.loop.start()  # reconciles: the position is the loop's, recorded in the trail
    rig.simulator.advance(3)
    close_position(rig.client, ticket, magic=777, comment="manual close")
    (deal,) = [d for d in rig.simulator.market.account.deals if d["position_id"] == ticket and d["entry"] == 1]
    profit = float(deal["profit"]) + float(deal.get("commission") or 0) + float(deal.get("swap") or 0)
    assert profit != 0
    return ticket, profit


def _next_bars(rig: Rig) -> None:
    for when, bar in _rows(rig.loop.feed.closed_after(rig.loop.last_time, 100)):
        rig.loop.on_bar(when, bar)


def _restart(make_rig: Callable[..., Rig], rig: Rig, risk_store: Any, tmp_path: Path) -> Rig:
    again = make_rig(decision=QUIET, max_bars=3, simulator=rig.simulator, risk_store=risk_store,
                     audit_root=tmp_path / "audit", session="once")
    again.run()
    return again


def test_killed_after_booking_a_closed_trade_the_restart_does_not_book_it_again(make_rig, risk_stores,
                                                                                tmp_path: Path) -> None:
    audit = DiesWritingAnExit(ParquetAuditStore(tmp_path / "audit", fsync=False))
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=risk_stores(), audit_store=audit, session="once")
    balance = rig.risk.get_risk_metrics()["last_balance"]
    ticket, profit = _held_then_closed_elsewhere(rig)
    with pytest.raises(Killed):
        _next_bars(rig)  # settles the position: books it, then dies writing the trail
    booked = risk_stores().load("once")
    assert booked.last_balance == pytest.approx(balance + profit) and booked.daily_pnl == pytest.approx(profit)

    again = _restart(make_rig, rig, risk_stores(), tmp_path)
    state = risk_stores().load("once")
    assert state.last_balance == pytest.approx(balance + profit), "the closed trade was booked twice"
    assert state.daily_pnl == pytest.approx(profit)
    exits = [r for r in again.records("fill") if r.detail.get("ticket") == ticket]
    assert exits and all(r.detail["booked_deals"] == [] for r in exits)  # settled again, nothing booked


def test_killed_while_booking_a_closed_trade_the_restart_books_it_once(make_rig, risk_stores,
                                                                       tmp_path: Path) -> None:
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=DiesBooking(risk_stores()), session="once")
    balance = rig.risk.get_risk_metrics()["last_balance"]
    ticket, profit = _held_then_closed_elsewhere(rig)
    with pytest.raises(Killed):
        _next_bars(rig)
    assert risk_stores().load("once").last_balance == pytest.approx(balance)  # nothing of the booking stored

    again = _restart(make_rig, rig, risk_stores(), tmp_path)
    state = risk_stores().load("once")
    assert state.last_balance == pytest.approx(balance + profit), "the closed trade was lost"
    (deal,) = [d for d in rig.simulator.market.account.deals if d["position_id"] == ticket and d["entry"] == 1]
    assert state.booked_deals >= {int(deal["ticket"])}
    assert [r.detail["booked_deals"] for r in again.records("fill") if r.detail.get("ticket") == ticket] == \
        [[int(deal["ticket"])]]


def test_an_order_of_unknown_fate_blocks_entries_until_a_later_look_finds_it(make_rig, tmp_path: Path) -> None:
    risk_file = tmp_path / "risk" / "state.json"
    options = {"order_retries": 0, "retries": 0}  # a lost answer is not looked for again by send_order itself
    rig = make_rig(max_bars=None, risk_store=JsonFileRiskStore(risk_file), client_options=options, session="lost")
    faults = rig.simulator.faults
    faults.drop_next, faults.only_route = 1, "/order"  # the first entry executes; its answer never arrives
    wait, looks, blocked = rig.loop.clock.wait, 0, 0

    def watched(stop: threading.Event) -> bool:
        nonlocal looks, blocked
        looks += 1
        if rig.risk.unresolved_orders():
            if faults.only_route == "/order":  # from now on the broker's deal history cannot be read
                faults.only_route, faults.fail_next = "/history_deals_get", 10**6
            blocked += 1
        if blocked >= 12 or looks >= 400:
            stop.set()
        return wait(stop)

    rig.loop.clock.wait = watched
    rig.run()
    assert blocked >= 12, "the model never traded within 400 bars"
    (lost,) = [r for r in rig.records("order_answer") if r.detail.get("unknown")]
    key = lost.detail["key"]
    assert "OrderStateUnknownError" in lost.detail["error"]
    assert rig.loop.orders.counts["orders_unknown"] == 1
    comment = order_comment(key)
    assert sum(d["comment"] == comment for d in rig.simulator.market.account.deals) == 1
    # blocked: no entry was sent after the lost one, and the refusals say why
    assert not [r for r in rig.records("order_request") if r.seq > lost.seq and r.detail["action"] == "open"]
    refusals = [r for r in rig.records("risk_refusal") if r.seq > lost.seq]
    assert refusals and any(r.detail.get("unknown_order") == key for r in refusals)
    assert all(r.detail.get("unknown_order") == key or "order state unknown" in r.detail["reason"]
               for r in refusals)
    assert key in JsonFileRiskStore(risk_file).load("lost").unresolved_orders  # persisted: a restart keeps it

    # A new process, with the history still unreadable: still blocked, from the stored state alone.
    held = make_rig(max_bars=2, simulator=rig.simulator, risk_store=JsonFileRiskStore(risk_file),
                    client_options=options, session="lost")
    refused = held.risk.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and key in refused["reason"]

    # The history is back: the next restart's first look finds the order and lifts the block.
    faults.fail_next = 0
    found = make_rig(max_bars=2, simulator=rig.simulator, risk_store=JsonFileRiskStore(risk_file),
                     client_options=options, session="lost")
    found.run()
    assert JsonFileRiskStore(risk_file).load("lost").unresolved_orders == {}
    resolved = [r for r in found.records("order_answer") if r.detail.get("resolved")]
    assert [r.detail["key"] for r in resolved] == [key] and resolved[0].detail["success"]
    assert sum(d["comment"] == comment for d in rig.simulator.market.account.deals) == 1  # never resent
    assert found.risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True
