"""Risk state stores: the JSON file (embedded default) and the PostgreSQL table keep the state exactly,
write compare-and-set (an operator's reset is never overwritten), and refuse damaged records; the
operator command shows and resets the state, recording who and when."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from engine.errors import DataQualityError
from engine.storage.risk_state import JsonFileRiskStore, PostgresRiskStore
from engine.trading.risk import RiskManager
from engine.trading.risk_state import RiskState, RiskStateStore, RiskStatus
from tests.pgcluster import PgServer

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)
STATE = RiskState(peak_balance=10_250.5, day_start_balance=10_100.0, last_balance=9_800.125, daily_pnl=-0.1 - 0.2,
                  trading_day=dt.date(2024, 3, 1), status=RiskStatus.HALTED, reason="daily loss 3.0% reached",
                  updated_at=T0, halted_at=T0, changed_by=None, changed_at=None, version=1)


class Account:
    """A broker account at rest: the RiskManager reads its balance and finds no positions or orders."""

    def __init__(self, balance: float = 10_000.0) -> None:
        self.balance = balance

    def account_info(self) -> dict[str, Any]:
        return {"balance": self.balance, "equity": self.balance, "currency": "USD"}

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        raise AssertionError("not needed")

    def positions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return []

    def orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return []


def check_store_contract(store: RiskStateStore) -> None:
    assert store.load("acct-1") is None
    assert store.save("acct-1", STATE)
    assert store.load("acct-1") == STATE  # exact: floats, times to the microsecond, status, None fields
    assert not store.save("acct-1", STATE)  # version 1 again: someone already wrote it
    second = replace(STATE, status=RiskStatus.ACTIVE, changed_by="alice", changed_at=T0, halted_at=None, version=2)
    stale = replace(second, changed_by="engine", version=3)
    assert not store.save("acct-1", stale)  # skips a version: refused, nothing stored
    assert store.save("acct-1", second)
    assert store.load("acct-1") == second
    assert store.load("acct-2") is None  # keys are independent


def test_json_file_store_keeps_states_exactly_and_compare_and_sets(tmp_path: Path) -> None:
    path = tmp_path / "risk" / "state.json"
    check_store_contract(JsonFileRiskStore(path))
    assert JsonFileRiskStore(path).load("acct-1").changed_by == "alice"  # another process reads the same
    assert {p.name for p in path.parent.iterdir()} == {"state.json", "state.json.lock"}  # no temp files left


def test_a_damaged_state_file_is_an_error_and_the_engine_refuses_new_exposure(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": "engine-risk-state/1", "states": {"default": {"peak_bal', encoding="utf-8")
    with pytest.raises(DataQualityError, match="not valid JSON"):
        JsonFileRiskStore(path).load("default")
    risk = RiskManager(Account(), store=JsonFileRiskStore(path))
    refused = risk.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and "unreadable" in refused["reason"]
    assert risk.get_risk_metrics()["persisted"] is False
    assert path.read_text(encoding="utf-8").endswith("peak_bal")  # never overwritten with a fresh state


_WORKER = """
import sys
from dataclasses import replace
from engine.storage.risk_state import JsonFileRiskStore
store = JsonFileRiskStore(sys.argv[1])
done = 0
while done < int(sys.argv[2]):
    state = store.load("shared")
    if store.save("shared", replace(state, daily_pnl=state.daily_pnl + 1.0, version=state.version + 1)):
        done += 1
