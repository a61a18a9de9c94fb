"""The two dialects the client speaks: this contract (``engine``) and the quant-server Flask bridge's
(``quant_server``: metatrader5-quant-server-python, unmodified), and how to tell them apart.

Where they share a route they share its shape (docs/mt5_rest_api.md), so most answers read alike either
way: wrapped or bare lists, RFC 1123 or ISO times. What differs is what the other bridge lacks: routes
(``/account_info``, ``/fetch_ticks_range``, ``/orders_get``), pending orders, order comments on closes,
history without a position, the Idempotency-Key. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import BadResponseError, InvalidRequestError, OperationalError
from engine.mt5 import contract

ENGINE = "engine"
QUANT_SERVER = "quant_server"
DIALECTS = (ENGINE, QUANT_SERVER)


def detect(health: Any) -> str:
    """The dialect of a ``/health`` answer: ours carries ``version``/``time_utc``; the quant-server bridge's
    is ``{"status": "healthy", "mt5_connected", "mt5_initialized"}`` and nothing more."""
    if isinstance(health, Mapping):
        if str(health.get("version", "")).startswith("engine") or "time_utc" in health:
            return ENGINE
        if "mt5_initialized" in health or health.get("status") == "healthy":
            return QUANT_SERVER
    return ENGINE


def missing_route(route: str, why: str = "") -> OperationalError:
    """The error for a route the quant-server bridge does not have."""
    return OperationalError(f"{route} is not offered by this bridge (metatrader5-quant-server dialect){why}; "
                            "run python -m engine.mt5.bridge on the terminal's host for it, or set "
                            "connector.dialect if the detection is wrong")


def _number(value: Any, names: Mapping[str, int], key: str) -> Any:
    """An enum name ("BUY", "IOC") as the package's number: that bridge compares ``type`` with numbers."""
    if isinstance(value, str):
        text = value.strip().upper()
        for prefix in ("TRADE_ACTION_", "ORDER_TYPE_", "ORDER_FILLING_"):
            text = text.removeprefix(prefix)
        if text in names:
            return names[text]
        raise InvalidRequestError(f"{key}={value!r} is not one of {sorted(names)}")
    return value


def order_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """An ``order_send`` body with numeric enums, which both dialects read (that bridge compares ``type``
    with the package's numbers and refuses "BUY" as an invalid order type)."""
    out = dict(body)
    for key, names in (("action", contract.ACTIONS), ("type", contract.ORDER_TYPES),
                       ("type_filling", contract.FILLINGS)):
        if key in out:
            out[key] = _number(out[key], names, key)
    return out


def is_market(body: Mapping[str, Any]) -> bool:
    """Whether a numeric body is a market order: all the quant-server bridge places (it ignores ``action``
    and ``price``, so anything else must be refused before it could run as one)."""
    return body.get("action", contract.TRADE_ACTION_DEAL) == contract.TRADE_ACTION_DEAL


def close_body(body: Mapping[str, Any], held: Mapping[str, Any] | None) -> dict[str, Any]:
    """The shared close shape ``{"position": {ticket, type, symbol, volume}, ...}`` from the execution
    layer's ``{ticket, volume?, deviation, magic, comment}``; ``held`` is the open position when read."""
    position: dict[str, Any] = {"ticket": int(body["ticket"])}
    if held is not None:
        position.update(type=int(held["type"]), symbol=str(held["symbol"]), volume=float(held["volume"]))
    if body.get("volume") is not None:
        position["volume"] = float(body["volume"])
    return {"position": position, **{k: body[k] for k in ("deviation", "magic", "comment") if k in body}}


def unwrap_result(payload: Any, what: str) -> dict[str, Any]:
    """The MT5 result of an order answer: ``{"message", "result"}``, a refusal's ``{"error", "result"}``,
    or a bare result (older engine servers)."""
    if isinstance(payload, Mapping) and isinstance(payload.get("result"), Mapping):
        payload = payload["result"]
    if not isinstance(payload, Mapping) or "retcode" not in payload:
        raise BadResponseError(f"{what}: the answer carries no MT5 result (retcode): "
                               f"{sorted(payload) if isinstance(payload, Mapping) else type(payload).__name__}")
    return dict(payload)


def unwrap_list(payload: Any, key: str) -> Any:
    """A record list, bare or wrapped as ``{key: [...]}`` (the quant-server bridge's empty position list)."""
    if isinstance(payload, Mapping) and set(payload) == {key} and isinstance(payload[key], list):
        return payload[key]
    return payload
