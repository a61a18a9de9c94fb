"""Where the live loop's audit trail is kept: Parquet files (embedded default) or a PostgreSQL/TimescaleDB table.

Both implement :class:`engine.trading.audit.AuditStore`: an append stores every record of the batch or none,
and appending a record twice (same session and sequence number) stores it once.

Parquet: one folder per session under ``root``; each append is one small file ``seg-<first>-<last>.parquet``
(written to a temporary name, fsynced, renamed, the folder fsynced: a crash leaves the file whole or
absent). Every ``compact_every`` segments are merged into one ``part-<first>-<last>.parquet`` the same way,
then the segments are deleted; a crash in between leaves rows twice on disk, which reads drop by sequence
number. File names carry their sequence ranges, so a restart reads only the files it needs.

PostgreSQL: one table (``live_audit`` by default), primary key (session, seq), ``detail`` as JSONB; each append
is one transaction. SSL is required unless ``sslmode`` is lowered; the password is never shown.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import DataQualityError, StorageError
from engine.storage.pgstore import PgStore
from engine.trading.audit import AuditRecord

_SESSION = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")
_FILE = re.compile(r"^(seg|part)-(\d{12})-(\d{12})\.parquet$")
_SCHEMA = pa.schema([("session", pa.string()), ("seq", pa.int64()), ("kind", pa.string()),
                     ("recorded_at", pa.timestamp("us", tz="UTC")), ("bar_time", pa.timestamp("us", tz="UTC")),
                     ("detail", pa.string())])


def _session(name: str) -> str:
    if not isinstance(name, str) or not _SESSION.match(name) or name.startswith("."):
        raise DataQualityError(f"audit session {name!r} must be 1-128 letters, digits or _ . @ + - (it names a "
                               "folder and a key), not starting with a dot")
    return name


def _record(row: dict[str, Any]) -> AuditRecord:
    return AuditRecord(session=row["session"], seq=int(row["seq"]), kind=row["kind"],
                       recorded_at=_utc(row["recorded_at"]), bar_time=_utc(row["bar_time"]),
                       detail=json.loads(row["detail"]) if isinstance(row["detail"], str) else dict(row["detail"]))


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class ParquetAuditStore:
    """Audit records as Parquet files under ``root/<session>/`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], *, compact_every: int = 256, fsync: bool = True) -> None:
        self.root = Path(root)
        self.compact_every = max(int(compact_every), 2)
        self.fsync = fsync
        self._segments: dict[str, int] = {}  # segments written since the last compaction, per session

    def describe(self) -> str:
        return f"parquet:{self.root}"

    def __repr__(self) -> str:
        return f"ParquetAuditStore({str(self.root)!r})"

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> ParquetAuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _folder(self, session: str) -> Path:
        return self.root / _session(session)

    def _files(self, session: str) -> list[tuple[int, int, Path]]:
        folder = self._folder(session)
        if not folder.is_dir():
            return []
        found = [(int(m[2]), int(m[3]), folder / m[0]) for p in folder.iterdir() if (m := _FILE.match(p.name))]
        return sorted(found, key=lambda f: (f[1], f[0]))

    def append(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        sessions = {r.session for r in records}
        if len(sessions) != 1:
            raise DataQualityError(f"one append holds one session's records, got {sorted(sessions)}")
        session = _session(records[0].session)
        seqs = [r.seq for r in records]
        table = pa.table({"session": [r.session for r in records], "seq": seqs, "kind": [r.kind for r in records],
                          "recorded_at": [r.recorded_at for r in records], "bar_time": [r.bar_time for r in records],
                          "detail": [r.detail_json() for r in records]}, schema=_SCHEMA)
        folder = self._folder(session)
        self._write(table, folder / f"seg-{min(seqs):012d}-{max(seqs):012d}.parquet")
        count = self._segments.get(session)
        if count is None:
            count = sum(1 for _, _, p in self._files(session) if p.name.startswith("seg-"))
        else:
            count += 1
        self._segments[session] = count
        if count >= self.compact_every:
            self.compact(session)

    def _write(self, table: pa.Table, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh, compression="zstd")
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
            if self.fsync:
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)  # the rename survives a power cut too
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StorageError(f"cannot write the audit file {path}: {exc.strerror}; nothing was appended") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def compact(self, session: str) -> None:
        """Merge the session's segments into one part file (then delete them)."""
        segments = [f for f in self._files(session) if f[2].name.startswith("seg-")]
        if len(segments) > 1:
            table = self._dedupe(pa.concat_tables([pq.read_table(p) for _, _, p in segments]))
            first, last = min(f[0] for f in segments), max(f[1] for f in segments)
            self._write(table, self._folder(session) / f"part-{first:012d}-{last:012d}.parquet")
            for _, _, path in segments:
                path.unlink(missing_ok=True)
        self._segments[session] = 0

    @staticmethod
    def _dedupe(table: pa.Table) -> pa.Table:
        rows = table.sort_by("seq")
        seq = rows.column("seq").to_pylist()
        keep = [i for i, s in enumerate(seq) if i == 0 or s != seq[i - 1]]
        return rows.take(keep) if len(keep) != len(seq) else rows

    def _rows(self, files: list[tuple[int, int, Path]]) -> list[dict[str, Any]]:
        tables = []
        for _, _, path in files:
            try:
                tables.append(pq.read_table(path, schema=_SCHEMA))
            except FileNotFoundError:
                continue  # compacted meanwhile: its rows are in the part that replaced it
            except (OSError, pa.ArrowException) as exc:
                raise StorageError(f"cannot read the audit file {path}: {exc}") from None
        if not tables:
            return []
        return self._dedupe(pa.concat_tables(tables)).to_pylist()

    def read(self, session: str, after_seq: int = -1) -> list[AuditRecord]:
        files = [f for f in self._files(session) if f[1] > after_seq]
        return [_record(r) for r in self._rows(files) if r["seq"] > after_seq]

    def last(self, session: str, kind: str | None = None) -> AuditRecord | None:
        for entry in reversed(self._files(session)):  # newest first; stop at the first file that has one
            rows = [r for r in self._rows([entry]) if kind is None or r["kind"] == kind]
            if rows:
                return _record(rows[-1])
        return None


_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    session     TEXT        NOT NULL,
    seq         BIGINT      NOT NULL,
    kind        TEXT        NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    bar_time    TIMESTAMPTZ,
    detail      JSONB       NOT NULL,
    PRIMARY KEY (session, seq)
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (session, kind, seq DESC);
"""
_COLUMNS = ("session", "seq", "kind", "recorded_at", "bar_time", "detail")


class PostgresAuditStore(PgStore):
    """Audit records in one PostgreSQL/TimescaleDB table (``name`` or ``schema.name``, quoted as identifiers)."""

    what = "audit"

    def __init__(self, host: str, port: int, dbname: str, user: str, password: str, *, sslmode: str = "require",
                 sslrootcert: str | None = None, connect_timeout: int = 10, table: str = "live_audit") -> None:
        super().__init__(host, port, dbname, user, password, sslmode=sslmode, sslrootcert=sslrootcert,
                         connect_timeout=connect_timeout, table=table, application_name="engine-audit")

    def __enter__(self) -> PostgresAuditStore:
        return self

    def _create(self, cur: Any) -> None:
        from psycopg2 import sql

        index = sql.Identifier(self.table_parts[-1] + "_kind_seq")
        cur.execute(sql.SQL(_DDL).format(table=self._identifier(), index=index))

    def append(self, records: Sequence[AuditRecord]) -> None:
        from psycopg2 import sql
        from psycopg2.extras import execute_values

        if not records:
            return
        rows = [(_session(r.session), r.seq, r.kind, r.recorded_at, r.bar_time, r.detail_json()) for r in records]
        query = sql.SQL("INSERT INTO {table} ({cols}) VALUES %s ON CONFLICT (session, seq) DO NOTHING").format(
            table=self._identifier(), cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)))
        with self._tx() as cur:
            execute_values(cur, query.as_string(cur), rows, template="(%s, %s, %s, %s, %s, %s::jsonb)")

    def _select(self, where: str, args: tuple[Any, ...], tail: str = "ORDER BY seq") -> list[AuditRecord]:
        from psycopg2 import sql

        query = sql.SQL("SELECT {cols} FROM {table} WHERE " + where + " " + tail).format(
            cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), table=self._identifier())
        with self._tx() as cur:
            cur.execute(query, args)
            rows = cur.fetchall()
        return [_record(dict(zip(_COLUMNS, row, strict=True))) for row in rows]

    def read(self, session: str, after_seq: int = -1) -> list[AuditRecord]:
        return self._select("session = %s AND seq > %s", (session, int(after_seq)))

    def last(self, session: str, kind: str | None = None) -> AuditRecord | None:
        if kind is None:
            found = self._select("session = %s", (session,), "ORDER BY seq DESC LIMIT 1")
        else:
            found = self._select("session = %s AND kind = %s", (session, kind), "ORDER BY seq DESC LIMIT 1")
        return found[0] if found else None


__all__ = ["ParquetAuditStore", "PostgresAuditStore"]
