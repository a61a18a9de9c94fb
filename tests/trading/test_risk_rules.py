"""The RiskManager's pure parts: limits checked at construction, sizing maths, state transitions, decisions."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError, DataQualityError
from engine.trading import risk_rules as rules
from engine.trading.risk import RiskManager
from engine.trading.risk_rules import Exposure, RiskLimits
from engine.trading.risk_state import RiskState, RiskStatus, trading_day
from engine.trading.sizing import SymbolSpec, floor_to_step, position_size

T0 = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
# The simulator's BTCUSD: 2 digits, contract size 1 (one lot = one BTC), lots 0.01..100 in 0.01 steps.
BTC = SymbolSpec(volume_min=0.01, volume_max=100.0, volume_step=0.01, tick_size=0.01, tick_value=0.01, point=0.01)


@pytest.mark.parametrize(("field", "value"), [
    ("max_drawdown", math.nan), ("max_drawdown", 0.0), ("max_drawdown", 1.5), ("max_drawdown", -0.1),
    ("max_daily_loss", math.nan), ("max_daily_loss", 0.0), ("max_daily_loss", 2.0),
    ("risk_per_trade", math.nan), ("risk_per_trade", 0.0), ("risk_per_trade", 1.01),
    ("max_position_size", 0.0), ("max_position_size", -1.0), ("max_position_size", math.nan),
    ("max_position_size", math.inf), ("max_drawdown", True), ("max_drawdown", "0.05"),
])
def test_invalid_limits_are_refused_at_construction_with_a_typed_value_error(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"risk.{field}") as info:
        RiskManager(None, **{field: value})  # type: ignore[arg-type]  # the limits are checked first
    assert isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match=field):
        RiskLimits(**{field: value})  # type: ignore[arg-type]


def test_a_missing_client_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="needs a client"):
        RiskManager(None)  # type: ignore[arg-type]


def test_limits_at_their_inclusive_bounds_are_accepted() -> None:
    limits = RiskLimits(max_drawdown=1.0, max_daily_loss=1.0, risk_per_trade=1.0, max_position_size=1e-6)
    assert limits.max_drawdown == 1.0


def test_worked_example_btcusd_on_the_simulator_spec() -> None:
    # 1% of 10,000 USD = 100 USD at risk; a stop 1,000 USD below a 52,000 entry is 100,000 points of
    # 0.01 USD per lot each = 1,000 USD per lot, so 100 / 1,000 = 0.1 lots.
    decision = position_size(10_000.0, 0.01, 52_000.0, 51_000.0, BTC)
    assert decision.volume == 0.1
    assert "0.1 lots" in decision.reason


def test_size_is_rounded_down_to_the_step_and_capped() -> None:
    # 100 USD / 810 USD per lot = 0.1234... -> 0.12, never 0.13 (more risk than the budget)
    assert position_size(10_000.0, 0.01, 52_000.0, 51_190.0, BTC).volume == 0.12
    assert position_size(10_000.0, 0.01, 52_000.0, 51_999.0, BTC, cap=1.0).volume == 1.0
    assert floor_to_step(0.3, 0.1) == 0.3  # 0.3 / 0.1 == 2.9999999999999996 must not become 0.2
    assert floor_to_step(0.299999, 0.01) == 0.29


def test_size_is_zero_with_a_reason_when_even_the_minimum_lot_risks_too_much() -> None:
    decision = position_size(100.0, 0.01, 52_000.0, 40_000.0, BTC)  # 1 USD budget, 120 USD for 0.01 lot
    assert decision.volume == 0.0
    assert "minimum lot 0.01" in decision.reason and "budget 1.00" in decision.reason


@pytest.mark.parametrize(("equity", "entry", "stop"), [(0.0, 52_000.0, 51_000.0), (10_000.0, 52_000.0, 52_000.0),
                                                        (math.nan, 52_000.0, 51_000.0), (10_000.0, -1.0, 51_000.0)])
def test_size_of_bad_inputs_is_zero_with_a_reason(equity: float, entry: float, stop: float) -> None:
    decision = position_size(equity, 0.01, entry, stop, BTC)
    assert decision.volume == 0.0 and decision.reason


@settings(max_examples=300, deadline=None)
@given(equity=st.floats(100, 1e7), risk=st.floats(1e-4, 1.0), entry=st.floats(1_000, 200_000),
       distance=st.floats(0.5, 50_000), step=st.sampled_from([0.001, 0.01, 0.1, 1.0]))
def test_size_never_risks_more_than_the_budget_and_one_more_step_would(equity: float, risk: float, entry: float,
                                                                         distance: float, step: float) -> None:
    spec = SymbolSpec(volume_min=step, volume_max=1_000.0, volume_step=step, tick_size=0.01, tick_value=0.01,
                      point=0.01)
    stop = entry - min(distance, entry * 0.99)
    decision = position_size(equity, risk, entry, stop, spec)
    per_lot = abs(entry - stop) * 1.0  # contract size 1: one lot loses the price distance
    budget = equity * risk
    assert decision.volume * per_lot <= budget * (1 + 1e-9)
    if 0 < decision.volume < spec.volume_max:
        assert (decision.volume + step) * per_lot > budget * (1 - 1e-9)
    if decision.volume == 0:
        assert spec.volume_min * per_lot > budget * (1 - 1e-9)


def test_symbol_spec_from_mt5_info_and_the_simulator_fallback() -> None:
    mt5 = {"volume_min": 0.01, "volume_max": 50, "volume_step": 0.01, "trade_tick_size": 0.5,
           "trade_tick_value": 0.5, "point": 0.01}
    assert SymbolSpec.from_info(mt5).point_value == pytest.approx(0.01)
    sim = {"volume_min": 0.01, "volume_max": 100.0, "volume_step": 0.01, "point": 0.01, "trade_contract_size": 1.0,
           "currency_profit": "USD"}
    assert SymbolSpec.from_info(sim, "USD") == BTC
    with pytest.raises(DataQualityError, match="profit currency"):
        SymbolSpec.from_info(sim, "EUR")  # a point of BTCUSD is not 0.01 EUR
    with pytest.raises(DataQualityError, match="volume_step"):
        SymbolSpec.from_info({k: v for k, v in mt5.items() if k != "volume_step"})


def _state(**kw: object) -> RiskState:
    base = {"peak_balance": 10_000.0, "day_start_balance": 10_000.0, "last_balance": 10_000.0, "daily_pnl": 0.0,
            "trading_day": T0.date()}
    return RiskState(**(base | kw))  # type: ignore[arg-type]


def test_breach_latches_halted_and_only_an_operator_reset_clears_it() -> None:
    limits = RiskLimits(max_drawdown=0.05, max_daily_loss=0.03)
    state = rules.apply_trade(_state(), -310.0, T0, limits)  # 3.1% daily loss
    assert state.status == RiskStatus.HALTED and "daily loss 3.10%" in state.reason and state.halted_at == T0
    next_day = rules.roll_day(state, T0 + dt.timedelta(days=1), limits)
    assert next_day.daily_pnl == 0.0 and next_day.status == RiskStatus.HALTED  # a new day does not un-halt
    reset = rules.operator_set(next_day, RiskStatus.ACTIVE, "alice", T0 + dt.timedelta(days=1), limits)
    assert reset.status == RiskStatus.ACTIVE and reset.changed_by == "alice"
    assert reset.peak_balance == reset.last_balance == 9_690.0  # the limits count from here
    assert rules.status_of(reset, limits) == (RiskStatus.ACTIVE, "")
    with pytest.raises(ValueError, match="name"):
        rules.operator_set(state, RiskStatus.ACTIVE, "  ", T0, limits)


def test_reducing_near_a_limit_and_back_to_active_when_the_day_rolls() -> None:
    limits = RiskLimits(max_drawdown=0.2, max_daily_loss=0.05, reduce_at=0.8)
    state = rules.apply_trade(_state(), -420.0, T0, limits)  # 4.2% >= 80% of 5%
    status, reason = rules.status_of(state, limits)
    assert status == RiskStatus.REDUCING and "daily loss" in reason
    assert state.status == RiskStatus.ACTIVE  # not latched
    tomorrow = rules.roll_day(state, T0 + dt.timedelta(hours=15), limits)
    assert rules.status_of(tomorrow, limits)[0] == RiskStatus.ACTIVE
    assert rules.status_of(state, limits, floating=-100.0)[0] == RiskStatus.HALTED  # an open loss counts


def test_day_boundary_is_utc_or_the_broker_server_day() -> None:
    late = dt.datetime(2024, 3, 1, 22, 30, tzinfo=dt.UTC)
    assert trading_day(late) == dt.date(2024, 3, 1)
    assert trading_day(late, offset_hours=2.0) == dt.date(2024, 3, 2)  # 00:30 on the server's clock
    limits = RiskLimits(day_offset_hours=2.0)
    state = rules.apply_trade(_state(trading_day=dt.date(2024, 3, 1)), -50.0, late, limits)
    assert state.trading_day == dt.date(2024, 3, 2) and state.daily_pnl == -50.0


def test_exposure_counts_positions_and_pending_orders_per_direction() -> None:
    positions = [{"type": 0, "volume": 0.5}, {"type": "POSITION_TYPE_SELL", "volume": 0.2}]
    orders = [{"type": 2, "volume_current": 0.3}, {"type": "ORDER_TYPE_SELL_LIMIT", "volume_current": 0.1}]
    exposure = rules.exposure_from_records(positions, orders)
    assert exposure == Exposure(long_positions=0.5, short_positions=0.2, pending_buy=0.3, pending_sell=0.1)
    assert exposure.side(1) == pytest.approx(0.8) and exposure.side(-1) == pytest.approx(0.3)
    assert exposure.net == pytest.approx(0.3)
    assert exposure.reducible(-1) == pytest.approx(0.2)  # a sell may take the net 0.3 long down to 0 after 0.1
    assert exposure.reducible(1) == 0.0
    with pytest.raises(DataQualityError, match="unknown type"):
        rules.exposure_from_records([{"type": 9, "volume": 1.0}], [])


def test_decisions_by_state_and_side() -> None:
    limits = RiskLimits(max_position_size=1.0)
    long_half = Exposure(long_positions=0.5)
    active, reducing, halted = RiskStatus.ACTIVE, RiskStatus.REDUCING, RiskStatus.HALTED
    assert rules.decide_open(limits, active, "", long_half, 0.5, None).allowed  # 1.0 long at most: at the cap
    assert not rules.decide_open(limits, active, "", long_half, 0.6, None).allowed
    assert not rules.decide_open(limits, active, "", long_half, 0.6, 1).allowed
    assert rules.decide_open(limits, active, "", long_half, 1.0, -1).allowed  # a 1.0 short if the long closes
    assert not rules.decide_open(limits, active, "", long_half, 1.1, -1).allowed
    assert not rules.decide_open(limits, reducing, "near", long_half, 0.1, None).allowed  # no side: refused
    assert rules.decide_open(limits, reducing, "near", long_half, 0.5, -1).allowed
    assert not rules.decide_open(limits, reducing, "near", long_half, 0.6, -1).allowed  # would flip short
    assert not rules.decide_open(limits, reducing, "near", long_half, 0.2, 1).allowed
    pending = Exposure(long_positions=0.5, pending_sell=0.4)
    assert not rules.decide_open(limits, reducing, "near", pending, 0.2, -1).allowed  # 0.5 - 0.4 - 0.2 < 0
    refused = rules.decide_open(limits, halted, "drawdown 5%", long_half, 0.2, -1)
    assert not refused.allowed and "HALTED" in refused.reason and "reset" in refused.reason
    assert not rules.decide_open(limits, active, "", long_half, math.nan, 1).allowed
    over = Exposure(long_positions=1.4)  # someone else's positions already exceed the cap
    assert rules.decide_open(limits, active, "", over, 0.3, -1).allowed
    assert not rules.decide_open(limits, active, "", over, 0.01, 1).allowed


def test_state_dict_round_trip_is_exact() -> None:
    state = _state(daily_pnl=-0.1 - 0.2, status=RiskStatus.HALTED, reason="x", updated_at=T0, halted_at=T0,
                   changed_by="bob", changed_at=T0, version=7)
    assert RiskState.from_dict(state.to_dict()) == state
    with pytest.raises(DataQualityError, match="damaged"):
        RiskState.from_dict({"peak_balance": "lots"})
