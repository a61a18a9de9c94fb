"""Orders of unknown fate across a restart, against the simulator and a JSON risk store.

A request written ahead whose process died before any answer, and of which the broker has no trace when the
restarted loop looks, is not taken as "not executed" (a request cut off mid-send may still reach the broker,
and a service restarted at once looks first): it is held like any order of unknown fate. And an unknown order
whose hold the risk store did not take before the process ended is held again by the restart, from the trail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.storage.risk_state import JsonFileRiskStore
from engine.trading.execution import order_comment
from engine.trading.live_orders import order_key
from engine.trading.risk_state import RiskState
from tests.live.conftest import Rig
from tests.live.test_booking_and_unknown_orders import QUIET
from tests.live.test_unsettled_positions import _bar

NO_RETRIES = {"order_retries": 0, "retries": 0}  # a lost answer is not looked for again by send_order itself


class RefusesHolds(JsonFileRiskStore):
    """A risk store that cannot write a state holding an order of unknown fate (its disk fills up then)."""

    def save(self, key: str, state: RiskState) -> bool:
        if state.unresolved:
            raise OSError("disk full")
        return super().save(key, state)


def _deals_with(rig: Rig, key: str) -> int:
    return sum(d["comment"] == order_comment(key) for d in rig.simulator.market.account.deals)


def test_a_request_the_broker_has_no_trace_of_after_a_restart_stays_of_unknown_fate(
        make_rig: Callable[..., Rig], tmp_path: Path) -> None:
    risk_file = tmp_path / "risk" / "state.json"
    rig = make_rig(decision=QUIET, max_bars=None, risk_store=JsonFileRiskStore(risk_file), session="cut")
    rig.loop.start()
    at = rig.loop.last_time.to_pydatetime()
    key = order_key("cut", at, "open")
    rig.loop.audit.add("order_request", at, key=key, comment=order_comment(key), action="open", side=1, volume=0.1)
    rig.loop.audit.flush()  # written ahead; the process dies before the request reaches the broker

    again = make_rig(decision=QUIET, max_bars=None, simulator=rig.simulator,
                     risk_store=JsonFileRiskStore(risk_file), session="cut")
    again.loop.start()
    (answer,) = [r.detail for r in again.records("order_answer") if r.detail["key"] == key]
    assert answer["unknown"] is True and answer["reconciled"] is True and not answer["success"]
    assert key in JsonFileRiskStore(risk_file).load("cut").unresolved_orders, "not found was taken as not executed"
    refused = again.risk.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and key in refused["reason"]
    for _ in range(3):  # looked for every bar; not finding it does not lift the block
        _bar(again)
    assert key in JsonFileRiskStore(risk_file).load("cut").unresolved_orders
    assert _deals_with(again, key) == 0  # never sent


def test_an_unknown_order_whose_hold_was_not_stored_is_held_again_by_the_restart(
        make_rig: Callable[..., Rig], tmp_path: Path) -> None:
    risk_file = tmp_path / "risk" / "state.json"
    rig = make_rig(max_bars=None, risk_store=RefusesHolds(risk_file), client_options=NO_RETRIES, session="unheld")
    faults = rig.simulator.faults
    faults.drop_next, faults.only_route = 1, "/order"  # the first entry executes; its answer never arrives
    wait, looks = rig.loop.clock.wait, 0

    def watched(stop: threading.Event) -> bool:
        nonlocal looks
        looks += 1
        if rig.loop.orders.counts["orders_unknown"] or looks >= 400:
            stop.set()  # the process ends right after the bar that lost the answer
        return wait(stop)

    rig.loop.clock.wait = watched
    rig.run()
    (lost,) = [r for r in rig.records("order_answer") if r.detail.get("unknown")]
    key = lost.detail["key"]
    assert _deals_with(rig, key) == 1
    assert JsonFileRiskStore(risk_file).load("unheld").unresolved_orders == {}  # the hold never reached the store
    (hold,) = [r.detail for r in rig.records("risk_refusal") if r.detail.get("unknown_order") == key]
    assert hold["persisted"] is False

    # A new process, the store writable again, the deal history unreadable: the trail holds the order again.
    faults.only_route, faults.fail_next = "/history_deals_get", 10**6
    again = make_rig(max_bars=None, simulator=rig.simulator, risk_store=JsonFileRiskStore(risk_file),
                     client_options=NO_RETRIES, session="unheld")
    again.loop.start()
    assert key in JsonFileRiskStore(risk_file).load("unheld").unresolved_orders, "entries reopened after a restart"
    (request,) = [r.detail for r in rig.records("order_request") if r.detail["key"] == key]
    more = "buy" if request["side"] > 0 else "sell"  # more of the position the lost order opened
    refused = again.risk.can_open_position("BTCUSD", 0.1, side=more)
    assert refused["allowed"] is False and key in refused["reason"]

    faults.fail_next = 0  # the history is back: the next look finds the order and lifts the block
    _bar(again)
    assert JsonFileRiskStore(risk_file).load("unheld").unresolved_orders == {}
    resolved: list[Any] = [r.detail for r in again.records("order_answer") if r.detail.get("resolved")]
    assert [d["key"] for d in resolved] == [key] and resolved[0]["success"]
    assert _deals_with(again, key) == 1  # never resent
