"""Where the RiskManager's state survives restarts: a JSON file (embedded default) or a PostgreSQL table.

Both implement :class:`engine.trading.risk_state.RiskStateStore` with compare-and-set writes on the
state's ``version``, so an operator's reset (``python -m engine.risk_cli``) from another process is never
overwritten by an engine that read the state before it. The booked deals, unknown orders and unsettled
positions are part of
the state record (a JSON list in the file, JSONB columns in the table), so booking a trade and remembering
it is one write. A damaged file or row is an error, never an empty state: starting afresh would forget the
day's losses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json

from engine.errors import DataQualityError, StorageError
from engine.storage.pgstore import PgStore
from engine.trading.risk_state import RiskState, RiskStatus, booked_from, unresolved_from, unsettled_from

FORMAT = "engine-risk-state/1"


class JsonFileRiskStore:
    """All keys' states in one small JSON file, replaced atomically (write a temp file, fsync, rename).

    Read-compare-write runs under an exclusive ``flock`` on ``<file>.lock`` so the engine and the
    operator's command cannot interleave (same machine; the file is not meant for network shares).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"JsonFileRiskStore({str(self.path)!r})"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path.with_name(self.path.name + ".lock"), "a+b")  # noqa: SIM115 - held for the block
        except OSError as exc:
            raise StorageError(f"cannot open the risk state lock next to {self.path}: {exc.strerror}") from None
        with fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _read_all(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
        except ValueError:
            raise DataQualityError(f"{self.path} is not valid JSON: the risk state is damaged; restore it or "
                                   "move it away and reset with `python -m engine.risk_cli reset`") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("states"), dict):
            raise DataQualityError(f"{self.path} is not an {FORMAT} file")
        return doc["states"]

    def load(self, key: str) -> RiskState | None:
        with self._locked():
            raw = self._read_all().get(key)
        return None if raw is None else RiskState.from_dict(raw)

    def save(self, key: str, state: RiskState) -> bool:
        with self._locked():
            states = self._read_all()
            held = states.get(key)
            held_version = 0 if held is None else int(held.get("version", 0))
            if state.version != held_version + 1:
                return False
            states[key] = state.to_dict()
            self._write({"format": FORMAT, "states": states})
        return True

    def _write(self, doc: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself survives a power cut
            finally:
                os.close(dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(f"cannot write {self.path}: {exc.strerror}; the previous state is intact") from None


_COLUMNS = ("peak_balance", "day_start_balance", "last_balance", "daily_pnl", "trading_day", "status", "reason",
            "updated_at", "halted_at", "changed_by", "changed_at", "version", "booked", "unresolved",
            "unsettled")
_JSON_COLUMNS = ("booked", "unresolved", "unsettled")

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    key               TEXT             PRIMARY KEY,
    peak_balance      DOUBLE PRECISION NOT NULL,
    day_start_balance DOUBLE PRECISION NOT NULL,
    last_balance      DOUBLE PRECISION NOT NULL,
    daily_pnl         DOUBLE PRECISION NOT NULL,
    trading_day       DATE             NOT NULL,
    status            TEXT             NOT NULL CHECK (status IN ('ACTIVE', 'REDUCING', 'HALTED')),
    reason            TEXT             NOT NULL DEFAULT '',
    updated_at        TIMESTAMPTZ,
    halted_at         TIMESTAMPTZ,
    changed_by        TEXT,
    changed_at        TIMESTAMPTZ,
    version           BIGINT           NOT NULL,
    booked            JSONB            NOT NULL DEFAULT '[]'::jsonb,
    unresolved        JSONB            NOT NULL DEFAULT '[]'::jsonb,
    unsettled         JSONB            NOT NULL DEFAULT '[]'::jsonb
)
"""


class PostgresRiskStore(PgStore):
    """One row per key in ``table`` (``name`` or ``schema.name``; quoted as identifiers, never pasted).

    Connection arguments are the storage group's (``storage=timescaledb``); SSL is required unless
    ``sslmode`` is lowered explicitly. The password stays out of ``repr`` and of every error message.
    A table made before the booked-deals columns existed gets them on first use.
    """

    what = "risk state"

    def __init__(self, host: str, port: int, dbname: str, user: str, password: str, *, sslmode: str = "require",
                 sslrootcert: str | None = None, connect_timeout: int = 10, table: str = "risk_state") -> None:
        super().__init__(host, port, dbname, user, password, sslmode=sslmode, sslrootcert=sslrootcert,
                         connect_timeout=connect_timeout, table=table, application_name="engine-risk")
        self._table = self._identifier()

    def __enter__(self) -> PostgresRiskStore:
        return self

    def _create(self, cur: Any) -> None:
        cur.execute(sql.SQL(_DDL).format(table=self._table))
        # A table from before the booked-deals columns: add them (only then, so a role that may only write
        # rows never needs to alter the table).
        cur.execute(sql.SQL("SELECT * FROM {table} LIMIT 0").format(table=self._table))
        present = {column.name for column in cur.description}
        for column in _JSON_COLUMNS:
            if column not in present:
                cur.execute(sql.SQL("ALTER TABLE {table} ADD COLUMN {column} JSONB NOT NULL DEFAULT '[]'::jsonb")
                            .format(table=self._table, column=sql.Identifier(column)))

    def load(self, key: str) -> RiskState | None:
        query = sql.SQL("SELECT {cols} FROM {table} WHERE key = %s").format(
            cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), table=self._table)
        with self._tx() as cur:
            cur.execute(query, (key,))
            row = cur.fetchone()
        if row is None:
            return None
        raw = dict(zip(_COLUMNS, row, strict=True))
        try:
            return RiskState(
                peak_balance=float(raw["peak_balance"]), day_start_balance=float(raw["day_start_balance"]),
                last_balance=float(raw["last_balance"]), daily_pnl=float(raw["daily_pnl"]),
                trading_day=raw["trading_day"], status=RiskStatus[raw["status"]], reason=raw["reason"],
                updated_at=_utc(raw["updated_at"]), halted_at=_utc(raw["halted_at"]),
                changed_by=raw["changed_by"], changed_at=_utc(raw["changed_at"]), version=int(raw["version"]),
                booked=booked_from(raw["booked"]), unresolved=unresolved_from(raw["unresolved"]),
                unsettled=unsettled_from(raw["unsettled"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataQualityError(f"{self.describe()}: the row of {key!r} is damaged ({exc})") from None

    def save(self, key: str, state: RiskState) -> bool:
        document = state.to_dict()
        values = [Json(document[c]) if c in _JSON_COLUMNS else getattr(state, c) for c in _COLUMNS]
        values[_COLUMNS.index("status")] = state.status.name
        cols = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
        if state.version == 1:
            query = sql.SQL("INSERT INTO {table} (key, {cols}) VALUES (%s, {marks}) ON CONFLICT (key) DO NOTHING").format(
                table=self._table, cols=cols, marks=sql.SQL(", ").join(sql.Placeholder() * len(_COLUMNS)))
            args = [key, *values]
        else:
            sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in _COLUMNS)
            query = sql.SQL("UPDATE {table} SET {sets} WHERE key = %s AND version = %s").format(
                table=self._table, sets=sets)
            args = [*values, key, state.version - 1]
        with self._tx() as cur:
            cur.execute(query, args)
            return cur.rowcount == 1


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(dt.UTC)
