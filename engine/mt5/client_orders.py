"""MT5RestClient's trading side: positions, orders, history, and raw order posts with the lookups that
reconciliation needs (the Broker protocol of engine.trading.execution).

Posts are sent once and never resent here. The quant-server bridge keeps no Idempotency-Key, lists deals
per position only and drops a close's comment, so there an order is found by the position it opened
(magic+comment on ``/get_positions``), and a close by the exit deals its position gained since it was sent.

A RiskManager bound with ``guard_orders`` checks every order this client posts that may add exposure, before
it leaves: whoever holds the client (send_order, place_order, the live loop, user code) goes through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.data.frames import to_utc
from engine.errors import BadResponseError, ConfigError, InvalidRequestError
from engine.mt5 import contract, lookups, payloads
from engine.mt5.dialect import (
    QUANT_SERVER,
    close_body,
    is_market,
    missing_route,
    order_body,
    unwrap_list,
    unwrap_result,
)
from engine.trading.broker import RiskCheck, check_order

# pandas loads in the functions that use it: config validation imports this module (--cfg job stays light).
if TYPE_CHECKING:
    import pandas as pd

    from engine.mt5.transport import HttpTransport

_FIRST_DAY, _LAST_DAY = "1970-01-02T00:00:00+00:00", "2100-01-01T00:00:00+00:00"  # read by _utc like any bound


class OrderRoutes:
    """Mixed into MT5RestClient, which provides the transport, the dialect and the server-time offset."""

    transport: HttpTransport
    dialect: str
    _offset: pd.Timedelta | None

    def __init__(self) -> None:
        # comment of a close sent to the quant-server bridge -> (position, its exit deals before the send)
        self._close_marks: dict[str, tuple[int, int]] = {}
        self._specs: dict[str, tuple[float, dict[str, Any]]] = {}  # symbol -> (read at, symbol_info)
        self._order_guard: RiskCheck | None = None

    # -- the risk gate -----------------------------------------------------------------------------------
    @property
    def order_guard(self) -> RiskCheck | None:
        """The RiskManager every order of this client passes (``guard_orders``), or None."""
        return self._order_guard

    def guard_orders(self, risk: RiskCheck) -> None:
        """Bind ``risk`` (a RiskManager) for the client's life: each order request that may add exposure (a
        deal or pending order; not a close, a cancel or a stop change) is sent only if
        ``risk.can_open_position(symbol, volume, side=...)`` allows it, else RiskRefusedError and no request.
        It cannot be unbound or swapped for another gate: build a new client for that."""
        if not callable(getattr(risk, "can_open_position", None)):
            raise ConfigError("risk", f"guard_orders needs a RiskManager (can_open_position), got {risk!r}")
        if self._order_guard is not None and self._order_guard is not risk:
            raise ConfigError("risk", "this client's orders already pass another RiskManager; a gate cannot be "
                                      "replaced, build a new client for a different one")
        self._order_guard = risk

    def server_offset(self, symbol: str = "BTCUSD") -> pd.Timedelta:  # pragma: no cover - the client's
        raise NotImplementedError

    def _utc_to_server(self, ts: pd.Timestamp, symbol: str) -> str:  # pragma: no cover - the client's
        raise NotImplementedError

    # -- reads -------------------------------------------------------------------------------------------
    def positions(self, symbol: str | None = None, magic: int | None = None) -> pd.DataFrame:
        payload = unwrap_list(self.transport.get("/get_positions", symbol=symbol, magic=magic), "positions")
        frame = self._frame(payload, "/get_positions", contract.POSITION_FIELDS, ("time",), symbol)
        # The quant-server bridge ignores ``symbol``: filter here so both dialects answer alike.
        return frame if symbol is None else frame[frame["symbol"] == symbol].reset_index(drop=True)

    def orders(self, symbol: str | None = None) -> pd.DataFrame:
        """Pending orders."""
        if self.dialect == QUANT_SERVER:
            raise missing_route("GET /orders_get", " (it places market orders only)")
        return self._records("/orders_get", contract.ORDER_FIELDS, ("time_setup",), symbol, symbol=symbol)

    def history_deals(self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                      symbol: str = "BTCUSD", position: int | None = None) -> pd.DataFrame:
        """Deals in ``[start, end]`` (UTC; None: unbounded), of one position when given."""
        quant = self.dialect == QUANT_SERVER
        if quant and position is None:
            raise missing_route("GET /history_deals_get without a position", " (it lists deals per position)")
        if quant:  # all three are required there; "Z" makes its timestamp() independent of the host's zone
            start, end = _FIRST_DAY if start is None else start, _LAST_DAY if end is None else end
        params = {k: None if v is None else self._utc_to_server(_utc(v, k), symbol) + ("Z" if quant else "")
                  for k, v in (("from_date", start), ("to_date", end))}
        return self._records("/history_deals_get", contract.DEAL_FIELDS, ("time",), symbol, position=position,
                             **params)

    def history_orders(self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None,
                       symbol: str = "BTCUSD", ticket: int | None = None) -> pd.DataFrame:
        """Orders done, filled or cancelled in ``[start, end]`` (UTC), or the one ``ticket``."""
        if self.dialect == QUANT_SERVER and (ticket is None or start is not None or end is not None):
            raise missing_route("GET /history_orders_get by time", " (it looks orders up by ticket only)")
        params = {k: None if v is None else self._utc_to_server(_utc(v, k), symbol)
                  for k, v in (("start", start), ("end", end))}
        return self._records("/history_orders_get", contract.ORDER_FIELDS, ("time_setup", "time_done"), symbol,
                             ticket=ticket, **params)

    def _records(self, route: str, fields: tuple[str, ...], time_fields: tuple[str, ...],
                 offset_symbol: str | None, **params: Any) -> pd.DataFrame:
        return self._frame(self.transport.get(route, **params), route, fields, time_fields, offset_symbol)

    def _frame(self, payload: Any, route: str, fields: tuple[str, ...], time_fields: tuple[str, ...],
               offset_symbol: str | None) -> pd.DataFrame:
        import pandas as pd

        if self._offset is not None:
            offset = self._offset
        elif isinstance(payload, list) and payload and isinstance(payload[0], dict):
            offset = self.server_offset(offset_symbol or str(payload[0].get("symbol") or "BTCUSD"))
        else:
            offset = pd.Timedelta(0)  # nothing to convert
        return payloads.records_frame(payload, fields, offset, time_fields, f"GET {route}")

    # -- raw order posts (the Broker protocol of engine.trading.execution) --------------------------------
    def post_order(self, body: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        """POST /order once: the server's ``order_send`` result, whatever its retcode. With a bound
        RiskManager, a refused order raises RiskRefusedError and is not sent."""
        if self._order_guard is not None:
            check_order(self._order_guard, body)
        numeric = order_body(body)
        if self.dialect == QUANT_SERVER and numeric.get("position"):
            # that bridge builds its own request from a few fields and would drop "position": a close sent
            # here would open a new, unchecked position instead; closes go through post_close
            raise missing_route("POST /order with a position (a close)", "; use close_position")
        if not is_market(numeric) and self.dialect == QUANT_SERVER:
            raise missing_route("POST /order with a pending order or a cancel", " (it places market orders only)")
        result = self._post("/order", numeric, idempotency_key)
        if str(result.get("retcode")) in (str(contract.RETCODE_INVALID_VOLUME), str(contract.RETCODE_INVALID_PRICE)):
            # the broker may have changed the symbol's contract: send_order's next checks read it afresh
            self.forget_symbol_spec(str(numeric.get("symbol", "")))
        return result

    def forget_symbol_spec(self, symbol: str) -> None:
        """Drop the remembered contract of ``symbol`` (MT5RestClient.symbol_spec reads it again)."""
        self._specs.pop(symbol, None)

    @property
    def idempotent_orders(self) -> bool:
        """Whether the server replays an order's first answer for its Idempotency-Key (ours does; the
        quant-server bridge does not, so a lost order that the look cannot find is never resent there)."""
        return self.dialect != QUANT_SERVER

    def post_close(self, body: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
        """POST /close_position once: the server's ``order_send`` result, whatever its retcode."""
        if self.dialect != QUANT_SERVER:
            return self._post("/close_position", close_body(body, None), idempotency_key)
        ticket = int(body["ticket"])
        held = self.positions()
        held = held[held["ticket"] == ticket]
        if not len(held):
            return contract.result(contract.RETCODE_POSITION_CLOSED, comment=f"no open position {ticket} "
                                                                             "(checked before sending)")
        # That bridge needs the position's type, symbol and volume, and forgets the comment: remember how
        # many exits the position had, so a lost answer can be reconciled by its new exit deal.
        seen = len(lookups.exits(self.history_deals(position=ticket)))
        self._close_marks[str(body.get("comment", ""))] = (ticket, seen)
        return self._post("/close_position", close_body(body, held.iloc[0].to_dict()), idempotency_key)

    def _post(self, path: str, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        what = f"POST {path}"
        try:
            payload = self.transport.request("POST", path, body=dict(body),
                                             headers={contract.IDEMPOTENCY_HEADER: key}, retry=False)
        except InvalidRequestError as exc:
            # A refused order is a 400 that carries MT5's result (both dialects); without it, a refusal
            # of the request itself (or that bridge's bare "Failed to close position").
            payload = getattr(exc, "payload", None)
            carries = isinstance(payload, dict) and (isinstance(payload.get("result"), dict) or "retcode" in payload)
            if not carries:
                if path == "/close_position" and self.dialect == QUANT_SERVER and exc.status == 400:
                    raise BadResponseError(f"{what}: the bridge refused without saying why (no MT5 result): "
                                           f"{exc}; the close may or may not have executed") from None
                raise
        return unwrap_result(payload, what)

    def backoff(self, attempt: int, retry_after: float | None = None) -> None:
        """Wait before retry ``attempt`` (0-based) with this client's backoff or the server's Retry-After."""
        self.transport.backoff(attempt, retry_after)

    def find_order(self, comment: str, *, magic: int | None = None,
                   position: int | None = None) -> dict[str, Any] | None:
        """The deal or pending order carrying ``comment`` (and ``magic``/``position``) as an order result."""
        if self.dialect == QUANT_SERVER:
            return self._find_quant(comment, magic, position)
        found = lookups.deal_result(self.history_deals(), comment, magic, position)
        if found is None and position is None:
            found = lookups.pending_result(self.orders(), comment, magic)
        return found

    def _find_quant(self, comment: str, magic: int | None, position: int | None) -> dict[str, Any] | None:
        if position is not None:
            mark = self._close_marks.get(comment)
            if mark is None or mark[0] != position:
                return None  # no record of the exits before this close: nothing to tell it apart by
            return lookups.exit_result(self.history_deals(position=position), mark[1])
        opened = lookups.opened_position(self.positions(magic=magic), comment, magic)
        if opened is None:
            return None
        return lookups.entry_result(self.history_deals(position=opened), opened)

    def order_state(self, ticket: int) -> int | None:
        """ORDER_STATE_PLACED while pending, else the last state in the order history (None: unknown)."""
        if self.dialect != QUANT_SERVER and (self.orders()["ticket"] == int(ticket)).any():
            return contract.ORDER_STATE_PLACED
        done = self.history_orders(ticket=int(ticket))
        states = done.loc[done["ticket"] == int(ticket), "state"]
        return int(states.iloc[-1]) if len(states) else None


def _utc(value: str | pd.Timestamp, key: str) -> pd.Timestamp:
    try:
        return to_utc(value)
    except (ValueError, TypeError):
        raise InvalidRequestError(f"{key}={value!r} is not a time; use ISO 8601 such as 2024-03-01T00:00Z") from None
