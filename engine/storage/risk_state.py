"""Where the RiskManager's state survives restarts: a JSON file (embedded default) or a PostgreSQL table.

Both implement :class:`engine.trading.risk_state.RiskStateStore` with compare-and-set writes on the
state's ``version``, so an operator's reset (``python -m engine.risk_cli``) from another process is never
overwritten by an engine that read the state before it. A damaged file or row is an error, never an
empty state: starting afresh would forget the day's losses.
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

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from engine.errors import DataQualityError, OperationalError, RetryableError, StorageError
from engine.trading.risk_state import RiskState, RiskStatus

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
            "updated_at", "halted_at", "changed_by", "changed_at", "version")

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
    version           BIGINT           NOT NULL
)
"""


class PostgresRiskStore:
    """One row per key in ``table`` (``name`` or ``schema.name``; quoted as identifiers, never pasted).

    Connection arguments are the storage group's (``storage=timescaledb``); SSL is required unless
    ``sslmode`` is lowered explicitly. The password stays out of ``repr`` and of every error message.
    """

    def __init__(self, host: str, port: int, dbname: str, user: str, password: str, *, sslmode: str = "require",
                 sslrootcert: str | None = None, connect_timeout: int = 10, table: str = "risk_state") -> None:
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise OperationalError(f"risk state table {table!r} must be NAME or SCHEMA.NAME")
        self.table = table
        self._table = sql.Identifier(*parts)
        self.host, self.port, self.dbname, self.user = host, int(port), dbname, user
        self._params: dict[str, Any] = {"host": host, "port": int(port), "dbname": dbname, "user": user,
                                        "password": password, "sslmode": sslmode,
                                        "connect_timeout": int(connect_timeout), "application_name": "engine-risk"}
        if sslrootcert:
            self._params["sslrootcert"] = sslrootcert
        self._conn: psycopg2.extensions.connection | None = None
        self._created = False

    def describe(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname} table {self.table}"

    def __repr__(self) -> str:
        return f"PostgresRiskStore({self.describe()!r})"

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def __enter__(self) -> PostgresRiskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[psycopg2.extensions.cursor]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(**self._params)
            except psycopg2.OperationalError as exc:
                raise RetryableError(f"{self.describe()}: cannot connect ({_first_line(exc)})") from None
        conn = self._conn
        try:
            with conn, conn.cursor() as cur:  # commit on success, roll back on any exception
                if not self._created:
                    cur.execute(sql.SQL(_DDL).format(table=self._table))
                yield cur
            self._created = True
        except psycopg2.OperationalError as exc:
            self.close()
            raise RetryableError(f"{self.describe()}: connection lost ({_first_line(exc)})") from None
        except psycopg2.Error as exc:
            raise StorageError(f"{self.describe()}: {_first_line(exc)}") from None

    def create_table(self) -> None:
        """Create the table if it is missing (also done by the first load or save)."""
        with self._tx():
            pass

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
                changed_by=raw["changed_by"], changed_at=_utc(raw["changed_at"]), version=int(raw["version"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataQualityError(f"{self.describe()}: the row of {key!r} is damaged ({exc})") from None

    def save(self, key: str, state: RiskState) -> bool:
        values = [getattr(state, c) for c in _COLUMNS]
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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
