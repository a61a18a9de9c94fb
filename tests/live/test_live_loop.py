"""The live loop against the simulator: closed bars only, stops sent with each order, reconciliation, risk
refusals with their reasons, a graceful stop, flattening, and an audit trail of all of it."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from engine.timeframes import parse
from engine.trading.execution import send_order
from engine.trading.live_feed import BrokerBarFeed
from tests.live.conftest import DECISION, REPLAY_START


def test_the_feed_hands_out_closed_bars_only(make_rig, sample_bars: pd.DataFrame) -> None:
    rig = make_rig()
    raw = rig.client.bars("BTCUSD", "M1", 3)
    forming = pd.Timestamp(REPLAY_START)
    assert raw.index[-1] == forming  # the broker shows the bar still forming (its open price only)
    closed = BrokerBarFeed(rig.client, "BTCUSD", parse("M1")).closed_bars(3)
    assert closed.index[-1] == forming - pd.Timedelta(minutes=1)
    pd.testing.assert_frame_equal(closed, sample_bars.loc[closed.index], check_freq=False, check_names=False)
    rig.simulator.advance(1)
    assert BrokerBarFeed(rig.client, "BTCUSD", parse("M1")).closed_bars(1).index[-1] == forming


def test_every_entry_carries_its_stop_loss_and_take_profit(make_rig) -> None:
    rig = make_rig(max_bars=90)
    rig.run()
    requests = [r for r in rig.records("order_request") if r.detail["action"] == "open"]
    assert requests, "the model should trade within 90 bars"
    sent = pd.DataFrame(rig.simulator.market.account.history_orders).set_index("comment")
    for request in requests:
        d, side = request.detail, request.detail["side"]
        # levels from the price the position closes at: the bid for a long, the ask for a short
        exit_quote = d["quote_bid"] if side > 0 else d["quote_ask"]
        assert d["sl"] == pytest.approx(exit_quote - side * DECISION.stop_loss * 0.01)
        assert d["tp"] == pytest.approx(exit_quote + side * DECISION.take_profit * 0.01)
        order = sent.loc[d["comment"]]
        assert (order["sl"], order["tp"]) == (pytest.approx(d["sl"]), pytest.approx(d["tp"]))


def test_reconciles_at_start_and_never_touches_other_strategies(make_rig) -> None:
    rig = make_rig(max_bars=30, flatten_on_stop=True)
    mine = send_order("BTCUSD", 0.2, "sell", client=rig.client, magic=rig.loop.settings.magic)
    other = send_order("BTCUSD", 0.3, "buy", client=rig.client, magic=777)
    assert mine["success"] and other["success"]
    rig.run()
    start = rig.records("reconcile")[0]
    assert start.detail["why"] == "start" and start.detail["side"] == -1 and start.detail["foreign"] == 1
    first = rig.records("decision")[0]
    assert first.detail["held"] == -1  # the loop took over the position the broker holds for its magic
    positions = rig.client.positions("BTCUSD")
    assert positions["magic"].tolist() == [777] and positions["volume"].tolist() == [0.3]  # flattened: only ours
    assert rig.records()[-1].kind == "session_stop"


def test_a_halted_risk_manager_refuses_entries_with_its_reason(make_rig) -> None:
    rig = make_rig(max_bars=60)
    rig.risk.halt(by="test", note="operator pause")
    rig.run()
    refusals = rig.records("risk_refusal")
    assert refusals and all("HALTED" in r.detail["reason"] for r in refusals)
    assert not [r for r in rig.records("order_request") if r.detail["action"] == "open"]
    assert rig.client.positions("BTCUSD").empty


def test_a_stop_request_ends_the_session_after_the_bar_in_progress(make_rig) -> None:
    rig = make_rig(max_bars=None)
    looks = 0
    wait = rig.loop.clock.wait

    def counting(stop: threading.Event) -> bool:
        nonlocal looks
        looks += 1
        if looks == 25:
            rig.stop.set()  # as SIGTERM does: the handler only sets the event
        return wait(stop)

    rig.loop.clock.wait = counting
    stats = rig.run()
    records = rig.records()
    assert stats.bars == 24
    assert sum(r.kind == "bar" for r in records) == sum(r.kind == "bar_done" for r in records) == 24
    assert records[-1].kind == "session_stop" and records[-1].detail["reason"] == "stop requested"
    held = rig.records("reconcile")[-1].detail["side"]
    assert (not rig.client.positions("BTCUSD").empty) == (held != 0)  # positions stay without flatten_on_stop


def test_heartbeat_names_position_equity_last_bar_lag_and_state(make_rig) -> None:
    rig = make_rig(max_bars=5)
    rig.run()
    line = rig.loop.heartbeat().line()
    for part in ("last bar 2024-02-22 00:04", "lag", "position", "equity 10,", "state ACTIVE", "bars 5"):
        assert part in line, line
