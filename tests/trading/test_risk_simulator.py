"""RiskManager over real HTTP against the MT5 simulator: the seed's usage, exposure from every owner, open
losses from real price moves, restarts mid losing day, and refusals (never exceptions) when REST fails."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.mt5.client import MT5RestClient
from engine.mt5.sim.data import read_minute_bars
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings
from engine.storage.risk_state import JsonFileRiskStore
from engine.trading.execution import send_order
from engine.trading.risk import RiskManager

REPLAY_START = "2024-02-15T12:00:00Z"
SEED_LIMITS = {"max_drawdown": 0.05, "max_daily_loss": 0.05, "risk_per_trade": 0.01, "max_position_size": 1.0}


@pytest.fixture(scope="module")
def sample_bars() -> pd.DataFrame:
    return read_minute_bars()


@pytest.fixture
def make_simulator(sample_bars: pd.DataFrame) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def _make(start: str = REPLAY_START) -> Simulator:
        sim = Simulator(sample_bars, settings=SimSettings(start=start)).start()
        started.append(sim)
        return sim

    yield _make
    for sim in started:
        sim.stop(timeout=5)


@pytest.fixture
def make_client() -> Iterator[Callable[..., MT5RestClient]]:
    made: list[MT5RestClient] = []

    def _make(url: str, api_key: str = DEV_TOKEN) -> MT5RestClient:
        client = MT5RestClient(url, api_key, connect_timeout=1.0, read_timeout=5.0, retries=1, backoff_base=0.01,
                               backoff_cap=0.02, seed=7)
        made.append(client)
        return client

    yield _make
    for client in made:
        client.close()


@pytest.fixture
def simulator(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator()


@pytest.fixture
def client(simulator: Simulator, make_client: Callable[..., MT5RestClient]) -> MT5RestClient:
    return make_client(simulator.url)


def other_owner_order(client: MT5RestClient, volume: float, kind: str, price: float = 0.0) -> dict[str, Any]:
    """An order placed by someone else (another strategy, a person at the terminal): a raw POST /order."""
    action = "PENDING" if kind.endswith("_LIMIT") else "DEAL"
    body = {"action": action, "symbol": "BTCUSD", "volume": volume, "type": kind, "price": price, "sl": 0.0,
            "tp": 0.0, "deviation": 50, "magic": 777, "comment": f"other-{kind}-{volume}", "type_filling": "IOC",
            "type_time": 0}
    result = client.post_order(body, f"other-{kind}-{volume}-{price}")
    assert result["retcode"] in (10008, 10009), result
    return result


def test_seed_usage_runs_literally_against_the_simulator(client: MT5RestClient) -> None:
    risk = RiskManager(client, max_drawdown=0.05, max_daily_loss=0.05, risk_per_trade=0.01, max_position_size=1.0)

    check = risk.can_open_position("BTCUSD", 0.1)
    assert check["allowed"] is True and isinstance(check["reason"], str) and set(check) == {"allowed", "reason"}

    quote = client.symbol_info("BTCUSD")
    stop_loss = quote["bid"] - 1000.0
    lots = risk.calculate_position_size("BTCUSD", stop_loss)
    # A long fills at the ask: 1% of 10,000 USD over (ask - stop) USD per lot, down to the 0.01 step.
    assert lots == math.floor(100.0 / (quote["ask"] - stop_loss) * 100) / 100 == 0.09
    assert "risk" in lots.reason

    result = send_order("BTCUSD", lots, "buy", client=client, sl=stop_loss)
    assert result["success"] is True, result
    positions = client.positions("BTCUSD")
    assert positions["volume"].tolist() == [0.09]

    risk.update_after_trade(-50.0)
    metrics = risk.get_risk_metrics()
    assert {"drawdown", "daily_pnl", "peak_balance", "last_balance"} <= set(metrics)
    assert metrics["daily_pnl"] == -50.0 and metrics["last_balance"] == 9_950.0
    assert metrics["peak_balance"] == 10_000.0 and metrics["drawdown"] == pytest.approx(0.005)
    assert metrics["state"] == "ACTIVE"


def test_worked_position_size_example_of_the_docs(client: MT5RestClient) -> None:
    # docs/trading.md: on the simulator's BTCUSD a point is 0.01 USD per lot, so a stop 1,000 USD below the
    # entry (the ask) costs 1,000 USD per lot and 1% of 10,000 USD buys 0.1 lot.
    ask = client.symbol_info("BTCUSD")["ask"]
    risk = RiskManager(client, **SEED_LIMITS)
    assert risk.calculate_position_size("BTCUSD", ask - 1000.0) == 0.1
    assert risk.calculate_position_size("BTCUSD", ask - 1000.0, price=ask) == 0.1
    short = risk.calculate_position_size("BTCUSD", client.symbol_info("BTCUSD")["bid"] + 2000.0)
    assert short == 0.05  # a short fills at the bid: 2,000 USD per lot to the stop
    tiny = RiskManager(client, **(SEED_LIMITS | {"risk_per_trade": 0.0001}))  # 1 USD budget
    refused = tiny.calculate_position_size("BTCUSD", ask - 1000.0)
    assert refused == 0.0 and "minimum lot 0.01" in refused.reason


def test_exposure_counts_positions_and_pending_orders_of_every_owner(client: MT5RestClient) -> None:
    risk = RiskManager(client, **SEED_LIMITS)
    bid = client.symbol_info("BTCUSD")["bid"]
    other_owner_order(client, 0.6, "BUY")
    other_owner_order(client, 0.3, "BUY_LIMIT", price=round(bid - 2_000.0, 2))
    assert len(client.positions("BTCUSD")) == 1 and len(client.orders("BTCUSD")) == 1

    refused = risk.can_open_position("BTCUSD", 0.2, side="buy")
    assert refused["allowed"] is False and "1.1 lots" in refused["reason"]
    assert risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True
    assert risk.can_open_position("BTCUSD", 1.0, side="sell")["allowed"] is True
    assert risk.can_open_position("BTCUSD", 0.2)["allowed"] is False  # no side: must fit both ways


def _falling_start(bars: pd.DataFrame, drop: float, within: int) -> tuple[str, int]:
    """A replay start after which the bid falls more than ``drop`` USD within ``within`` bars (real data)."""
    opens = bars["open"].to_numpy()
    first = int(bars.index.searchsorted(pd.Timestamp(REPLAY_START)))
    for i in range(first, len(bars) - within):
        ahead = opens[i + 1:i + within]
        below = (ahead < opens[i] - drop).nonzero()[0]
        if below.size:
            return bars.index[i].isoformat(), int(below[0]) + 1
    raise AssertionError("the sample has no such drop")


def test_an_open_loss_from_real_prices_halts_new_exposure(make_simulator: Callable[..., Simulator],
                                                         make_client: Callable[..., MT5RestClient],
                                                         sample_bars: pd.DataFrame) -> None:
    start, bars_ahead = _falling_start(sample_bars, drop=600.0, within=2_000)
    sim = make_simulator(start=start)
    client = make_client(sim.url)
    risk = RiskManager(client, **SEED_LIMITS)
    other_owner_order(client, 1.0, "BUY")  # 1 BTC: a 600 USD fall is 6% of the 10,000 USD balance
    assert risk.can_open_position("BTCUSD", 0.01, side="sell")["allowed"] is True
    sim.advance(bars_ahead)
    assert client.account_info()["equity"] < 9_500.0
    refused = risk.can_open_position("BTCUSD", 0.01, side="sell")
    assert refused["allowed"] is False and "HALTED" in refused["reason"] and "open positions" in refused["reason"]
    assert risk.get_risk_metrics()["state"] == "HALTED"  # latched: stays after the price recovers
    assert risk.calculate_position_size("BTCUSD", 1.0) == 0.0


def test_a_restart_mid_losing_day_remembers_the_losses(client: MT5RestClient, tmp_path: Path) -> None:
    store = JsonFileRiskStore(tmp_path / "risk" / "state.json")
    limits = SEED_LIMITS | {"max_drawdown": 0.2}  # the daily loss limit is the one that trips
    first = RiskManager(client, **limits, store=store)
    first.update_after_trade(-300.0)
    second = RiskManager(client, **limits, store=store)  # the process restarted
    assert second.get_risk_metrics()["daily_pnl"] == -300.0
    second.update_after_trade(-250.0)  # 5.5% down on the day
    third = RiskManager(client, **limits, store=store)
    refused = third.can_open_position("BTCUSD", 0.01, side="buy")
    assert refused["allowed"] is False and "daily loss" in refused["reason"]
    third.reset(by="alice", note="reviewed")
    assert third.can_open_position("BTCUSD", 0.01, side="buy")["allowed"] is True
    assert store.load("default").changed_by == "alice"


def test_rest_down_gives_refusals_with_a_reason_never_an_exception(
        make_simulator: Callable[..., Simulator], make_client: Callable[..., MT5RestClient]) -> None:
    sim = make_simulator()
    client = make_client(sim.url)
    risk = RiskManager(client, **SEED_LIMITS)
    sim.stop(timeout=5)
    client.close()  # drop the kept-alive connection too (the server's handler thread outlives stop())

    refused = risk.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and "cannot read the account" in refused["reason"]
    lots = risk.calculate_position_size("BTCUSD", 40_000.0)
    assert lots == 0.0 and "cannot read" in lots.reason
    risk.update_after_trade(-10.0)  # booked in memory, no exception
    assert risk.get_risk_metrics()["daily_pnl"] == -10.0

    never_reached = RiskManager(make_client(sim.url), **SEED_LIMITS)  # the broker was down from the start
    assert never_reached.can_open_position("BTCUSD", 0.1)["allowed"] is False
    assert never_reached.get_risk_metrics()["state"] == "UNKNOWN"


def test_server_faults_and_bad_credentials_are_refusals(simulator: Simulator,
                                                       make_client: Callable[..., MT5RestClient]) -> None:
    client = make_client(simulator.url)
    risk = RiskManager(client, **SEED_LIMITS)
    simulator.faults.fail_next = 10  # every retry of the next reads answers 503
    refused = risk.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and "cannot read" in refused["reason"]
    simulator.faults.fail_next = 0
    assert risk.can_open_position("BTCUSD", 0.1, side="buy")["allowed"] is True

    wrong_key = "not-the-token-0123456789"
    locked_out = RiskManager(make_client(simulator.url, api_key=wrong_key), **SEED_LIMITS)
    refused = locked_out.can_open_position("BTCUSD", 0.1, side="buy")
    assert refused["allowed"] is False and "cannot read the account" in refused["reason"]
    assert wrong_key not in refused["reason"]