"""


def test_json_file_store_loses_no_update_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = JsonFileRiskStore(path)
    assert store.save("shared", replace(STATE, daily_pnl=0.0))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(path), "60"], env=env) for _ in range(3)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0]
    final = store.load("shared")
    assert final.daily_pnl == 180.0 and final.version == 181


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.risk_cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_operator_command_shows_and_resets_and_a_running_engine_keeps_the_reset(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    account = Account()
    risk = RiskManager(account, store=JsonFileRiskStore(path))
    account.balance -= 600.0
    risk.update_after_trade(-600.0)  # 6% down: HALTED

    shown = cli("--file", str(path), "status")
    assert shown.returncode == 1, shown.stderr
    status = json.loads(shown.stdout)
    assert status["state"] == "HALTED" and status["daily_pnl"] == -600.0 and "drawdown" in status["reason"]
    assert cli("--file", str(path), "reset").returncode == 2  # --by is required: who resets is recorded

    reset = cli("--file", str(path), "reset", "--by", "alice", "--note", "reviewed the losses")
    assert reset.returncode == 0, reset.stderr
    after = json.loads(reset.stdout)
    assert after["state"] == "ACTIVE" and after["changed_by"] == "alice" and after["peak_balance"] == 9_400.0
    assert "reviewed the losses" in after["reason"]

    # The engine that halted picks the reset up instead of writing its stale HALTED back.
    assert risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True
    risk.update_after_trade(-10.0)
    kept = JsonFileRiskStore(path).load("default")
    assert kept.status == RiskStatus.ACTIVE and kept.changed_by == "alice" and kept.last_balance == 9_390.0

    assert cli("--file", str(path), "halt", "--by", "bob").returncode == 0
    refused = risk.can_open_position("BTCUSD", 0.1, side="sell")
    assert refused["allowed"] is False and "halted by bob" in refused["reason"]
    assert cli("--file", str(tmp_path / "none.json"), "status").returncode == 2  # nothing to show


# -- PostgreSQL ---------------------------------------------------------------------------------------------
@pytest.fixture
def pg_store(pg: PgServer) -> PostgresRiskStore:
    store = PostgresRiskStore(pg.host, pg.port, pg.dbname, pg.user, pg.password, table="risk_state_test")
    store.create_table()
    with psycopg2.connect(**pg.kwargs(), sslmode="require") as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE risk_state_test")
    yield store
    store.close()


@pytest.mark.postgres
def test_postgres_store_keeps_states_exactly_and_compare_and_sets(pg_store: PostgresRiskStore) -> None:
    check_store_contract(pg_store)
    assert "risk_state_test" in pg_store.describe()


@pytest.mark.postgres
def test_postgres_table_name_is_an_identifier_never_sql(pg: PgServer) -> None:
    hostile = 'risk"; DROP TABLE risk_state_test; --'
    with PostgresRiskStore(pg.host, pg.port, pg.dbname, pg.user, pg.password, table=hostile) as store:
        assert store.save("k", STATE) and store.load("k") == STATE
    with psycopg2.connect(**pg.kwargs(), sslmode="require") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE tablename IN (%s, 'risk_state_test')", (hostile,))
        assert cur.fetchone()[0] == 2  # the odd name is a table of its own; the other one survived
        cur.execute('DROP TABLE "risk""; DROP TABLE risk_state_test; --"')


@pytest.mark.postgres
def test_postgres_restart_mid_losing_day_and_operator_reset(pg: PgServer, pg_store: PostgresRiskStore) -> None:
    def store() -> PostgresRiskStore:
        return PostgresRiskStore(pg.host, pg.port, pg.dbname, pg.user, pg.password, table="risk_state_test")

    account = Account()
    first = RiskManager(account, max_drawdown=0.2, max_daily_loss=0.05, store=store())
    account.balance -= 400.0
    first.update_after_trade(-400.0)
    second = RiskManager(account, max_drawdown=0.2, max_daily_loss=0.05, store=store())  # restarted
    assert second.get_risk_metrics() == first.get_risk_metrics()
    account.balance -= 150.0
    second.update_after_trade(-150.0)  # 5.5% on the day
    refused = second.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and "daily loss 5.50%" in refused["reason"]

    env = {"ENGINE_DB_PASSWORD": pg.password}
    base = ("--postgres", "--host", pg.host, "--port", str(pg.port), "--dbname", pg.dbname, "--user", pg.user,
            "--table", "risk_state_test")
    shown = cli(*base, "status", env=env)
    assert shown.returncode == 1 and json.loads(shown.stdout)["state"] == "HALTED", shown.stderr
    reset = cli(*base, "reset", "--by", "carol", env=env)
    assert reset.returncode == 0, reset.stderr
    assert pg.password not in reset.stdout + reset.stderr
    assert second.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True
    row = pg_store.load("default")
    assert row.changed_by == "carol" and row.status == RiskStatus.ACTIVE and row.daily_pnl == 0.0
    missing = cli(*base, "status", env={"ENGINE_DB_PASSWORD": ""})
    assert missing.returncode == 2 and "ENGINE_DB_PASSWORD" in missing.stderr
