"""MetaTrader 5 over REST, the venue adapter: the client, the contract, its server, the simulator, the bridge.

- ``engine.mt5.client.MT5RestClient`` (also ``from engine.mt5 import MT5RestClient``): transport with hard
  deadlines, reads, raw order posts, in this contract's dialect or the quant-server Flask bridge's
  (engine.mt5.dialect); the exactly-once order logic is engine.trading.execution's.
- ``engine.mt5.spec`` (the route table), ``engine.mt5.contract`` (constants, payload shapes, validation),
  ``engine.mt5.service`` (request handling), ``engine.mt5.server`` (ContractServer: the ASGI app of
  engine.mt5.asgi on uvicorn).
- ``engine.mt5.sim`` (``python -m engine.mt5.sim``) and ``engine.mt5.bridge`` (``python -m engine.mt5.bridge``).

Importing this package is cheap: the client (pandas, requests) loads on first use of the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.mt5.client import MT5RestClient

__all__ = ["MT5RestClient"]


def __getattr__(name: str) -> Any:
    if name == "MT5RestClient":
        from engine.mt5.client import MT5RestClient

        return MT5RestClient
    raise AttributeError(f"module 'engine.mt5' has no attribute {name!r}")
