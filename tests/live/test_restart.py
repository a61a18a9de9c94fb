"""Restart safety with real processes: ``python -m engine task=live`` killed with SIGKILL between a decision and
the broker's answer, then started again, reconciles, never places the order twice and resumes from the last
processed bar with the RiskManager's state intact (an operator's halt made while it was down holds); SIGTERM then
stops it cleanly after the bar in progress.

The simulator lives in the test process (it is the broker: it must outlive the engine). Its replay moves one
bar per bar request (``step_on_poll``), so the engine's own polling drives it, and the first order's answer is
held back (the order executes, the answer never comes) until the engine is killed.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from engine.storage.audit import ParquetAuditStore
from engine.trading.execution import order_comment
from tests.live.conftest import REPLAY_START
from tests.mt5.conftest import wait_until

SESSION = "restart"


def _engine(root: Path, url: str, model: Path, log: Path) -> subprocess.Popen[str]:
    args = ["task=live", "connector=mt5_rest", f"connector.base_url={url}", "connector.api_key=${oc.env:SIM_TOKEN}",
            "connector.server_time_offset_hours=2", "connector.read_timeout=60", f"task.model={model}",
            f"task.session={SESSION}", "task.poll_interval=0.05", "task.heartbeat_seconds=1",
            "backtest.sizing=lots", "backtest.fixed_lots=0.1", "backtest.long_threshold=0.52",
            "backtest.short_threshold=0.52", "backtest.stop_loss=5000", "backtest.take_profit=10000",
            "risk.max_drawdown=1.0", "risk.max_daily_loss=1.0", "tracking.enabled=false"]
    env = {**os.environ, "ENGINE_ROOT": str(root), "SIM_TOKEN": DEV_TOKEN, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=root, env=env, text=True,
                            stdout=log.open("a"), stderr=subprocess.STDOUT)


def _records(root: Path) -> list[Any]:
    return ParquetAuditStore(root / "data" / "audit").read(SESSION)


def _kinds(root: Path, kind: str) -> list[Any]:
    return [r for r in _records(root) if r.kind == kind]


@pytest.fixture
def broker(sample_bars: pd.DataFrame) -> Any:
    sim = Simulator(sample_bars, settings=SimSettings(start=REPLAY_START, speed=0.0, step_on_poll=True)).start()
    yield sim
    sim.stop(timeout=5)


def test_sigkill_between_decision_and_answer_then_restart(broker: Simulator, model: Any, tmp_path: Path) -> None:
    model_path = model.save_copy(tmp_path / "models" / "restart" / "pipeline.zip")
    log = tmp_path / "engine.log"
    broker.faults.stall_next, broker.faults.only_route, broker.faults.stall_seconds = 1, "/order", 15.0

    first = _engine(tmp_path, broker.url, model_path, log)
    try:
        # The first order executes at the broker; its answer is held: the engine waits inside send_order.
        wait_until(lambda: bool(broker.market.account.positions) or first.poll() is not None,
                   "the first order executed at the broker", timeout=120)
        assert first.poll() is None, log.read_text()
        requests = _kinds(tmp_path, "order_request")
        assert len(requests) == 1 and not _kinds(tmp_path, "order_answer"), "the request is written ahead"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    in_flight = requests[0]
    last_done = max(r.bar_time for r in _kinds(tmp_path, "bar_done"))
    # While it is down, an operator halts the strategy: the restarted engine must read that state, not start
    # afresh (the RiskManager's state survives restarts in its store).
    risk_file = tmp_path / "data" / "risk" / "state.json"
    halt = subprocess.run([sys.executable, "-m", "engine.risk_cli", "--file", str(risk_file), "--key", SESSION,
                           "halt", "--by", "test", "--note", "restart drill"], capture_output=True, text=True,
                          timeout=60)
    assert halt.returncode == 0, halt.stderr

    second = _engine(tmp_path, broker.url, model_path, log)

    def resumed() -> bool:
        after = [r for r in _records(tmp_path) if r.bar_time is not None and r.bar_time > last_done]
        return sum(r.kind == "bar_done" for r in after) >= 20 and any(r.kind == "risk_refusal" for r in after)

    try:
        wait_until(lambda: resumed() or second.poll() is not None, "20 bars and an entry refused after the restart",
                   timeout=180)
        assert second.poll() is None, log.read_text()
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, log.read_text()
    finally:
        if second.poll() is None:
            second.kill()

    records = _records(tmp_path)
    starts = [r for r in records if r.kind == "session_start"]
    assert len(starts) == 2 and starts[1].detail["in_flight"] == 1
    assert pd.Timestamp(starts[1].detail["resumed_after"]) == pd.Timestamp(last_done)
    # the request that never got an answer was found at the broker, not sent again
    answers = [r for r in records if r.kind == "order_answer" and r.detail["key"] == in_flight.detail["key"]]
    assert len(answers) == 1 and answers[0].detail["reconciled"] and answers[0].detail["success"]
    comment = order_comment(in_flight.detail["key"])
    assert sum(d["comment"] == comment for d in broker.market.account.deals) == 1, "the order was placed twice"
    assert comment == in_flight.detail["comment"]
    # resumed after the last completed bar: no bar completed twice, none skipped
    done = [pd.Timestamp(r.bar_time) for r in records if r.kind == "bar_done"]
    assert len(done) == len(set(done))
    assert all(b - a == pd.Timedelta(minutes=1) for a, b in itertools.pairwise(done))
    # the in-flight bar closed while the engine was down: recorded, not traded again
    redo = [r for r in records if r.kind == "decision" and r.bar_time == in_flight.bar_time]
    assert len(redo) == 2 and not redo[1].detail["fresh"]
    # the halt set while the engine was down holds: every entry after the restart is refused for it
    refusals = [r for r in records if r.kind == "risk_refusal" and r.seq > starts[1].seq]
    assert refusals and all("HALTED" in r.detail["reason"] for r in refusals)
    assert json.loads(risk_file.read_text())["states"][SESSION]["changed_by"] == "test"
    assert not [r for r in records if r.kind == "order_request" and r.seq > starts[1].seq
                and r.detail["action"] == "open"]
    # SIGTERM: the bar in progress completed, the session's end is recorded, nothing half-written
    assert records[-1].kind == "session_stop" and records[-1].detail["reason"] == "stop requested"
    after = [r for r in records if r.seq > starts[1].seq]
    assert sum(r.kind == "bar" for r in after) == sum(r.kind == "bar_done" for r in after)
    assert "heartbeat" in log.read_text()
