"""A third server for the contract suite: the routes of the metatrader5-quant-server-python Flask bridge
(``backend/mt5/app/routes/*.py`` and ``lib.py``), written here from docs/mt5_rest_api.md and a reading of
those routes (not copied), over any ``MetaTrader5`` module (tests pass the fake one).

It reproduces that bridge's dialect as deployed: no auth, no Idempotency-Key, no ``/account_info``,
``/fetch_ticks_range`` or ``/orders_get``; ``type`` compared with the package's integers; bar times as
Flask writes datetimes (RFC 1123); an empty position list as ``{"positions": []}``; a refused order as a
400 carrying the result; history by position or ticket only. Three defects of the upstream revision are
not reproduced, because each makes its route fail on every call, so no client can depend on it:
``lib.close_position`` sends a deal on the position's own side (MT5 refuses it: here the opposite deal);
``get_deal_from_ticket`` reads ``mt5.TIMEZONE``, which the package lacks (here: the terminal's clock, the
latest tick's time); it compares a deal type with the string ``'DEAL_TYPE_BUY'`` (here: the constant).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pandas as pd
from flask import Flask, jsonify, request

log = logging.getLogger("tests.quant_server")

TIMEFRAMES = ("M1", "M2", "M3", "M4", "M5", "M6", "M10", "M12", "M15", "M20", "M30", "H1", "H2", "H3", "H4",
              "H6", "H8", "H12", "D1", "W1", "MN1")


def _naive_utc(text: str) -> datetime:
    """fetch_data_range's reading: ISO (a Z becomes +00:00), then tagged UTC; an aware time is refused."""
    ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if ts.tzinfo is not None:
        raise ValueError("Not naive datetime (tzinfo is already set)")
    return ts.replace(tzinfo=UTC)


