"""The shared routes, one suite, three servers (all real HTTP on 127.0.0.1): our simulator, our bridge over
the fake MetaTrader5 module, and the quant-server Flask bridge's routes over the same fake module.

Requests are written as a client of that bridge would write them (its paths, query names, bodies,
``raise_for_status`` reading status codes), and every server must give the same outcome: same status,
same wrapper, same record fields, filters honoured. This contract's additions are tested in
test_contract_additions.py; the requests each server served are counted in the session summary.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from engine.mt5 import contract
from engine.mt5.sim.settings import DEV_TOKEN

# Our servers need the token; the quant-server bridge ignores the header.
AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
KINDS = ["simulator", "bridge", "quant_server"]


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def get(srv: Any, path: str, **params: Any) -> requests.Response:
    return requests.get(srv.url + path, params=params, headers=AUTH, timeout=10)


def post(srv: Any, path: str, body: Any) -> requests.Response:
    return requests.post(srv.url + path, json=body, headers=AUTH, timeout=10)


def when(text: str) -> datetime:
    """A bar time as either dialect writes it: ISO (ours) or RFC 1123 (Flask's)."""
    return parsedate_to_datetime(text).replace(tzinfo=None) if text.endswith("GMT") else datetime.fromisoformat(text)


def buy(srv: Any, volume: float = 0.1, magic: int = 11, comment: str = "shared") -> requests.Response:
    return post(srv, "/order", {"symbol": "BTCUSD", "volume": volume, "type": contract.ORDER_TYPE_BUY,
                                "deviation": 50, "magic": magic, "comment": comment})


def test_health(server: Any) -> None:
    r = get(server, "/health")
    assert r.status_code == 200
    assert r.json()["status"] == "healthy" and r.json()["mt5_connected"] is True


def test_symbol_and_tick(server: Any) -> None:
    info = get(server, "/symbol_info/BTCUSD")
    assert info.status_code == 200
    assert set(contract.SYMBOL_FIELDS) <= set(info.json())
    assert info.json()["trade_tick_size"] == info.json()["point"] and info.json()["trade_tick_value"] > 0
    tick = get(server, "/symbol_info_tick/BTCUSD").json()
    assert set(contract.SYMBOL_TICK_FIELDS) <= set(tick)
    assert tick["ask"] > tick["bid"] > 0 and tick["time_msc"] // 1000 == tick["time"]
    for path in ("/symbol_info/NOPE", "/symbol_info_tick/NOPE"):
        r = get(server, path)
        assert r.status_code == 404 and "error" in r.json()


def test_fetch_data_pos(server: Any) -> None:
    r = get(server, "/fetch_data_pos", symbol="BTCUSD", timeframe="M5", num_bars=12)
    assert r.status_code == 200
    bars = r.json()
    assert len(bars) == 12 and all(set(b) == set(contract.BAR_FIELDS) for b in bars)
    times = [when(b["time"]) for b in bars]
    assert all((b - a).total_seconds() == 300 for a, b in itertools.pairwise(times))
    assert get(server, "/fetch_data_pos", symbol="BTCUSD").json()[-1]["time"] is not None  # defaults M1, 100
    assert len(get(server, "/fetch_data_pos", symbol="BTCUSD").json()) == 100
    for params, status in (({"timeframe": "M7"}, 400), ({"num_bars": "ten"}, 400), ({}, 400)):
        r = get(server, "/fetch_data_pos", **({"symbol": "BTCUSD"} if params else {}), **params)
        assert r.status_code == status, params
        assert "error" in r.json()
    assert get(server, "/fetch_data_pos", symbol="NOPE", num_bars=5).status_code == 404


def test_fetch_data_range(server: Any) -> None:
    r = get(server, "/fetch_data_range", symbol="BTCUSD", timeframe="M1", start="2024-02-01T10:00:00",
            end="2024-02-01T10:09:00")
    assert r.status_code == 200
    bars = r.json()
    assert len(bars) == 10
    assert [when(b["time"]) for b in (bars[0], bars[-1])] == [datetime(2024, 2, 1, 10), datetime(2024, 2, 1, 10, 9)]
    for params in ({"start": "2024-02-01T00:00:00Z", "end": "2024-02-01T01:00:00"},  # a zone: refused by both
                   {"start": "yesterday", "end": "2024-02-01T01:00:00"}, {"end": "2024-02-01T01:00:00"}):
        r = get(server, "/fetch_data_range", symbol="BTCUSD", timeframe="M1", **params)
        assert r.status_code == 400, params


def test_market_order_positions_filters_close_and_history(server: Any) -> None:
    assert get(server, "/get_positions").json() == {"positions": []}
    assert get(server, "/positions_total").json() == {"total": 0}
    r = buy(server, magic=11, comment="first")
    assert r.status_code == 200
    assert r.json()["message"] == "Order executed successfully"
    res = r.json()["result"]
    assert set(contract.RESULT_FIELDS) <= set(res) and res["retcode"] == contract.RETCODE_DONE
    assert buy(server, magic=12, comment="second").status_code == 200
    positions = get(server, "/get_positions").json()
    assert len(positions) == 2 and all(set(contract.POSITION_FIELDS) <= set(p) for p in positions)
    only = get(server, "/get_positions", magic=11).json()
    assert [(p["magic"], p["comment"]) for p in only] == [(11, "first")]
    assert get(server, "/positions_total").json() == {"total": 2}

    pos = only[0]
    assert post(server, "/modify_sl_tp", {"position": pos["ticket"], "sl": round(pos["price_open"] * 0.9, 2),
                                          "tp": round(pos["price_open"] * 1.1, 2)}).status_code == 200
    assert get(server, "/get_positions", magic=11).json()[0]["sl"] == round(pos["price_open"] * 0.9, 2)

    spec = {k: pos[k] for k in ("ticket", "type", "symbol", "volume")}
    r = post(server, "/close_position", {"position": spec})
    assert r.status_code == 200 and r.json()["message"] == "Position closed successfully"
    assert r.json()["result"]["retcode"] == contract.RETCODE_DONE
    assert [p["magic"] for p in get(server, "/get_positions").json()] == [12]
    again = post(server, "/close_position", {"position": spec})
    assert again.status_code == 400 and "error" in again.json()
    assert post(server, "/close_position", {"ticket": pos["ticket"]}).status_code == 400  # not that body shape

    deals = get(server, "/history_deals_get", from_date="2024-01-01T00:00:00Z", to_date="2024-12-31T00:00:00Z",
                position=pos["ticket"]).json()
    assert [d["entry"] for d in deals] == [contract.DEAL_ENTRY_IN, contract.DEAL_ENTRY_OUT]
    assert all(d["position_id"] == pos["ticket"] for d in deals)
    orders = get(server, "/history_orders_get", ticket=res["order"]).json()
    assert [o["ticket"] for o in orders] == [res["order"]]
    assert get(server, "/get_order_from_ticket", ticket=res["order"]).json()["ticket"] == res["order"]
    summary = get(server, "/get_deal_from_ticket", ticket=pos["ticket"]).json()
    assert (summary["ticket"], summary["type"], summary["volume"]) == (pos["ticket"], "BUY", 0.2)
    for path in ("/get_order_from_ticket", "/get_deal_from_ticket"):
        assert get(server, path, ticket=999).status_code == 404
        assert get(server, path, ticket="x").status_code == 400
        assert get(server, path).status_code == 400


def test_close_all_positions(server: Any) -> None:
    assert post(server, "/close_all_positions", {}).json() == {"message": "No positions were closed"}
    for magic in (1, 2, 2):
        assert buy(server, magic=magic, comment=f"m{magic}").status_code == 200
    r = post(server, "/close_all_positions", {"order_type": "all", "magic": 2})
    assert r.status_code == 200 and r.json()["message"] == "Closed 2 positions" and len(r.json()["results"]) == 2
    assert [p["magic"] for p in get(server, "/get_positions").json()] == [1]


@pytest.mark.parametrize(("body", "status"), [
    ({"symbol": "BTCUSD", "volume": 0.1}, 400),  # no type
    ({"symbol": "BTCUSD", "volume": 0.1, "type": contract.ORDER_TYPE_BUY_LIMIT}, 400),  # not a market type
    ({"symbol": "NOPE", "volume": 0.1, "type": contract.ORDER_TYPE_BUY}, 400),
])
def test_bad_orders_are_400_and_change_nothing(server: Any, body: dict, status: int) -> None:
    r = post(server, "/order", body)
    assert r.status_code == status and "error" in r.json()
    assert get(server, "/get_positions").json() == {"positions": []}


@pytest.mark.parametrize(("volume", "retcode"), [(0.015, contract.RETCODE_INVALID_VOLUME),
                                                 (90.0, contract.RETCODE_NO_MONEY)])
def test_a_refused_order_is_a_400_carrying_the_retcode(server: Any, volume: float, retcode: int) -> None:
    r = buy(server, volume=volume)
    assert r.status_code == 400  # a raise_for_status client can never read a refusal as a fill
    assert r.json()["error"].startswith("Order failed") and r.json()["result"]["retcode"] == retcode
    assert get(server, "/get_positions").json() == {"positions": []}


def test_last_error(server: Any) -> None:
    assert set(get(server, "/last_error").json()) == {"error_code", "error_message"}
    assert set(get(server, "/last_error_str").json()) == {"error_message"}
