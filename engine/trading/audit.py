"""The live loop's audit trail: what it saw, decided, refused, asked the broker, heard back and got filled.

Every record belongs to a session (the strategy instance: one symbol, timeframe and magic number) and has a
sequence number unique in that session. The loop collects the records of one step and writes them with one
:meth:`AuditStore.append`, which stores all of them or none: a crash or a stop signal never leaves half a
step behind. An order's request is written before it is sent (write-ahead), so a process killed while it
waits for the answer finds the request on restart and reconciles it with the broker instead of guessing.

Kinds (``detail`` keys in docs/live.md): ``session_start``, ``bar``, ``decision``, ``risk_refusal``,
``order_request``, ``order_answer``, ``fill``, ``reconcile``, ``bar_done``, ``session_stop``. Stores live in
:mod:`engine.storage.audit` (Parquet files, a PostgreSQL/TimescaleDB table).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engine.errors import DataQualityError

KINDS = ("session_start", "bar", "decision", "risk_refusal", "order_request", "order_answer", "fill",
         "reconcile", "bar_done", "session_stop")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AuditRecord:
    session: str
    seq: int
    kind: str
    recorded_at: dt.datetime  # wall clock (UTC) when the loop made the record
    bar_time: dt.datetime | None = None  # open time (UTC) of the bar the record is about
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataQualityError(f"unknown audit record kind {self.kind!r}; one of {', '.join(KINDS)}")

    def detail_json(self) -> str:
        return json.dumps(self.detail, sort_keys=True, default=_plain, allow_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def clean_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe values: NaN and infinities become None (JSON has no NaN), numpy scalars plain numbers."""
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if hasattr(value, "item") and not isinstance(value, str | bytes):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, Mapping):
            value = clean_detail(value)
        out[key] = value
    return out


@runtime_checkable
class AuditStore(Protocol):
    """Keeps audit records. ``append`` is atomic (all records or none) and idempotent on (session, seq)."""

    def append(self, records: Sequence[AuditRecord]) -> None: ...

    def read(self, session: str, after_seq: int = -1) -> list[AuditRecord]:
        """Records of ``session`` with ``seq > after_seq``, in sequence order."""
        ...

    def last(self, session: str, kind: str | None = None) -> AuditRecord | None:
        """The record of ``session`` (of ``kind``, when given) with the highest sequence number."""
        ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class MemoryAuditStore:
    """In-process store (tests, benchmarks): a restart forgets it. The reference for the stores' behaviour."""

    def __init__(self) -> None:
        self._records: dict[str, dict[int, AuditRecord]] = {}

    def append(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            self._records.setdefault(record.session, {}).setdefault(record.seq, record)

    def read(self, session: str, after_seq: int = -1) -> list[AuditRecord]:
        held = self._records.get(session, {})
        return [held[seq] for seq in sorted(held) if seq > after_seq]

    def last(self, session: str, kind: str | None = None) -> AuditRecord | None:
        found = [r for r in self.read(session) if kind is None or r.kind == kind]
        return found[-1] if found else None

    def describe(self) -> str:
        return "memory (not persisted)"

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class Resume:
    """What a restarted loop takes over from the trail of its session."""

    last_done: dt.datetime | None = None  # the last bar whose step completed
    stopped: int = 0  # the decision state carried between bars (engine.trading.signals.decide)
    tickets: dict[int, int] = field(default_factory=dict)  # our open positions at the last reconcile: side
    in_flight: list[dict[str, Any]] = field(default_factory=list)  # order requests that got no answer
    # Positions that vanished but whose closing deals the risk store had not taken yet: settled again. (Which
    # deals are booked is the risk state's to say, not the trail's: both are written in one step there.)
    unsettled: dict[int, int] = field(default_factory=dict)
    # Orders of unknown fate whose hold the risk store had not taken (key -> note): held again on restart.
    unheld_orders: dict[str, str] = field(default_factory=dict)


class AuditLog:
    """Collects one step's records and writes them at :meth:`flush`; numbers them per session."""

    def __init__(self, store: AuditStore, session: str, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.session = session
        self._clock = clock or _utcnow
        last = store.last(session)
        self._seq = last.seq if last is not None else -1
        self._pending: list[AuditRecord] = []
        self.written = 0

    def add(self, kind: str, bar_time: dt.datetime | None = None, **detail: Any) -> AuditRecord:
        self._seq += 1
        record = AuditRecord(self.session, self._seq, kind, self._clock(), bar_time, clean_detail(detail))
        self._pending.append(record)
        return record

    def flush(self) -> None:
        """Write what was added since the last flush, as one atomic append."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self.store.append(batch)
        except BaseException:
            self._pending = batch + self._pending  # kept for the next flush; sequence numbers stay unique
            raise
        self.written += len(batch)

    def resume(self) -> Resume:
        """The loop state the trail of this session leaves for a restart."""
        out = Resume()
        done = self.store.last(self.session, "bar_done")
        decision = self.store.last(self.session, "decision")
        reconcile = self.store.last(self.session, "reconcile")
        if done is not None:
            out.last_done = done.bar_time
        if decision is not None:
            out.stopped = int(decision.detail.get("stopped_after") or 0)
        if reconcile is not None:
            out.unsettled = {int(k): int(v) for k, v in (reconcile.detail.get("unsettled") or {}).items()}
            out.tickets = {int(k): int(v) for k, v in (reconcile.detail.get("tickets") or {}).items()} | out.unsettled
            out.unheld_orders = {str(k): str(v) for k, v in (reconcile.detail.get("unheld_orders") or {}).items()}
        since = min((r.seq for r in (done, reconcile) if r is not None), default=-1)
        answered: set[str] = set()
        requests: dict[str, dict[str, Any]] = {}
        for record in self.store.read(self.session, after_seq=since):
            if record.kind == "order_request":
                requests[str(record.detail["key"])] = {**record.detail, "bar_time": record.bar_time}
            elif record.kind == "order_answer":
                answered.add(str(record.detail.get("key")))
            elif (record.kind == "risk_refusal" and record.detail.get("unknown_order")
                  and record.detail.get("persisted") is False and (reconcile is None or record.seq > reconcile.seq)):
                # a hold the store refused, and no reconcile record since to carry it: the process died between
                out.unheld_orders[str(record.detail["unknown_order"])] = str(record.detail.get("reason", ""))
        out.in_flight = [req for key, req in requests.items() if key not in answered]
        return out


__all__ = ["KINDS", "AuditLog", "AuditRecord", "AuditStore", "MemoryAuditStore", "Resume", "clean_detail"]
