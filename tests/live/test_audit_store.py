"""The audit stores (Parquet files, a PostgreSQL table): all-or-nothing appends, idempotent on (session, seq),
ordered reads, and the restart state the trail leaves (last completed bar, requests that got no answer)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import DataQualityError
from engine.storage.audit import ParquetAuditStore, PostgresAuditStore
from engine.trading.audit import AuditLog, AuditRecord

T0 = dt.datetime(2024, 2, 22, tzinfo=dt.UTC)


def _bar(minute: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)


@pytest.fixture(params=["parquet", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "parquet":
        made: Any = ParquetAuditStore(tmp_path / "audit", compact_every=4)
    else:
        pg = request.getfixturevalue("pg")
        made = PostgresAuditStore(pg.host, pg.port, pg.dbname, pg.user, pg.password,
                                  table=f"audit_{secrets.token_hex(4)}")
    yield made
    made.close()


def test_records_come_back_in_order_with_their_details(store: Any) -> None:
    log = AuditLog(store, "s1")
    for minute in range(10):  # more appends than compact_every: reads span parts and segments
        log.add("bar", _bar(minute), close=50_000.5 + minute, fresh=True)
        log.add("decision", _bar(minute), signal=float("nan") if minute == 0 else 1.0, p_up=0.6)
        log.add("bar_done", _bar(minute), seconds=0.001)
        log.flush()
    records = store.read("s1")
    assert [r.seq for r in records] == list(range(30))
    assert records[0].detail == {"close": 50_000.5, "fresh": True}
    assert records[1].detail["signal"] is None  # NaN has no JSON form: stored as null
    assert records[-1].kind == "bar_done" and records[-1].bar_time == _bar(9)
    assert store.last("s1", "decision").bar_time == _bar(9)
    assert [r.seq for r in store.read("s1", after_seq=26)] == [27, 28, 29]
    assert store.read("other") == [] and store.last("other") is None
    # numbering continues where the trail ends, in a new process as in this one
    assert AuditLog(store, "s1").add("bar", _bar(10)).seq == 30


def test_appending_a_batch_twice_stores_it_once(store: Any) -> None:
    batch = [AuditRecord("s2", i, "bar", T0, _bar(i), {"i": i}) for i in range(3)]
    store.append(batch)
    store.append(batch)  # e.g. a retry after a lost acknowledgement
    assert [r.seq for r in store.read("s2")] == [0, 1, 2]


def test_the_trail_tells_a_restart_what_was_in_flight(store: Any) -> None:
    log = AuditLog(store, "s3")
    log.add("reconcile", _bar(0), why="start", side=0, tickets={})
    log.add("bar", _bar(1))
    log.add("decision", _bar(1), stopped_after=-1)
    log.add("order_request", _bar(1), key="k1", action="close", ticket=7)
    log.add("order_answer", _bar(1), key="k1", success=True)
    log.add("fill", _bar(1), action="exit", booked_deals=[101])
    log.add("reconcile", _bar(1), why="after close", side=1, tickets={"8": 1})
    log.add("bar_done", _bar(1))
    log.add("bar", _bar(2))
    log.add("decision", _bar(2), stopped_after=0)
    log.add("order_request", _bar(2), key="k2", action="open", side=1)
    log.flush()  # killed here: k2 has no answer
    resume = AuditLog(store, "s3").resume()
    assert resume.last_done == _bar(1)
    assert [r["key"] for r in resume.in_flight] == ["k2"] and resume.in_flight[0]["bar_time"] == _bar(2)
    assert resume.stopped == 0 and resume.tickets == {8: 1}


def test_a_hold_the_risk_store_refused_is_held_again_when_no_reconcile_carried_it(store: Any) -> None:
    log = AuditLog(store, "s4")
    log.add("reconcile", _bar(0), why="start", side=0, tickets={})
    log.add("bar_done", _bar(0))
    log.add("order_request", _bar(1), key="k1", action="open", side=1)
    log.add("order_answer", _bar(1), key="k1", success=False, unknown=True)
    log.add("risk_refusal", _bar(1), side=0, volume=0.0, unknown_order="k1", persisted=False, reason="fate UNKNOWN")
    log.add("risk_refusal", _bar(1), side=0, volume=0.0, unknown_order="k0", persisted=True, reason="stored")
    log.flush()  # killed before the bar's reconcile record: the refused hold is only in the trail
    assert AuditLog(store, "s4").resume().unheld_orders == {"k1": "fate UNKNOWN"}
    log.add("reconcile", _bar(1), why="after open", side=0, tickets={})  # the hold went in (no unheld_orders)
    log.flush()
    assert AuditLog(store, "s4").resume().unheld_orders == {}


def test_a_failed_append_keeps_the_records_for_the_next_flush(tmp_path: Path) -> None:
    class Flaky(ParquetAuditStore):
        fail = True

        def append(self, records: Any) -> None:
            if self.fail:
                self.fail = False
                raise OSError("disk full")
            super().append(records)

    store = Flaky(tmp_path / "audit")
    log = AuditLog(store, "s4")
    log.add("bar", _bar(0))
    with pytest.raises(OSError, match="disk full"):
        log.flush()
    log.add("bar_done", _bar(0))
    log.flush()
    assert [(r.seq, r.kind) for r in store.read("s4")] == [(0, "bar"), (1, "bar_done")]


def test_parquet_compaction_interrupted_leaves_no_duplicate(tmp_path: Path) -> None:
    store = ParquetAuditStore(tmp_path / "audit", compact_every=100)
    for i in range(5):
        store.append([AuditRecord("s5", i, "bar", T0, _bar(i), {})])
    segments = sorted((tmp_path / "audit" / "s5").glob("seg-*.parquet"))
    kept = {p: p.read_bytes() for p in segments}
    store.compact("s5")
    for path, data in kept.items():  # as if the process died after writing the part, before deleting these
        path.write_bytes(data)
    assert [r.seq for r in store.read("s5")] == [0, 1, 2, 3, 4]
    assert store.last("s5").seq == 4


def test_a_session_name_cannot_leave_the_audit_folder(tmp_path: Path) -> None:
    store = ParquetAuditStore(tmp_path / "audit")
    with pytest.raises(DataQualityError, match="audit session"):
        store.append([AuditRecord("../x", 0, "bar", T0)])
    with pytest.raises(DataQualityError, match="unknown audit record kind"):
        AuditRecord("s", 0, "nap", T0)
