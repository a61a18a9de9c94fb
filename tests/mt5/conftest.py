"""Real MT5 REST servers on 127.0.0.1 for the MT5 and execution tests: the simulator (in-process thread
on a free port), the reference bridge over the fake MetaTrader5 module, and the quant-server Flask
bridge's dialect over the same fake module. Every server is stopped (bounded); the requests each kind
served are counted per route and shown in the test summary. ``wait_until`` replaces sleeps: it polls a
condition up to a deadline."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from engine.mt5.client import MT5RestClient
from engine.mt5.server import ContractServer
from engine.mt5.sim.data import read_minute_bars
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.market import SimMarket
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings

# Replay from mid-February so there is history behind and data ahead.
REPLAY_START = "2024-02-15T12:00:00Z"

# (server kind, method, route) -> requests served, over the whole test session.
ROUTE_COUNTS: Counter[tuple[str, str, str]] = Counter()


def count_requests(kind: str, per_route: dict[tuple[str, str], int]) -> None:
    for (method, route), n in per_route.items():
        ROUTE_COUNTS[(kind, method, route)] += n


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROUTE_COUNTS:
        return
    kinds = sorted({k for k, _, _ in ROUTE_COUNTS})
    routes = sorted({(m, r) for _, m, r in ROUTE_COUNTS}, key=lambda mr: (mr[1], mr[0]))
    terminalreporter.section("MT5 REST requests served per route")
    terminalreporter.line(f"{'route':<34}" + "".join(f"{k:>14}" for k in kinds))
    for method, route in routes:
        terminalreporter.line(f"{method + ' ' + route:<34}" +
                              "".join(f"{ROUTE_COUNTS[(k, method, route)]:>14}" for k in kinds))
    terminalreporter.line(f"{'total':<34}" + "".join(
        f"{sum(n for (k, _, _), n in ROUTE_COUNTS.items() if k == kind):>14}" for kind in kinds))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Return as soon as ``condition()`` holds; fail naming ``what`` if it does not within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting until {what}")
        time.sleep(0.01)


@pytest.fixture(scope="session")
def sample_bars() -> pd.DataFrame:
    return read_minute_bars()


@pytest.fixture
def make_simulator(sample_bars: pd.DataFrame) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def _make(bars: pd.DataFrame | None = None, **kwargs: Any) -> Simulator:
        settings = kwargs.pop("settings", None) or SimSettings(start=REPLAY_START)
        sim = Simulator(sample_bars if bars is None and "ticks" not in kwargs else bars, settings=settings,
                        **kwargs).start()
        started.append(sim)
        return sim

    yield _make
    for sim in started:
        sim.stop(timeout=5)
        count_requests("simulator", sim.server.stats.per_route())


@pytest.fixture
def simulator(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator()


@pytest.fixture
def make_client() -> Iterator[Callable[..., MT5RestClient]]:
    made: list[MT5RestClient] = []

    def _make(url: str, **kwargs: Any) -> MT5RestClient:
        opts: dict[str, Any] = {"api_key": DEV_TOKEN, "connect_timeout": 2.0, "read_timeout": 5.0, "retries": 3,
                                "backoff_base": 0.01, "backoff_cap": 0.05, "seed": 7} | kwargs
        client = MT5RestClient(url, **opts)
        made.append(client)
        return client

    yield _make
    for client in made:
        client.close()


@pytest.fixture
def client(simulator: Simulator, make_client: Callable[..., MT5RestClient]) -> MT5RestClient:
    return make_client(simulator.url)


class BridgeUnderTest:
    """A bridge over the fake MetaTrader5 module (ours, or the quant-server dialect's), on a free loopback port."""

    def __init__(self, market: SimMarket, server: Any, module: Any) -> None:
        self.market, self.server, self.mt5 = market, server, module

    @property
    def url(self) -> str:
        return self.server.url

    def advance(self, bars: int = 1) -> int:
        return self.market.advance(bars)


@pytest.fixture
def make_bridge(sample_bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., BridgeUnderTest]]:
    from tests.mt5.bridge.fake_metatrader5 import make_module

    started: list[ContractServer] = []

    def _make(*, call_delay: float = 0.0, settings: SimSettings | None = None) -> BridgeUnderTest:
        market = SimMarket(sample_bars, settings or SimSettings(start=REPLAY_START))
        module = make_module(market, call_delay=call_delay)
        monkeypatch.setitem(sys.modules, "MetaTrader5", module)
        from engine.mt5.bridge import MT5Backend

        backend = MT5Backend()  # loads "MetaTrader5" from sys.modules: the fake
        backend.connect()
        server = ContractServer(backend, api_key=DEV_TOKEN).start()
        started.append(server)
        return BridgeUnderTest(market, server, module)

    yield _make
    for server in started:
        server.stop(timeout=5)
        count_requests("bridge", server.stats.per_route())


@pytest.fixture
def bridge(make_bridge: Callable[..., BridgeUnderTest]) -> BridgeUnderTest:
    return make_bridge()


@pytest.fixture
def make_quant_server(sample_bars: pd.DataFrame) -> Iterator[Callable[..., BridgeUnderTest]]:
    """The quant-server Flask bridge's routes (tests/mt5/quant_server) over the fake MetaTrader5 module."""
    from tests.mt5.bridge.fake_metatrader5 import make_module
    from tests.mt5.quant_server import QuantServer

    started: list[QuantServer] = []

    def _make(*, settings: SimSettings | None = None) -> BridgeUnderTest:
        market = SimMarket(sample_bars, settings or SimSettings(start=REPLAY_START))
        module = make_module(market)
        server = QuantServer(module).start()
        started.append(server)
        return BridgeUnderTest(market, server, module)

    yield _make
    for server in started:
        server.stop()
        count_requests("quant_server", dict(server.requests))


@pytest.fixture
def quant_server(make_quant_server: Callable[..., BridgeUnderTest]) -> BridgeUnderTest:
    return make_quant_server()
