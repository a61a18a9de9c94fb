"""The risk state record holds the booked closing deals and the orders of unknown fate with the balances, in
both stores: exactly kept, written in the same compare-and-set as the balances, and read from records written
before those fields existed (a JSON file, a table without the columns)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest

from engine.errors import OperationalError
from engine.storage.risk_state import JsonFileRiskStore, PostgresRiskStore
from tests.pgcluster import PgServer
from tests.storage.test_risk_state_stores import STATE, T0

LEDGER = replace(STATE, booked=((101, T0), (102, T0 + dt.timedelta(seconds=1))),
                 unresolved=(("s/2024-03-01T09:30:00+00:00/open", "no answer (RequestTimeoutError)"),))


def _pg_store(pg: PgServer, table: str) -> PostgresRiskStore:
    return PostgresRiskStore(pg.host, pg.port, pg.dbname, pg.user, pg.password, table=table)


def test_json_store_keeps_booked_deals_and_unknown_orders_exactly(tmp_path: Path) -> None:
    store = JsonFileRiskStore(tmp_path / "state.json")
    assert store.save("k", LEDGER)
    assert store.load("k") == LEDGER and store.load("k").booked_deals == {101, 102}
    assert not store.save("k", replace(LEDGER, booked=(), version=1))  # same compare-and-set as the balances


def test_a_json_record_from_before_the_ledger_reads_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    old = {k: v for k, v in STATE.to_dict().items() if k not in ("booked", "unresolved")}
    path.write_text(json.dumps({"format": "engine-risk-state/1", "states": {"k": old}}), encoding="utf-8")
    assert JsonFileRiskStore(path).load("k") == STATE


@pytest.mark.postgres
def test_postgres_store_keeps_booked_deals_and_unknown_orders_exactly(pg: PgServer) -> None:
    with _pg_store(pg, f"risk_ledger_{uuid.uuid4().hex[:8]}") as store:
        assert store.save("k", LEDGER) and store.load("k") == LEDGER
        moved = replace(LEDGER, booked=(*LEDGER.booked, (103, T0)), unresolved=(), version=2)
        assert not store.save("k", replace(moved, version=3))
        assert store.save("k", moved) and store.load("k") == moved


@pytest.mark.postgres
def test_a_table_from_before_the_ledger_gets_its_columns_and_keeps_its_rows(pg: PgServer) -> None:
    table = f"risk_old_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(**pg.kwargs(), sslmode="require") as conn, conn.cursor() as cur:
        cur.execute(f"""CREATE TABLE {table} (key TEXT PRIMARY KEY, peak_balance DOUBLE PRECISION NOT NULL,
            day_start_balance DOUBLE PRECISION NOT NULL, last_balance DOUBLE PRECISION NOT NULL,
            daily_pnl DOUBLE PRECISION NOT NULL, trading_day DATE NOT NULL, status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '', updated_at TIMESTAMPTZ, halted_at TIMESTAMPTZ, changed_by TEXT,
            changed_at TIMESTAMPTZ, version BIGINT NOT NULL)""")
        cur.execute(f"INSERT INTO {table} VALUES ('k', 10250.5, 10100, 9800.125, -0.30000000000000004, "
                    "'2024-03-01', 'HALTED', %s, %s, %s, NULL, NULL, 1)", (STATE.reason, T0, T0))
    conn.close()
    with _pg_store(pg, table) as store:
        assert store.load("k") == STATE  # the old row, with an empty ledger
        assert store.save("k", replace(LEDGER, version=2)) and store.load("k") == replace(LEDGER, version=2)


def test_both_postgres_stores_share_one_connection_and_transaction_base() -> None:
    from engine.storage.audit import PostgresAuditStore
    from engine.storage.pgstore import PgStore

    for store in (PostgresAuditStore, PostgresRiskStore):
        assert issubclass(store, PgStore)
        assert not {"_tx", "close", "describe", "create_table"} & set(vars(store)), store  # no copy of the base
    secret = "pw-never-shown"
    store = PostgresRiskStore("db.lan", 5432, "engine", "u", secret, table="a.b")
    assert secret not in repr(store) and store.describe() == "postgresql://u@db.lan:5432/engine table a.b"
    with pytest.raises(OperationalError, match=r"NAME or SCHEMA\.NAME"):
        PostgresAuditStore("db.lan", 5432, "engine", "u", secret, table="a.b.c")
