"""The simulator in this process: a market plus its HTTP server, and the client that starts one.

``connector=simulator`` builds :func:`embedded_client`: a simulator on 127.0.0.1 (free port) replaying
real data, and an MT5RestClient pointed at it. The command line is ``python -m engine.mt5.sim``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.mt5.client import MT5RestClient
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings

if TYPE_CHECKING:
    import pandas as pd


class Simulator:
    """A market plus its HTTP server; a context manager. ``port=0`` picks a free port.

    Without ``bars`` and ``ticks`` the data named by ``settings`` is loaded (the bundled sample by
    default). ``faults`` injects the settings' fault rates and the exact faults tests ask for.
    """

    def __init__(self, bars: pd.DataFrame | None = None, *, ticks: pd.DataFrame | None = None,
                 settings: SimSettings | None = None, api_key: str = DEV_TOKEN, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        # The market and its server load here: validating a config resolves embedded_client, which must
        # not start the web stack.
        from engine.mt5.server import ContractServer
        from engine.mt5.sim.data import market_data
        from engine.mt5.sim.faults import Faults
        from engine.mt5.sim.market import SimMarket

        self.settings = settings or SimSettings()
        if bars is None and ticks is None:
            bars, ticks = market_data(self.settings)
        self.market = SimMarket(bars, self.settings, ticks=ticks)
        self.faults = Faults(self.settings)
        self.market.account.deal_delay = self.faults.deal_delay
        self.server = ContractServer(self.market, api_key=api_key, host=host, port=port,
                                     max_bars=self.settings.max_bars, hooks=self.faults)

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

    ``client_options`` are MT5RestClient's keyword arguments (timeouts, retries, ...); ``max_bars``
    defaults to the simulator's cap. ``close()`` stops the simulator too; ``simulator.advance()`` steps
    the replay in step mode.
    """

    def __init__(self, settings: SimSettings | None = None, *, api_key: str = DEV_TOKEN,
                 **client_options: Any) -> None:
        settings = settings or SimSettings()
        self.simulator = Simulator(settings=settings, api_key=api_key).start()
        try:
            options = {"max_bars": settings.max_bars, "seed": settings.seed, **client_options}
            super().__init__(self.simulator.url, api_key, **options)
        except BaseException:
            self.simulator.stop()
            raise

    def close(self) -> None:
        super().close()
        self.simulator.stop()


_SIM_FIELDS = frozenset(f.name for f in dataclasses.fields(SimSettings))
_CLIENT_OPTIONS = frozenset(inspect.signature(MT5RestClient.__init__).parameters) - {"self", "base_url", "api_key"}


def embedded_client(*, api_key: str = DEV_TOKEN, client_max_bars: int | None = None,
                    **options: Any) -> EmbeddedSimulatorClient:
    """The config's construction path (conf/connector/simulator.yaml): one flat set of keys, split into
    the simulator's settings (SimSettings fields) and the client's keyword arguments. A key that is
    neither is refused, never dropped."""
    settings = SimSettings(**{k: v for k, v in options.items() if k in _SIM_FIELDS})
    client_options = {k: v for k, v in options.items() if k not in _SIM_FIELDS}
    unknown = sorted(set(client_options) - _CLIENT_OPTIONS)
    if unknown:
        raise ConfigError(f"connector.{unknown[0]}", "not a simulator or client setting; see "
                                                     "conf/connector/simulator.yaml for the known keys")
    if client_max_bars is not None:
        client_options["max_bars"] = client_max_bars
    return EmbeddedSimulatorClient(settings, api_key=api_key, **client_options)
