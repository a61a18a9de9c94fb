"""The bridge's trading side over the MetaTrader5 package: order_send and closes, and the search by
magic+comment that settles a terminal timeout before the bridge answers (so the client rarely has to).
Mixed into MT5Backend, which provides the package, its lock and the symbol checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from engine.mt5 import contract
from engine.mt5.bridge.records import as_dict, plain


def name_of(value: int, names: dict[str, int]) -> str:
    return next(name for name, number in names.items() if number == value)


def package_request(mt5: ModuleType, req: contract.OrderRequest, price: float) -> dict[str, Any]:
    """An ``order_send`` request dict in the package's constants (they carry the contract's names:
    TRADE_ACTION_DEAL, ORDER_TYPE_BUY_LIMIT, ...)."""
    action = getattr(mt5, "TRADE_ACTION_" + name_of(req.action, contract.ACTIONS))
    if req.action == contract.TRADE_ACTION_REMOVE:
        return {"action": action, "order": req.order}
    if req.action == contract.TRADE_ACTION_SLTP:
        out = {"action": action, "position": req.position, "sl": float(req.sl), "tp": float(req.tp)}
        return {**out, "symbol": req.symbol} if req.symbol else out
    order_type = getattr(mt5, "ORDER_TYPE_" + name_of(req.type, contract.ORDER_TYPES))
    filling = getattr(mt5, "ORDER_FILLING_" + name_of(req.type_filling, contract.FILLINGS))
    out = {"action": action, "symbol": req.symbol, "volume": float(req.volume), "type": order_type,
           "price": float(price), "sl": float(req.sl), "tp": float(req.tp), "deviation": int(req.deviation),
           "magic": int(req.magic), "comment": req.comment, "type_time": mt5.ORDER_TIME_GTC,
           "type_filling": filling}
    if req.position:
        out["position"] = int(req.position)
    return out


class BridgeOrders:
    """order_send, close_position and the reconciliation they need; every call runs under the package lock."""

    @property
    def mt5(self) -> ModuleType:  # pragma: no cover - MT5Backend's
        raise NotImplementedError

    def _last_error(self) -> tuple[int, str]:  # pragma: no cover - MT5Backend's
        raise NotImplementedError

    def _locked(self, fn: Callable[[], Any]) -> Any:  # pragma: no cover - MT5Backend's
        raise NotImplementedError

    def _check_symbol(self, symbol: str) -> None:  # pragma: no cover - MT5Backend's
        raise NotImplementedError

    def _send(self, request: dict[str, Any], req: contract.OrderRequest) -> dict[str, Any]:
        """order_send under the lock; an unknown outcome is reconciled by magic+comment before answering."""
        mt5 = self.mt5
        res = mt5.order_send(request)
        payload = as_dict(res)
        if not payload:
            code, msg = self._last_error()
            payload = contract.result(contract.RETCODE_CONNECTION,
                                      comment=f"order_send returned nothing ({code}: {msg})")
        payload = {k: plain(payload.get(k, 0)) for k in contract.RESULT_FIELDS}
        if int(payload["retcode"]) in contract.RECONCILE_RETCODES and req.comment:
            found = self._find_locked(req)
            if found is not None:
                return found
        return payload

    def _find_locked(self, req: contract.OrderRequest) -> dict[str, Any] | None:
        start, end = datetime(1970, 1, 2, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        for d in reversed(self.mt5.history_deals_get(start, end) or ()):
            deal = as_dict(d)
            if deal.get("comment") == req.comment and deal.get("magic") == req.magic:
                return contract.result(contract.RETCODE_DONE, deal=int(deal["ticket"]),
                                       order=int(deal.get("order", 0)), volume=float(deal.get("volume", 0)), price=float(deal.get("price", 0)),
                                       comment="found by magic+comment")
        for o in self.mt5.orders_get() or ():
            order = as_dict(o)
            if order.get("comment") == req.comment and order.get("magic") == req.magic:
                return contract.result(contract.RETCODE_PLACED, order=int(order["ticket"]),
                                       volume=float(order.get("volume_initial", 0)),
                                       price=float(order.get("price_open", 0)), comment="found by magic+comment")
        return None

    def order_send(self, req: contract.OrderRequest) -> dict[str, Any]:
        if req.action not in (contract.TRADE_ACTION_REMOVE, contract.TRADE_ACTION_SLTP):
            self._check_symbol(req.symbol)

        def run() -> dict[str, Any]:
            price = req.price
            if req.action == contract.TRADE_ACTION_DEAL and price <= 0:
                tick = as_dict(self.mt5.symbol_info_tick(req.symbol))
                if not tick:
                    return contract.result(contract.RETCODE_PRICE_OFF, comment="no quote for the symbol")
                price = float(tick["ask"] if req.type == contract.ORDER_TYPE_BUY else tick["bid"])
            return self._send(package_request(self.mt5, req, price), req)

        return self._locked(run)

    def close_position(self, ticket: int, volume: float | None, deviation: int, magic: int,
                       comment: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            found = self.mt5.positions_get(ticket=ticket)
            if not found:
                return contract.result(contract.RETCODE_POSITION_CLOSED, comment=f"no open position {ticket}")
            pos = as_dict(found[0])
            tick = as_dict(self.mt5.symbol_info_tick(pos["symbol"]))
            if not tick:
                return contract.result(contract.RETCODE_PRICE_OFF, comment="no quote for the symbol")
            buy_pos = int(pos["type"]) == contract.POSITION_TYPE_BUY
            req = contract.OrderRequest(action=contract.TRADE_ACTION_DEAL, symbol=str(pos["symbol"]),
                                        volume=float(pos["volume"] if volume is None else volume),
                                        type=contract.ORDER_TYPE_SELL if buy_pos else contract.ORDER_TYPE_BUY,
                                        deviation=deviation,
                                        magic=magic or int(pos.get("magic", 0)), comment=comment, position=ticket)
            return self._send(package_request(self.mt5, req, float(tick["bid"] if buy_pos else tick["ask"])), req)

        return self._locked(run)
