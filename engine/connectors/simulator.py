"""An MT5 simulator speaking the REST contract over real data: ``python -m engine.connectors.simulator``.

It serves real bars (the bundled sample by default) and, optionally, real top-of-book quotes on a
replay clock, fills market and limit orders with spread and slippage, keeps a hedging account and
answers with MT5 retcodes. Fault knobs (error rate, latency, dropped responses, duplicate ticks) are
seeded so a failing test replays exactly. It is the embedded ``connector=simulator``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.connectors.mt5_rest import MT5RestClient
from engine.connectors.server import ContractServer, sleep_bounded
from engine.connectors.sim_market import SimMarket, SimSettings
from engine.data.frames import to_utc
from engine.errors import DataQualityError, OperationalError
from engine.sources.csv import SAMPLE_PATH, CsvBarSource

log = logging.getLogger("engine.connectors.simulator")

# Not a secret: the simulator holds no money. Real deployments use ${secret:mt5_api_key}.
DEV_TOKEN = "sim-dev-token"


@dataclass
class Faults:
    """Seeded fault injection. Rates are probabilities per request; ``fail_next``/``drop_next`` make
    the next N requests (optionally only on ``only_route``) fail or vanish, for exact tests."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    error_status: int = 503
    retry_after: str | None = "0"
    fail_next: int = 0
    drop_next: int = 0
    garble_next: int = 0  # execute, then answer 200 with an HTML page instead of the result
    only_route: str | None = None
    seed: int = 42
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        self._rng = random.Random(self.seed)

    def _applies(self, route: str) -> bool:
        return self.only_route is None or self.only_route == route

    def before(self, method: str, route: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        if self.latency_ms:
            sleep_bounded(self.latency_ms / 1000)
        with self._lock:
            if not self._applies(route):
                return None
            fail = self.fail_next > 0
            if fail:
                self.fail_next -= 1
            elif self.error_rate:
                fail = self._rng.random() < self.error_rate
        if not fail:
            return None
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        return self.error_status, {"error": "simulated server fault; retry later"}, headers

    def drop_response(self, method: str, route: str) -> bool:
        with self._lock:
            if not self._applies(route):
                return False
            if self.drop_next > 0:
                self.drop_next -= 1
                return True
            return bool(self.drop_rate) and self._rng.random() < self.drop_rate

    def garble_response(self, method: str, route: str) -> bool:
        with self._lock:
            if not self._applies(route) or self.garble_next <= 0:
                return False
            self.garble_next -= 1
            return True


def load_bars(path: str | os.PathLike[str] | None = None, start: str | None = None,
              end: str | None = None) -> pd.DataFrame:
    """Real 1-minute bars from a CSV in the shared-data layout (default: the bundled sample)."""
    return CsvBarSource(str(path or SAMPLE_PATH), "M1", start, end).load_bars("BTCUSD", "M1")


def load_quotes(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Top-of-book quotes (``timestamp,bid,ask,...``) as a UTC-indexed tick frame."""
    p = Path(path)
    if not p.is_file():
        raise OperationalError(f"quote file not found: {p}")
    raw = pd.read_csv(p)
    missing = {"timestamp", "bid", "ask"} - set(raw.columns)
    if missing:
        raise DataQualityError(f"{p.name} lacks column(s) {sorted(missing)}; expected timestamp,bid,ask,...")
    raw.index = pd.to_datetime(raw.pop("timestamp"), utc=True, format="ISO8601")
    vol = raw.get("bid_size", 0.0)
    return pd.DataFrame({"bid": raw["bid"].astype("float64"), "ask": raw["ask"].astype("float64"),
                         "volume": vol}, index=raw.index)


class Simulator:
    """A market plus its HTTP server; a context manager. ``port=0`` picks a free port."""

    def __init__(self, bars: pd.DataFrame | None = None, *, ticks: pd.DataFrame | None = None,
                 settings: SimSettings | None = None, faults: Faults | None = None, api_key: str = DEV_TOKEN,
                 host: str = "127.0.0.1", port: int = 0, max_bars: int = 10_000,
                 duplicate_tick_rate: float = 0.0) -> None:
        if bars is None and ticks is None:
            bars = load_bars()
        self.market = SimMarket(bars, settings, ticks=ticks)
        self.market.duplicate_tick_rate = duplicate_tick_rate
        self.faults = faults or Faults()
        self.server = ContractServer(self.market, api_key=api_key, host=host, port=port, max_bars=max_bars,
                                     hooks=self.faults)

    def __repr__(self) -> str:
        return f"Simulator(url={self.url!r})"

    @property
    def url(self) -> str:
        return self.server.url

    def advance(self, bars: int = 1) -> int:
        return self.market.advance(bars)

    def start(self) -> Simulator:
        self.server.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stop(timeout)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedSimulatorClient(MT5RestClient):
    """An MT5RestClient talking to a simulator it started in this process (``connector=simulator``).

    ``close()`` stops the simulator too; ``simulator.advance()`` steps the replay in step mode.
    """

    def __init__(self, *, simulator: Simulator, **client_kwargs: Any) -> None:
        self.simulator = simulator
        super().__init__(simulator.url, **client_kwargs)

    def close(self) -> None:
        super().close()
        self.simulator.stop()


def embedded_client(*, bars_path: str | None = None, ticks_path: str | None = None, data_start: str | None = None,
                    data_end: str | None = None, symbol: str = "BTCUSD", digits: int = 2, spread_points: int = 1500,
                    slippage_points: int = 0, balance: float = 10_000.0, leverage: int = 10,
                    commission_per_lot: float = 0.0, server_offset_hours: float = 2.0, speed: float = 0.0,
                    start: str | None = None, step_on_poll: bool = False, max_bars: int = 10_000,
                    error_rate: float = 0.0, latency_ms: float = 0.0, drop_rate: float = 0.0,
                    duplicate_tick_rate: float = 0.0, seed: int = 42, api_key: str = DEV_TOKEN,
                    connect_timeout: float = 3.0, read_timeout: float = 30.0, retries: int = 3,
                    backoff_base: float = 0.2, backoff_cap: float = 5.0, max_retry_after: float = 30.0,
                    order_retries: int = 2, server_time_offset_hours: float | None = None,
                    client_max_bars: int | None = None) -> EmbeddedSimulatorClient:
    """Start a simulator on 127.0.0.1 (free port) and return a client for it; built from conf/connector."""
    bars = load_bars(bars_path, data_start, data_end) if bars_path or not ticks_path else None
    ticks = load_quotes(ticks_path) if ticks_path else None
    settings = SimSettings(symbol=symbol, digits=digits, spread_points=spread_points,
                           slippage_points=slippage_points, balance=balance, leverage=leverage,
                           commission_per_lot=commission_per_lot, server_offset_hours=server_offset_hours,
                           speed=speed, start=start, step_on_poll=step_on_poll, seed=seed)
    faults = Faults(error_rate=error_rate, latency_ms=latency_ms, drop_rate=drop_rate, seed=seed)
    sim = Simulator(bars, ticks=ticks, settings=settings, faults=faults, api_key=api_key, max_bars=max_bars,
                    duplicate_tick_rate=duplicate_tick_rate).start()
    try:
        return EmbeddedSimulatorClient(
            simulator=sim, api_key=api_key, connect_timeout=connect_timeout, read_timeout=read_timeout,
            retries=retries, backoff_base=backoff_base, backoff_cap=backoff_cap, max_retry_after=max_retry_after,
            order_retries=order_retries, server_time_offset_hours=server_time_offset_hours,
            max_bars=client_max_bars or max_bars, seed=seed)
    except BaseException:
        sim.stop()
        raise


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.connectors.simulator", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    p.add_argument("--bars", default=None, help="1m bar CSV (default: the bundled sample)")
    p.add_argument("--ticks", default=None, help="quote CSV (timestamp,bid,ask,...) to serve as ticks")
    p.add_argument("--data-start", default=None, help="first UTC time of the data to load")
    p.add_argument("--data-end", default=None, help="UTC time to stop loading data at")
    p.add_argument("--start", default=None, help="UTC replay start (default: the last bar)")
    p.add_argument("--speed", type=float, default=0.0,
                   help="replay speed factor (60 = a minute a second); 0 = step mode")
    p.add_argument("--step-on-poll", action="store_true", help="in step mode, each /fetch_data_pos moves one bar")
    p.add_argument("--spread-points", type=int, default=1500)
    p.add_argument("--slippage-points", type=int, default=0)
    p.add_argument("--balance", type=float, default=10_000.0)
    p.add_argument("--leverage", type=int, default=10)
    p.add_argument("--server-offset-hours", type=float, default=2.0, help="broker server time = UTC + this")
    p.add_argument("--max-bars", type=int, default=10_000)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--duplicate-tick-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--api-key-env", default="MT5_API_KEY",
                   help=f"environment variable holding the bearer token (default MT5_API_KEY; "
                        f"unset -> the dev token {DEV_TOKEN!r})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = None if args.start is None else to_utc(args.start).isoformat()
    bars = load_bars(args.bars, args.data_start, args.data_end) if args.bars or not args.ticks else None
    ticks = load_quotes(args.ticks) if args.ticks else None
    settings = SimSettings(spread_points=args.spread_points, slippage_points=args.slippage_points,
                           balance=args.balance, leverage=args.leverage, server_offset_hours=args.server_offset_hours,
                           speed=args.speed, start=start, step_on_poll=args.step_on_poll, seed=args.seed)
    faults = Faults(error_rate=args.error_rate, latency_ms=args.latency_ms, drop_rate=args.drop_rate, seed=args.seed)
    api_key = os.environ.get(args.api_key_env) or DEV_TOKEN
    sim = Simulator(bars, ticks=ticks, settings=settings, faults=faults, api_key=api_key, host=args.host,
                    port=args.port, max_bars=args.max_bars, duplicate_tick_rate=args.duplicate_tick_rate)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=sim.server._httpd.shutdown).start())
    print(f"engine MT5 simulator on {sim.url} (replay at {sim.market.now_utc().isoformat()}; "
          f"token from ${args.api_key_env}{'' if os.environ.get(args.api_key_env) else ' unset: dev token'})",
          flush=True)
    try:
        sim.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.server._httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
