"""This contract's additions to the shared routes (docs/mt5_rest_api.md), run against the simulator and our
bridge (both real HTTP servers on 127.0.0.1): Bearer auth, /account_info, /fetch_ticks_range, the bar cap,
stated times, Idempotency-Key, limit orders and cancels, strict bodies. The routes shared with the
quant-server bridge are tested against all three servers in test_contract.py."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from engine.mt5 import contract
from engine.mt5.sim.settings import DEV_TOKEN

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
NO_POSITIONS = {"positions": []}  # the shared shape of an empty position list


@pytest.fixture(params=["simulator", "bridge"])
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def get(srv: Any, path: str, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    return requests.get(srv.url + path, params=params, headers=AUTH if headers is None else headers, timeout=10)


def post(srv: Any, path: str, body: Any, key: str | None = None, raw: bytes | None = None) -> requests.Response:
    headers = dict(AUTH)
    if key:
        headers[contract.IDEMPOTENCY_HEADER] = key
    if raw is not None:
        return requests.post(srv.url + path, data=raw, headers=headers | {"Content-Type": "application/json"},
                             timeout=10)
    return requests.post(srv.url + path, json=body, headers=headers, timeout=10)


def market_order(side: str = "BUY", volume: float = 0.1, comment: str = "contract", magic: int = 11) -> dict:
    return {"action": "DEAL", "symbol": "BTCUSD", "volume": volume, "type": side, "deviation": 50, "magic": magic,
            "comment": comment, "type_filling": "IOC"}


def test_health_is_open_and_reports_the_server_clock(server: Any) -> None:
    r = get(server, "/health", headers={})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    datetime.fromisoformat(body["time_utc"])


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": DEV_TOKEN}])
def test_every_data_route_needs_the_bearer_token(server: Any, headers: dict[str, str]) -> None:
    for path in ("/account_info", "/symbol_info/BTCUSD", "/get_positions"):
        r = get(server, path, headers=headers)
        assert r.status_code == 401
        assert "error" in r.json()
    r = requests.post(server.url + "/order", json=market_order(), headers=headers, timeout=10)
    assert r.status_code == 401
    assert get(server, "/get_positions").json() == NO_POSITIONS  # nothing was executed


def test_account_symbol_and_tick_shapes(server: Any) -> None:
    account = get(server, "/account_info").json()
    assert set(contract.ACCOUNT_FIELDS) <= set(account)
    assert all(isinstance(account[k], int | float) for k in ("balance", "equity", "margin", "margin_free"))
    info = get(server, "/symbol_info/BTCUSD").json()
    assert set(contract.SYMBOL_FIELDS) <= set(info)
    tick = get(server, "/symbol_info_tick/BTCUSD").json()
    assert set(contract.TICK_FIELDS) <= set(tick)
    assert tick["ask"] > tick["bid"] > 0
    assert tick["time_msc"] // 1000 == tick["time"]


def test_unknown_symbol_is_404_with_a_json_error(server: Any) -> None:
    for path in ("/symbol_info/NOPE", "/symbol_info_tick/NOPE"):
        r = get(server, path)
        assert r.status_code == 404
        assert "NOPE" in r.json()["error"]
    r = get(server, "/fetch_data_pos", symbol="NOPE", timeframe="M1", num_bars=5)
    assert r.status_code == 404


def test_fetch_data_pos_shape(server: Any) -> None:
    r = get(server, "/fetch_data_pos", symbol="BTCUSD", timeframe="M5", num_bars=12)
    assert r.status_code == 200
    bars = r.json()
    assert len(bars) == 12
    for bar in bars:
        assert set(bar) == set(contract.BAR_FIELDS)
        assert bar["high"] >= max(bar["open"], bar["close"]) and bar["low"] <= min(bar["open"], bar["close"])
    times = [datetime.fromisoformat(b["time"]) for b in bars]
    assert all(t.tzinfo is None for t in times)  # server time, no zone
    assert all((b - a).total_seconds() == 300 for a, b in itertools.pairwise(times))


@pytest.mark.parametrize(("params", "needle"), [
    ({"timeframe": "M7", "num_bars": 5}, "timeframe"),
    ({"timeframe": "M1", "num_bars": "ten"}, "num_bars"),
    ({"timeframe": "M1", "num_bars": 10_001}, "cap"),
])
def test_fetch_data_pos_refuses_bad_parameters(server: Any, params: dict, needle: str) -> None:
    r = get(server, "/fetch_data_pos", symbol="BTCUSD", **params)
    assert r.status_code == 400
    assert needle in r.json()["error"]


def test_fetch_data_range_is_inclusive_and_validated(server: Any) -> None:
    r = get(server, "/fetch_data_range", symbol="BTCUSD", timeframe="M1", start="2024-02-01T10:00:00",
            end="2024-02-01T10:09:00")
    assert r.status_code == 200
    bars = r.json()
    assert [b["time"] for b in (bars[0], bars[-1])] == ["2024-02-01T10:00:00", "2024-02-01T10:09:00"]
    assert len(bars) == 10
    bad = [({"start": "2024-02-02T00:00:00", "end": "2024-02-01T00:00:00"}, "after"),
           ({"start": "2024-02-01T00:00:00Z", "end": "2024-02-01T01:00:00"}, "zone"),
           ({"start": "yesterday", "end": "2024-02-01T01:00:00"}, "ISO"),
           ({"end": "2024-02-01T01:00:00"}, "start")]
    for params, needle in bad:
        r = get(server, "/fetch_data_range", symbol="BTCUSD", timeframe="M1", **params)
        assert r.status_code == 400, params
        assert needle in r.json()["error"]


def test_fetch_data_range_never_shows_the_future(server: Any) -> None:
    """Bars after the replay clock do not exist yet (no lookahead through the REST API)."""
    now = datetime.fromisoformat(get(server, "/fetch_data_pos", symbol="BTCUSD", timeframe="M1",
                                     num_bars=1).json()[-1]["time"])
    r = get(server, "/fetch_data_range", symbol="BTCUSD", timeframe="M1", start=contract.iso(now),
            end=contract.iso(now + timedelta(days=1)))
    assert r.status_code == 200
    bars = r.json()
    assert [b["time"] for b in bars] == [contract.iso(now)]
    forming = bars[0]
    assert forming["open"] == forming["high"] == forming["low"] == forming["close"]


def test_fetch_ticks_range_shape(server: Any) -> None:
    last = get(server, "/fetch_data_pos", symbol="BTCUSD", timeframe="M1", num_bars=1).json()[-1]["time"]
    start = contract.iso(datetime.fromisoformat(last).replace(minute=0))
    r = get(server, "/fetch_ticks_range", symbol="BTCUSD", start=start, end=last)
    assert r.status_code == 200
    ticks = r.json()
    assert ticks
    for t in ticks:
        assert set(contract.TICK_FIELDS) <= set(t)
        assert t["ask"] >= t["bid"]


def test_market_order_position_close_and_history(server: Any) -> None:
    r = post(server, "/order", market_order(comment="flow-1"), key=uuid.uuid4().hex)
    assert r.status_code == 200
    res = r.json()["result"]
    assert set(contract.RESULT_FIELDS) <= set(res)
    assert res["retcode"] == contract.RETCODE_DONE and res["volume"] == 0.1
    positions = get(server, "/get_positions").json()
    assert len(positions) == 1
    pos = positions[0]
    assert set(contract.POSITION_FIELDS) <= set(pos)
    assert (pos["comment"], pos["magic"], pos["type"]) == ("flow-1", 11, contract.POSITION_TYPE_BUY)
    assert get(server, "/get_positions", symbol="BTCUSD").json() == positions

    r = post(server, "/close_position", {"position": {"ticket": pos["ticket"]}, "comment": "flow-1-close"},
             key=uuid.uuid4().hex)
    assert r.json()["result"]["retcode"] == contract.RETCODE_DONE
    assert get(server, "/get_positions").json() == NO_POSITIONS
    deals = get(server, "/history_deals_get").json()
    assert [d["entry"] for d in deals] == [contract.DEAL_ENTRY_IN, contract.DEAL_ENTRY_OUT]
    assert all(set(contract.DEAL_FIELDS) <= set(d) for d in deals)
    orders = get(server, "/history_orders_get").json()
    assert len(orders) == 2 and all(set(contract.ORDER_FIELDS) <= set(o) for o in orders)
    r = post(server, "/close_position", {"position": {"ticket": pos["ticket"]}}, key=uuid.uuid4().hex)
    assert r.status_code == 400 and r.json()["result"]["retcode"] == contract.RETCODE_POSITION_CLOSED
    wrong_side = {"position": {"ticket": pos["ticket"], "type": contract.POSITION_TYPE_SELL}}
    assert post(server, "/close_position", wrong_side, key=uuid.uuid4().hex).status_code == 400


def test_same_idempotency_key_never_places_twice(server: Any) -> None:
    key = uuid.uuid4().hex
    first = post(server, "/order", market_order(comment="idem"), key=key).json()
    again = post(server, "/order", market_order(comment="idem"), key=key).json()
    assert first == again
    assert len(get(server, "/get_positions").json()) == 1
    reused = post(server, "/order", market_order(side="SELL", comment="idem"), key=key)
    assert reused.status_code == 422
    assert len(get(server, "/get_positions").json()) == 1


@pytest.mark.parametrize(("body", "needle"), [
    ({"action": "DEAL", "symbol": "BTCUSD", "type": "BUY"}, "volume"),
    ({**market_order(), "typo_field": 1}, "unknown order field"),
    ({**market_order(), "type": "BUY_STOP"}, "type"),
    ({**market_order(), "comment": "x" * 40}, "comment"),
    ({**market_order(), "volume": -1}, "volume"),
    ([1, 2], "JSON object"),
])
def test_bad_order_bodies_are_400_and_change_nothing(server: Any, body: Any, needle: str) -> None:
    r = post(server, "/order", body, key=uuid.uuid4().hex)
    assert r.status_code == 400
    assert needle in r.json()["error"]
    assert get(server, "/get_positions").json() == NO_POSITIONS


@pytest.mark.parametrize(("raw", "needle"), [(b'{"action": "DEAL", ', "malformed JSON"),
                                            (b'{"comment": "' + b"x" * 70_000 + b'"}', "bytes")])
def test_malformed_or_oversized_body_is_400(server: Any, raw: bytes, needle: str) -> None:
    r = post(server, "/order", None, raw=raw)
    assert r.status_code == 400
    assert needle in r.json()["error"]
    assert get(server, "/get_positions").json() == NO_POSITIONS


@pytest.mark.parametrize(("volume", "retcode"), [(0.015, contract.RETCODE_INVALID_VOLUME), (90.0, contract.RETCODE_NO_MONEY)])
def test_refusals_carry_mt5_retcodes(server: Any, volume: float, retcode: int) -> None:
    before = get(server, "/account_info").json()
    r = post(server, "/order", market_order(volume=volume), key=uuid.uuid4().hex)
    assert r.status_code == 400 and r.json()["result"]["retcode"] == retcode
    assert get(server, "/get_positions").json() == NO_POSITIONS
    assert get(server, "/account_info").json()["balance"] == before["balance"]


def test_limit_order_is_placed_listed_and_removed(server: Any) -> None:
    tick = get(server, "/symbol_info_tick/BTCUSD").json()
    body = {"action": "PENDING", "symbol": "BTCUSD", "volume": 0.05, "type": "BUY_LIMIT",
            "price": round(tick["bid"] * 0.9, 2), "magic": 3, "comment": "lim"}
    r = post(server, "/order", body, key=uuid.uuid4().hex)
    assert r.status_code == 200 and r.json()["message"] == "Order placed"
    res = r.json()["result"]
    assert res["retcode"] == contract.RETCODE_PLACED and res["order"] > 0
    orders = get(server, "/orders_get").json()
    assert [o["ticket"] for o in orders] == [res["order"]]
    assert set(contract.ORDER_FIELDS) <= set(orders[0])
    gone = post(server, "/order", {"action": "REMOVE", "order": res["order"]}, key=uuid.uuid4().hex).json()
    assert gone["result"]["retcode"] == contract.RETCODE_DONE
    assert get(server, "/orders_get").json() == []


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items()) if k not in ("description", "name", "server",
                                                                             "version", "error")}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


def test_simulator_and_bridge_answer_the_same_requests_with_the_same_shapes(simulator: Any, bridge: Any) -> None:
    gets = [("/health", {}), ("/account_info", {}), ("/symbol_info/BTCUSD", {}), ("/symbol_info_tick/BTCUSD", {}),
            ("/fetch_data_pos", {"symbol": "BTCUSD", "timeframe": "H1", "num_bars": 3}),
            ("/fetch_data_range", {"symbol": "BTCUSD", "timeframe": "M1", "start": "2024-02-01T00:00:00",
                                   "end": "2024-02-01T00:05:00"}),
            ("/fetch_ticks_range", {"symbol": "BTCUSD", "start": "2024-02-01T00:00:00",
                                    "end": "2024-02-01T00:05:00"}),
            ("/fetch_data_pos", {"symbol": "BTCUSD", "timeframe": "X9", "num_bars": 3}),
            ("/symbol_info/NOPE", {})]
    for path, params in gets:
        a, b = get(simulator, path, **params), get(bridge, path, **params)
        assert a.status_code == b.status_code, path
        assert _shape(a.json()) == _shape(b.json()), path
    key = uuid.uuid4().hex
    a, b = post(simulator, "/order", market_order(comment="same"), key), post(bridge, "/order",
                                                                              market_order(comment="same"), key)
    assert a.status_code == b.status_code == 200
    assert _shape(a.json()) == _shape(b.json())
    for path in ("/get_positions", "/history_deals_get", "/history_orders_get", "/orders_get"):
        assert _shape(get(simulator, path).json()) == _shape(get(bridge, path).json()), path