def create_app(mt5: ModuleType) -> Flask:
    app = Flask("quant_server")

    def timeframe(name: str) -> int:
        key = name.upper()
        if key not in TIMEFRAMES or not hasattr(mt5, f"TIMEFRAME_{key}"):
            raise ValueError(f"Invalid timeframe: '{name}'. Valid options are: {', '.join(TIMEFRAMES)}.")
        return getattr(mt5, f"TIMEFRAME_{key}")

    def bars(rates: Any) -> Any:
        frame = pd.DataFrame(rates)
        frame["time"] = pd.to_datetime(frame["time"], unit="s")
        return jsonify(frame.to_dict(orient="records"))

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "healthy", "mt5_connected": mt5 is not None, "mt5_initialized": mt5.initialize()})

    @app.get("/symbol_info_tick/<symbol>")
    def symbol_info_tick(symbol: str) -> Any:
        tick = mt5.symbol_info_tick(symbol)
        if tick is None:
            return jsonify({"error": "Failed to get symbol tick info"}), 404
        return jsonify(tick._asdict())

    @app.get("/symbol_info/<symbol>")
    def symbol_info(symbol: str) -> Any:
        info = mt5.symbol_info(symbol)
        if info is None:
            return jsonify({"error": "Failed to get symbol info"}), 404
        return jsonify(info._asdict())

    @app.get("/fetch_data_pos")
    def fetch_data_pos() -> Any:
        try:
            symbol = request.args.get("symbol")
            tf_name = request.args.get("timeframe", "M1")
            count = int(request.args.get("num_bars", 100))
            if not symbol:
                return jsonify({"error": "Symbol parameter is required"}), 400
            rates = mt5.copy_rates_from_pos(symbol, timeframe(tf_name), 0, count)
            if rates is None:
                return jsonify({"error": "Failed to get rates data"}), 404
            return bars(rates)
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400

    @app.get("/fetch_data_range")
    def fetch_data_range() -> Any:
        try:
            symbol, start, end = (request.args.get(k) for k in ("symbol", "start", "end"))
            tf_name = request.args.get("timeframe", "M1")
            if not all([symbol, start, end]):
                return jsonify({"error": "Symbol, start, and end parameters are required"}), 400
            rates = mt5.copy_rates_range(symbol, timeframe(tf_name), _naive_utc(start), _naive_utc(end))
            if rates is None:
                return jsonify({"error": "Failed to get rates data"}), 404
            return bars(rates)
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400

    def positions_frame(magic: int | None) -> pd.DataFrame:
        if not mt5.positions_total():
            return pd.DataFrame()
        frame = pd.DataFrame([p._asdict() for p in mt5.positions_get()])
        return frame[frame["magic"] == magic] if magic is not None else frame

    @app.get("/get_positions")
    def get_positions() -> Any:
        frame = positions_frame(request.args.get("magic", type=int))
        if frame.empty:
            return jsonify({"positions": []}), 200
        return jsonify(frame.to_dict(orient="records")), 200

    @app.get("/positions_total")
    def positions_total() -> Any:
        return jsonify({"total": mt5.positions_total()})

    def close(position: dict[str, Any], type_filling: int | None = None) -> Any:
        if "type" not in position or "ticket" not in position:
            return None
        buy = position["type"] == mt5.POSITION_TYPE_BUY
        tick = mt5.symbol_info_tick(position["symbol"])
        if tick is None:
            return None
        result = mt5.order_send({
            "action": mt5.TRADE_ACTION_DEAL, "position": position["ticket"], "symbol": position["symbol"],
            "volume": position["volume"], "type": mt5.ORDER_TYPE_SELL if buy else mt5.ORDER_TYPE_BUY,
            "price": tick.bid if buy else tick.ask, "deviation": 20, "magic": 0, "comment": "",
            "type_time": mt5.ORDER_TIME_GTC,
            "type_filling": mt5.ORDER_FILLING_IOC if type_filling is None else type_filling})
        return result if result.retcode == mt5.TRADE_RETCODE_DONE else None

    @app.post("/close_position")
    def close_position() -> Any:
        data = request.get_json()
        if not data or "position" not in data:
            return jsonify({"error": "Position data is required"}), 400
        result = close(data["position"])
        if result is None:
            return jsonify({"error": "Failed to close position"}), 400
        return jsonify({"message": "Position closed successfully", "result": result._asdict()})

    @app.post("/close_all_positions")
    def close_all_positions() -> Any:
        data = request.get_json(silent=True) or {}
        side, magic = data.get("order_type", "all"), data.get("magic")
        sides = {"BUY": mt5.ORDER_TYPE_BUY, "SELL": mt5.ORDER_TYPE_SELL}
        frame = positions_frame(magic)
        if side != "all":
            frame = frame[frame["type"] == sides[side]] if side in sides and not frame.empty else pd.DataFrame()
        results = [r for r in (close(row.to_dict()) for _, row in frame.iterrows()) if r]
        if not results:
            return jsonify({"message": "No positions were closed"}), 200
        return jsonify({"message": f"Closed {len(results)} positions", "results": [r._asdict() for r in results]})

    @app.post("/modify_sl_tp")
    def modify_sl_tp() -> Any:
        data = request.get_json()
        if not data or "position" not in data:
            return jsonify({"error": "Position data is required"}), 400
        result = mt5.order_send({"action": mt5.TRADE_ACTION_SLTP, "position": data["position"],
                                 "sl": data.get("sl"), "tp": data.get("tp")})
        if result.retcode != mt5.TRADE_RETCODE_DONE:
            return jsonify({"error": f"Failed to modify SL/TP: {result.comment}"}), 400
        return jsonify({"message": "SL/TP modified successfully", "result": result._asdict()})

    @app.post("/order")
    def order() -> Any:
        data = request.get_json()
        if not data:
            return jsonify({"error": "Order data is required"}), 400
        if not all(k in data for k in ("symbol", "volume", "type")):
            return jsonify({"error": "Missing required fields"}), 400
        req = {"action": mt5.TRADE_ACTION_DEAL, "symbol": data["symbol"], "volume": float(data["volume"]),
               "type": data["type"], "deviation": data.get("deviation", 20), "magic": data.get("magic", 0),
               "comment": data.get("comment", ""), "type_time": mt5.ORDER_TIME_GTC,
               "type_filling": data.get("type_filling", mt5.ORDER_FILLING_IOC)}
        tick = mt5.symbol_info_tick(data["symbol"])
        if tick is None:
            return jsonify({"error": "Failed to get symbol price"}), 400
        if data["type"] == mt5.ORDER_TYPE_BUY:
            req["price"] = tick.ask
        elif data["type"] == mt5.ORDER_TYPE_SELL:
            req["price"] = tick.bid
        else:
            return jsonify({"error": "Invalid order type"}), 400
        for level in ("sl", "tp"):
            if level in data:
                req[level] = data[level]
        result = mt5.order_send(req)
        if result.retcode != mt5.TRADE_RETCODE_DONE:
            return jsonify({"error": f"Order failed: {result.comment}", "mt5_error": mt5.last_error()[1],
                            "result": result._asdict()}), 400
        return jsonify({"message": "Order executed successfully", "result": result._asdict()})

    def ticket_arg() -> int:
        ticket = request.args.get("ticket")
        if not ticket:
            raise LookupError
        return int(ticket)

    @app.get("/get_deal_from_ticket")
    def get_deal_from_ticket() -> Any:
        try:
            ticket = ticket_arg()
        except LookupError:
            return jsonify({"error": "Ticket parameter is required"}), 400
        except ValueError:
            return jsonify({"error": "Invalid ticket format"}), 400
        every = mt5.history_deals_get(position=ticket)
        if not every:
            return jsonify({"error": "Failed to get deal information"}), 404
        now = datetime.fromtimestamp(mt5.symbol_info_tick(every[0].symbol).time, UTC)  # the terminal's clock
        deals = mt5.history_deals_get(int((now - timedelta(minutes=15)).timestamp()), int(now.timestamp()),
                                      position=ticket)
        if not deals:
            return jsonify({"error": "Failed to get deal information"}), 404
        frame = pd.DataFrame([d._asdict() for d in deals])
        return jsonify({
            "ticket": ticket, "symbol": frame["symbol"].iloc[0],
            "type": "BUY" if frame["type"].iloc[0] == mt5.DEAL_TYPE_BUY else "SELL",
            "volume": float(frame["volume"].sum()),
            "open_time": datetime.fromtimestamp(int(frame["time"].min()), UTC),
            "close_time": datetime.fromtimestamp(int(frame["time"].max()), UTC),
            "open_price": float(frame["price"].iloc[0]), "close_price": float(frame["price"].iloc[-1]),
            "profit": float(frame["profit"].sum()), "commission": float(frame["commission"].sum()),
            "swap": float(frame["swap"].sum()), "comment": frame["comment"].iloc[-1]})

    @app.get("/get_order_from_ticket")
    def get_order_from_ticket() -> Any:
        try:
            ticket = ticket_arg()
        except LookupError:
            return jsonify({"error": "Ticket parameter is required"}), 400
        except ValueError:
            return jsonify({"error": "Invalid ticket format"}), 400
        found = mt5.history_orders_get(ticket=ticket)
        if not found:
            return jsonify({"error": "Failed to get order information"}), 404
        return jsonify(found[0]._asdict())

    @app.get("/history_deals_get")
    def history_deals_get() -> Any:
        args = [request.args.get(k) for k in ("from_date", "to_date", "position")]
        if not all(args):
            return jsonify({"error": "from_date, to_date, and position parameters are required"}), 400
        try:
            lo, hi = (datetime.fromisoformat(a.replace("Z", "+00:00")) for a in args[:2])
            position = int(args[2])
        except ValueError:
            return jsonify({"error": "Invalid parameter format"}), 400
        deals = mt5.history_deals_get(int(lo.timestamp()), int(hi.timestamp()), position=position)
        if deals is None:
            return jsonify({"error": "Failed to get deals history"}), 404
        return jsonify([d._asdict() for d in deals])

    @app.get("/history_orders_get")
    def history_orders_get() -> Any:
        try:
            ticket = ticket_arg()
        except LookupError:
            return jsonify({"error": "Ticket parameter is required"}), 400
        except ValueError:
            return jsonify({"error": "Invalid ticket format"}), 400
        orders = mt5.history_orders_get(ticket=ticket)
        if orders is None:
            return jsonify({"error": "Failed to get orders history"}), 404
        return jsonify([o._asdict() for o in orders])

    @app.get("/last_error")
    def last_error() -> Any:
        code, message = mt5.last_error()
        return jsonify({"error_code": code, "error_message": message})

    @app.get("/last_error_str")
    def last_error_str() -> Any:
        return jsonify({"error_message": mt5.last_error()[1]})

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Any:
        if hasattr(exc, "code") and hasattr(exc, "get_response"):  # Flask's own 404/405 pages stay HTML
            return exc
        log.error("error in %s: %s", request.path, exc)
        return jsonify({"error": "Internal server error"}), 500

    return app
