"""The seed's usage examples for send_order and RiskManager, run as a seed user writes them, against the
simulator over real HTTP; the simulator's order book is checked after each. Also runs the Python blocks of
docs/trading.md as written, so the documented examples cannot rot.

Only the package root is imported for the examples (``from engine import ...``), and the client is built
from a base URL and an API key the way the seed builds it: nothing here reaches into engine internals
except to read the simulator's book.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine import MT5RestClient, RiskManager, send_order
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN

DOCS = Path(__file__).resolve().parents[2] / "docs" / "trading.md"
BUY, SELL, BUY_LIMIT = 0, 1, 2  # MT5 position/order types in the simulator's book


def book(sim: Simulator) -> dict[str, list[dict[str, Any]]]:
    """The simulated terminal's positions, pending orders and deals, read directly (not through a client)."""
    market = sim.market
    return {"positions": market.positions(None), "orders": market.orders(None),
            "deals": market.history_deals(datetime(1970, 1, 2), datetime(2100, 1, 1))}


def test_send_order_examples(simulator: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    base_url, api_key = simulator.url, DEV_TOKEN

    # -- the seed's examples, as written ----------------------------------------------------------------
    client = MT5RestClient(base_url, api_key)
    result = send_order("BTCUSD", 0.01, "buy", client=client)
    if result["success"]:
        print("order placed:", result["data"])
    else:
        print("order failed:", result["error"])

    tick = client.latest_tick("BTCUSD")
    limit_price = round(tick["bid"] - 500.0, 2)
    limit = send_order("BTCUSD", 0.01, "buy", price=limit_price, client=client)

    with pytest.raises(ValueError, match="client"):
        send_order("BTCUSD", 0.01, "buy", client=None)
    # -------------------------------------------------------------------------------------------------------

    assert "order placed:" in capsys.readouterr().out
    assert result["success"] is True and set(result) == {"success", "data"}
    assert result["data"]["retcode"] == 10009 and result["data"]["volume"] == 0.01
    assert result["data"]["price"] == tick["ask"]  # step mode: the quote has not moved since the fill
    assert limit["success"] is True and limit["data"]["retcode"] == 10008
    after = book(simulator)
    assert [(p["type"], p["volume"], p["price_open"]) for p in after["positions"]] == [(BUY, 0.01, tick["ask"])]
    assert [(o["type"], o["volume_current"], o["price_open"]) for o in after["orders"]] == \
        [(BUY_LIMIT, 0.01, limit_price)]
    assert len(after["deals"]) == 1  # the market order once; the limit rests; the ValueError sent nothing
    assert after["positions"][0]["ticket"] == result["data"]["order"]
    assert after["orders"][0]["ticket"] == limit["data"]["order"]
    client.close()


def test_a_failed_order_takes_the_else_branch_and_books_nothing(simulator: Simulator,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    base_url, api_key = simulator.url, DEV_TOKEN
    simulator.market.market_closed = True

    client = MT5RestClient(base_url, api_key)
    result = send_order("BTCUSD", 0.01, "buy", client=client)
    if result["success"]:
        print("order placed:", result["data"])
    else:
        print("order failed:", result["error"])

    assert capsys.readouterr().out.startswith("order failed: OrderRejectedError")
    assert set(result) == {"success", "error"} and "10018" in result["error"]
    assert book(simulator) == {"positions": [], "orders": [], "deals": []}
    client.close()


def test_risk_manager_examples(simulator: Simulator) -> None:
    base_url, api_key = simulator.url, DEV_TOKEN
    client = MT5RestClient(base_url, api_key)
    ask = client.latest_tick("BTCUSD")["ask"]

    # -- the seed's examples, as written ----------------------------------------------------------------
    risk = RiskManager(client, max_drawdown=0.05, max_daily_loss=0.05, risk_per_trade=0.01, max_position_size=1.0)
    check = risk.can_open_position("BTCUSD", 0.1)
    lots = risk.calculate_position_size("BTCUSD", stop_loss=ask - 1_000.0)
    risk.update_after_trade(-50.0)
    metrics = risk.get_risk_metrics()
    # -------------------------------------------------------------------------------------------------------

    assert check == {"allowed": True, "reason": check["reason"]} and "within limits" in check["reason"]
    assert lots == 0.1  # 1% of 10,000 USD over a 1,000 USD stop per lot (docs/trading.md worked example)
    assert metrics["daily_pnl"] == -50.0 and metrics["last_balance"] == 9_950.0
    assert metrics["peak_balance"] == 10_000.0 and metrics["drawdown"] == pytest.approx(0.005)
    assert book(simulator) == {"positions": [], "orders": [], "deals": []}  # the RiskManager only reads
    client.close()


def test_size_then_check_then_send(simulator: Simulator) -> None:
    base_url, api_key = simulator.url, DEV_TOKEN

    # -- the seed's combination, as written -------------------------------------------------------------
    client = MT5RestClient(base_url, api_key)
    risk = RiskManager(client, max_drawdown=0.05, max_daily_loss=0.05, risk_per_trade=0.01, max_position_size=1.0)
    stop_loss = client.latest_tick("BTCUSD")["bid"] - 1_000.0
    lots = risk.calculate_position_size("BTCUSD", stop_loss=stop_loss)
    check = risk.can_open_position("BTCUSD", lots)
    if lots > 0 and check["allowed"]:
        result = send_order("BTCUSD", lots, "buy", client=client, sl=stop_loss)
    # -------------------------------------------------------------------------------------------------------

    assert lots == 0.09 and check["allowed"] is True  # the ask is 15 USD above the bid: 1,015 USD per lot
    assert result["success"] is True and result["data"]["volume"] == 0.09
    after = book(simulator)
    assert [(p["type"], p["volume"], p["sl"]) for p in after["positions"]] == [(BUY, 0.09, stop_loss)]
    assert len(after["deals"]) == 1 and after["orders"] == []

    # The same gate refuses what would take the long side over max_position_size: nothing is sent.
    too_big = risk.can_open_position("BTCUSD", 0.95)
    if too_big["allowed"]:
        send_order("BTCUSD", 0.95, "buy", client=client)
    assert too_big["allowed"] is False and "max_position_size" in too_big["reason"]
    assert book(simulator) == after
    client.close()


def test_a_halted_risk_manager_keeps_orders_from_being_sent(simulator: Simulator) -> None:
    base_url, api_key = simulator.url, DEV_TOKEN
    client = MT5RestClient(base_url, api_key)
    risk = RiskManager(client, max_drawdown=0.05, max_daily_loss=0.05, risk_per_trade=0.01, max_position_size=1.0)

    risk.update_after_trade(-600.0)  # 6% of 10,000 USD in one day: over both loss limits
    check = risk.can_open_position("BTCUSD", 0.01)
    if check["allowed"]:
        send_order("BTCUSD", 0.01, "buy", client=client)

    assert check["allowed"] is False and "HALTED" in check["reason"]
    assert risk.get_risk_metrics()["state"] == "HALTED"
    assert risk.calculate_position_size("BTCUSD", stop_loss=1_000.0) == 0.0
    assert book(simulator) == {"positions": [], "orders": [], "deals": []}
    client.close()


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def test_the_python_blocks_of_the_trading_docs_run_as_written(simulator: Simulator,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks(DOCS.read_text(encoding="utf-8"))
    assert len(blocks) >= 2, "docs/trading.md lost its examples"
    namespace: dict[str, Any] = {"base_url": simulator.url, "api_key": DEV_TOKEN}
    for block in blocks:  # in order, in one namespace: later blocks use the client of the first
        exec(compile(block, str(DOCS), "exec"), namespace)

    assert capsys.readouterr().out.startswith("filled 0.01 at ")
    assert namespace["result"]["success"] and namespace["limit"]["success"]
    assert namespace["lots"] == 0.09 and namespace["check"]["allowed"] and namespace["order"]["success"]
    assert namespace["metrics"]["daily_pnl"] == -42.5
    after = book(simulator)
    assert sorted(p["volume"] for p in after["positions"]) == [0.01, 0.09]
    assert [o["type"] for o in after["orders"]] == [BUY_LIMIT]
    namespace["client"].close()
