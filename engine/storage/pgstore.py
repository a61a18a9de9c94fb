"""What the small PostgreSQL stores (the audit trail, the risk state) share: one lazily opened connection,
one transaction per call mapped to our errors, and a table created on first use.

A subclass names its table (``name`` or ``schema.name``, quoted as identifiers, never pasted into SQL) and
gives the statements that create it in :meth:`PgStore._create`. SSL is required unless ``sslmode`` is
lowered; the password stays out of ``repr`` and of every error message. psycopg2 is imported on first use,
so a process that keeps its trail in Parquet never loads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from engine.errors import OperationalError, RetryableError, StorageError


class PgStore:
    """Base of the PostgreSQL stores; ``what`` names the table's purpose in errors ("audit", "risk state")."""

    what = "store"

    def __init__(self, host: str, port: int, dbname: str, user: str, password: str, *, sslmode: str = "require",
                 sslrootcert: str | None = None, connect_timeout: int = 10, table: str,
                 application_name: str) -> None:
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise OperationalError(f"{self.what} table {table!r} must be NAME or SCHEMA.NAME")
        self.table = table
        self.table_parts = tuple(parts)
        self.host, self.port, self.dbname, self.user = host, int(port), dbname, user
        self._params: dict[str, Any] = {"host": host, "port": int(port), "dbname": dbname, "user": user,
                                        "password": password, "sslmode": sslmode,
                                        "connect_timeout": int(connect_timeout), "application_name": application_name}
        if sslrootcert:
            self._params["sslrootcert"] = sslrootcert
        self._conn: Any = None
        self._created = False

    def describe(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname} table {self.table}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _identifier(self) -> Any:
        from psycopg2 import sql

        return sql.Identifier(*self.table_parts)

    def _create(self, cur: Any) -> None:
        """Create the table (and what it needs) if missing; runs in the first transaction."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """A cursor in one transaction: committed when the block ends, rolled back on any exception."""
        import psycopg2

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(**self._params)
            except psycopg2.OperationalError as exc:
                raise RetryableError(f"{self.describe()}: cannot connect ({first_line(exc)})") from None
        conn = self._conn
        try:
            with conn, conn.cursor() as cur:
                if not self._created:
                    self._create(cur)
                yield cur
            self._created = True
        except psycopg2.OperationalError as exc:
            self.close()
            raise RetryableError(f"{self.describe()}: connection lost ({first_line(exc)})") from None
        except psycopg2.Error as exc:
            raise StorageError(f"{self.describe()}: {first_line(exc)}") from None

    def create_table(self) -> None:
        """Create the table if it is missing (also done by the first call that reads or writes)."""
        with self._tx():
            pass


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


__all__ = ["PgStore", "first_line"]
