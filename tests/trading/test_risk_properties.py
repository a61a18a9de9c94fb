"""Risk limits hold for every sequence of trades, prices, orders, clock moves, resets and restarts.

The RiskManager runs against an account kept in memory (what a broker would answer: balance, equity,
positions, pending orders) so that thousands of random sequences run in seconds; the HTTP path to the
real simulator is covered in test_risk_simulator.py. After every step:
- the symbol's exposure (pending orders at their worst) never exceeds max_position_size;
- nothing is allowed while HALTED, HALTED stays until an operator reset, REDUCING only lets reductions by;
- drawdown, daily PnL, peak and balance equal a plain recomputation from the trade history;
- a restart (a new RiskManager on the same store) reports exactly the state from before it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from engine.storage.risk_state import JsonFileRiskStore
from engine.trading.risk import RiskManager
from engine.trading.risk_rules import Exposure
from engine.trading.risk_state import MemoryRiskStore, RiskStateStore, trading_day

LIMITS = {"max_drawdown": 0.05, "max_daily_loss": 0.03, "risk_per_trade": 0.01, "max_position_size": 1.0,
          "reduce_at": 0.5}
START = dt.datetime(2024, 3, 1, 20, 0, tzinfo=dt.UTC)
EPS = 1e-9


@dataclass
class PaperAccount:
    """A hedging account (like the simulator's) as the broker reports it: what the RiskManager reads,
    and nothing it could write. Positions and pending orders are (side, lots) pairs."""

    balance: float = 10_000.0
    floating: float = 0.0
    positions_: list[tuple[int, float]] = field(default_factory=list)
    pending: list[tuple[int, float]] = field(default_factory=list)

    def account_info(self) -> dict[str, Any]:
        return {"balance": self.balance, "equity": self.balance + self.floating, "currency": "USD"}

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        return {"volume_min": 0.01, "volume_max": 100.0, "volume_step": 0.01, "point": 0.01,
                "trade_contract_size": 1.0, "currency_profit": "USD", "bid": 52_000.0, "ask": 52_015.0}

    def positions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [{"type": 0 if side > 0 else 1, "volume": volume} for side, volume in self.positions_]

    def orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [{"type": 2 if side > 0 else 3, "volume_current": volume} for side, volume in self.pending]

    def exposure(self) -> Exposure:
        return Exposure(long_positions=sum(v for s, v in self.positions_ if s > 0),
                        short_positions=sum(v for s, v in self.positions_ if s < 0),
                        pending_buy=sum(v for s, v in self.pending if s > 0),
                        pending_sell=sum(v for s, v in self.pending if s < 0))


@dataclass
class Ledger:
    """The reference: the trade history since the last reset, recomputed from scratch when asked."""

    start_balance: float
    trades: list[tuple[float, dt.datetime]] = field(default_factory=list)

    def figures(self, now: dt.datetime) -> dict[str, float]:
        balance, peak = self.start_balance, self.start_balance
        for profit, _ in self.trades:
            balance += profit
            peak = max(peak, balance)
        today = trading_day(now)
        daily = 0.0
        for profit, at in self.trades:
            if trading_day(at) == today:
                daily += profit
        return {"last_balance": balance, "peak_balance": peak, "daily_pnl": daily,
                "drawdown": max(0.0, (peak - balance) / peak)}


def steps(drift: float) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.one_of(
        st.tuples(st.just("trade"), st.floats(-200.0, 200.0).map(lambda p: round(p + drift, 2))),
        st.tuples(st.just("price"), st.floats(-700.0, 700.0)),
        st.tuples(st.just("clock"), st.floats(0.0, 30.0)),
        st.tuples(st.just("open"), st.sampled_from([0.01, 0.05, 0.1, 0.3, 0.5, 1.0, 1.5]),
                  st.sampled_from([None, "buy", "sell", "buy", "sell"]), st.booleans()),
        st.tuples(st.just("settle"), st.booleans()),
        st.tuples(st.just("close")),
        st.tuples(st.just("restart")),
        st.tuples(st.just("reset")),
    )


@st.composite
def sequences(draw: st.DrawFn, max_size: int) -> list[tuple[Any, ...]]:
    """Steps with a per-sequence PnL drift, so that losing streaks (REDUCING, HALTED) are common."""
    drift = draw(st.sampled_from([-120.0, -60.0, -20.0, 0.0, 40.0]))
    return draw(st.lists(steps(drift), min_size=10, max_size=max_size))


def run_sequence(steps: list[tuple[Any, ...]], store: RiskStateStore) -> None:
    account, now = PaperAccount(), [START]

    def manager() -> RiskManager:
        return RiskManager(account, **LIMITS, store=store, clock=lambda: now[0])

    risk, ledger = manager(), Ledger(account.balance)
    halted_until_reset = False
    for step in steps:
        kind = step[0]
        if kind == "trade":
            account.balance += step[1]
            risk.update_after_trade(step[1])
            ledger.trades.append((step[1], now[0]))
        elif kind == "price":
            account.floating = step[1] if account.positions_ else 0.0
        elif kind == "clock":
            now[0] += dt.timedelta(hours=step[1])
        elif kind == "open":
            _, volume, side, rests = step
            before = risk.get_risk_metrics()["state"]
            exposure = account.exposure()
            allowed = risk.can_open_position("BTCUSD", volume, side=side)["allowed"]
            event(f"open in {before}: {'allowed' if allowed else 'refused'}")
            if before == "HALTED":
                assert not allowed, "an order passed while HALTED"
            ref, open_loss = ledger.figures(now[0]), min(0.0, account.floating)
            day_start = ref["last_balance"] - ref["daily_pnl"]
            if (ref["peak_balance"] - ref["last_balance"] - open_loss) / ref["peak_balance"] >= LIMITS["max_drawdown"] \
                    or -(ref["daily_pnl"] + open_loss) / day_start >= LIMITS["max_daily_loss"]:
                assert not allowed, "an order passed although an open loss breaches a limit"
            if allowed:
                assert risk.get_risk_metrics()["latched_state"] != "HALTED"
                direction = 1 if side == "buy" else -1 if side == "sell" else (1 if rests else -1)
                if before == "REDUCING":  # only toward a flat net position, even if its pending side fills
                    assert side is not None
                    net_after = exposure.net + direction * volume
                    worst_after = net_after + (exposure.pending_buy if direction > 0 else -exposure.pending_sell)
                    assert abs(net_after) <= abs(exposure.net) + EPS and worst_after * exposure.net >= -EPS
                (account.pending if rests else account.positions_).append((direction, volume))
        elif kind == "settle" and account.pending:
            order = account.pending.pop(0)
            if step[1]:  # filled: a hedging account opens a position; otherwise cancelled
                account.positions_.append(order)
        elif kind == "close" and account.positions_:  # a stop, a take-profit or an operator: not gated
            account.positions_.pop(0)
            account.floating = account.floating if account.positions_ else 0.0
        elif kind == "restart":
            before_state, before_metrics = store.load(risk.key), risk.get_risk_metrics()
            risk = manager()
            assert risk.get_risk_metrics() == before_metrics
            assert store.load(risk.key) == before_state
        elif kind == "reset":
            risk.reset(by="operator")
            ledger = Ledger(account.balance)  # the limits count from the balance at the reset
            halted_until_reset = False

        assert account.exposure().worst() <= LIMITS["max_position_size"] + EPS
        metrics = risk.get_risk_metrics()
        if halted_until_reset:
            assert metrics["state"] == "HALTED", "HALTED was left without an operator reset"
        halted_until_reset = metrics["latched_state"] == "HALTED"
        event(f"reached {metrics['state']}")
        expected = ledger.figures(now[0])
        for name, value in expected.items():
            assert metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-9), name
        assert metrics["persisted"] is True


@settings(max_examples=1_000, deadline=None)
@given(steps=sequences(max_size=60))
def test_limits_hold_for_random_sequences_with_an_in_memory_store(steps: list[tuple[Any, ...]]) -> None:
    run_sequence(steps, MemoryRiskStore())


@settings(max_examples=150, deadline=None)
@given(steps=sequences(max_size=40))
def test_limits_and_restarts_hold_with_the_json_file_store(steps: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_sequence(steps, JsonFileRiskStore(Path(tmp) / "risk" / "state.json"))
