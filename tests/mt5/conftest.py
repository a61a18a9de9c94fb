"""Real MT5 REST servers on 127.0.0.1 for the MT5 and execution tests: the simulator (in-process thread
on a free port) and the reference bridge over the fake MetaTrader5 module. Every server is stopped
(bounded). ``wait_until`` replaces sleeps: it polls a condition up to a deadline."""

from __future__ import annotations

import sys
import time
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
    """The reference bridge over the fake MetaTrader5 module, served on a free loopback port."""

    def __init__(self, market: SimMarket, server: ContractServer, module: Any) -> None:
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


@pytest.fixture
def bridge(make_bridge: Callable[..., BridgeUnderTest]) -> BridgeUnderTest:
    return make_bridge()
