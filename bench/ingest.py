"""Ingestion speed: the TimescaleDBClient write paths against raw COPY, and the whole simulator -> ingestor path.

Part ``store`` (both servers: the throwaway PostgreSQL 15 and TimescaleDB 2.19 clusters of the test harness):
1M ticks and 1M one-minute bars through ``insert_ticks`` / ``insert_ohlcv`` against, in the same run, a raw
binary COPY of the same rows (encoded by the same encoder) into a table of the same shape without constraints
or indexes (on TimescaleDB a hypertable with the same chunk interval; a plain table is printed for context).
Cases: the append-only path (nothing stored is newer), the checked path forced on an empty series, a re-send
of all rows (every row stored already: the whole conflict check, nothing written), and half overlap.

Part ``pipeline``: the simulator serving ticks and bars over HTTP on 127.0.0.1, a DataIngestor writing them to
each store; sustained rows/s and p50/p99 lag (source time of a row to its commit), against the simulator's
raw serving rate (the same requests, no ingestor) in the same run. See bench/_ingest_pipeline.py.

Run:  .venv/bin/python bench/ingest.py [--rows 1000000] [--repeat 3] [--servers pg,tsdb] [--part store,pipeline]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from psycopg2 import sql

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the throwaway clusters come from the test harness (tests/pgcluster.py)

from engine.storage import pgcopy  # noqa: E402
from engine.storage.timescaledb import TimescaleDBClient  # noqa: E402
from tests.pgcluster import PgServer, start_cluster  # noqa: E402
from tests.tsdbcluster import TimescaleUnavailable, start_timescale  # noqa: E402


def make_ticks(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="137ms", tz="UTC", name="timestamp")
    bid = 60_000 + np.cumsum(rng.normal(0, 1, n)).round(2)
    return pd.DataFrame({"bid": bid, "ask": bid + 0.5, "volume": rng.random(n).round(4)}, index=index)


def make_bars(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    close = 30_000 + np.cumsum(rng.normal(0, 5, n))
    open_ = np.r_[close[0], close[:-1]]
    wick = rng.random((2, n)) * 3
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + wick[0],
                         "low": np.minimum(open_, close) - wick[1], "close": close,
                         "volume": rng.random(n) * 10}, index=index)


def raw_fields(kind: str, frame: pd.DataFrame) -> tuple[list[pgcopy.Column], str]:
    if kind == "ticks":
        return [pgcopy.Column("text", "BTCUSD"), pgcopy.Column("timestamptz", frame.index),
                *(pgcopy.Column("float8", frame[c].to_numpy()) for c in ("bid", "ask", "volume"))], "ticks"
    return [pgcopy.Column("text", "BTCUSD"), pgcopy.Column("timestamptz", frame.index),
            *(pgcopy.Column("float8", frame[c].to_numpy()) for c in ("open", "high", "low", "close", "volume")),
            pgcopy.Column("text", "M1")], "ohlcv"


def timed(fn: Callable[[], object], prepare: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        prepare()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


class StoreBench:
    def __init__(self, client: TimescaleDBClient, rows: int, repeat: int) -> None:
        self.db, self.rows, self.repeat = client, rows, repeat
        self.hyper = bool(client.hypertables)

    def sql(self, statement: sql.Composable | str, args: tuple = ()) -> None:
        with self.db._tx() as cur:
            cur.execute(statement, args)

    def empty(self) -> None:
        self.sql("TRUNCATE ticks, ohlcv, series_heads")

    def reference_tables(self, table: str) -> list[tuple[str, str]]:
        """(label, table) of the raw COPY targets: the same columns, no constraints. Plain PostgreSQL: without
        any index (the strict reference) and with the store's BRIN time index (the same shape); TimescaleDB: a
        hypertable with the same chunk interval (the same shape: the store keeps no index there) and, for
        context, a plain table."""
        plain, shaped = f"raw_{table}_plain", f"raw_{table}_shaped"
        for name in (plain, shaped):
            self.sql(sql.SQL("CREATE TABLE IF NOT EXISTS {r} (LIKE {t})").format(r=sql.Identifier(name),
                                                                                t=sql.Identifier(table)))
        if self.hyper:
            interval = self.db.layout.tick_chunk if table == "ticks" else self.db.layout.bar_chunk
            self.sql("SELECT create_hypertable(%s, 'timestamp', chunk_time_interval => %s::interval, "
                     "create_default_indexes => FALSE, if_not_exists => TRUE)", (shaped, interval))
            return [("raw COPY, plain table, no index", plain), ("raw COPY, hypertable (reference)", shaped)]
        self.sql(sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {r} USING brin (timestamp)").format(
            i=sql.Identifier(f"{shaped}_brin"), r=sql.Identifier(shaped)))
        return [("raw COPY, plain table, no index (reference)", plain), ("raw COPY, plain table + BRIN", shaped)]

    def raw_copy(self, target: str, kind: str, frame: pd.DataFrame) -> None:
        with self.db._tx() as cur:
            fields, _ = raw_fields(kind, frame)
            cur.copy_expert(sql.SQL("COPY {t} FROM STDIN WITH (FORMAT binary)").format(t=sql.Identifier(target)),
                            pgcopy.encode(fields, len(frame)), size=1 << 20)

    def run(self, kind: str, frame: pd.DataFrame) -> dict[str, list[float]]:
        """Seconds per case and repeat; the cases of one repeat run back to back so that each repeat's ratios
        compare runs made under the same machine load (other jobs share these cores)."""
        table = "ticks" if kind == "ticks" else "ohlcv"
        refs = self.reference_tables(table)

        def write(data: pd.DataFrame, **kw: object) -> int:
            if kind == "ticks":
                return self.db.insert_ticks(data, "BTCUSD", **kw)
            return self.db.insert_ohlcv(data, "BTCUSD", "M1", **kw)

        half = len(frame) // 2
        cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = []
        for label, ref in refs:
            cases.append((label, lambda r=ref: self.raw_copy(r, kind, frame),
                          lambda r=ref: self.sql(sql.SQL("TRUNCATE {}").format(sql.Identifier(r)))))
        cases += [
            ("append-only path (store empty)", lambda: write(frame), self.empty),
            ("checked path forced, nothing stored", lambda: write(frame, append_only=False), self.empty),
            ("re-send, all rows stored (0 new)", lambda: write(frame), lambda: (self.empty(), write(frame))),
            ("half stored, half new", lambda: write(frame), lambda: (self.empty(), write(frame.iloc[:half]))),
        ]
        results: dict[str, list[float]] = {label: [] for label, _, _ in cases}
        for _ in range(self.repeat):
            for label, fn, prepare in cases:
                results[label] += timed(fn, prepare, 1)
        return results


def report(server: str, kind: str, rows: int, results: dict[str, list[float]]) -> None:
    """Median seconds and rows/s per case; ratios are rows/s over a raw COPY's rows/s in the same repeat
    (median over the repeats), against each raw COPY target."""
    raws = [k for k in results if k.startswith("raw COPY")]
    short = {k: "ref" if "reference" in k else ("same shape" if "BRIN" in k else "plain") for k in raws}
    print(f"\n{server}: {rows:,} {kind}")
    print(f"{'case':<46}{'median s':>9}{'best s':>8}{'rows/s':>12}" + "".join(f"{'vs ' + short[k]:>14}" for k in raws))
    for name, secs in results.items():
        med = statistics.median(secs)
        ratios = [statistics.median(r / s for r, s in zip(results[k], secs, strict=True)) for k in raws]
        print(f"{name:<46}{med:>9.3f}{min(secs):>8.3f}{rows / med:>12,.0f}" + "".join(f"{x:>14.2f}" for x in ratios))


def start(name: str) -> PgServer:
    password = secrets.token_urlsafe(16)
    if name == "pg":
        return start_cluster(Path(tempfile.mkdtemp(prefix="bench-pg-")) / "pg", password)
    return start_timescale(password)


def store_part(servers: list[str], rows: int, repeat: int) -> None:
    ticks, bars = make_ticks(rows), make_bars(rows)
    for name in servers:
        try:
            server = start(name)
        except TimescaleUnavailable as exc:
            print(f"\n{name}: skipped ({exc})")
            continue
        try:
            with TimescaleDBClient(server.host, server.port, server.dbname, server.user, server.password) as db:
                db.create_schema()
                bench = StoreBench(db, rows, repeat)
                label = "TimescaleDB 2.19 (apache)" if db.hypertables else "PostgreSQL 15"
                report(label, "ticks", rows, bench.run("ticks", ticks))
                report(label, "M1 bars", rows, bench.run("bars", bars))
        finally:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--servers", default="pg,tsdb")
    ap.add_argument("--part", default="store,pipeline")
    ap.add_argument("--seconds", type=float, default=20.0, help="pipeline: sustained run per store")
    args = ap.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    parts = args.part.split(",")
    if "store" in parts:
        store_part(servers, args.rows, args.repeat)
    if "pipeline" in parts:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _ingest_pipeline import pipeline_part

        pipeline_part(servers, args.seconds, start)


if __name__ == "__main__":
    main()
