"""What ``send_order`` costs on the client over a bare order POST with ``requests``, on one simulator.

Run: .venv/bin/python bench/orders.py [--n 1000]

Every iteration runs each case once, in an order rotated from one iteration to the next, so that noise from
other processes hits all cases alike; medians are compared. Between iterations the positions the orders
opened are closed directly on the simulated market (untimed, no HTTP), so every case sees the same
almost empty book. The simulator runs in step mode: the quote does not move, nothing is requoted.

  bare       one POST /order with requests: the body built per call, no Idempotency-Key, no checks
             (the reference the issue names).
  bare2      the two requests send_order makes per order, raw: GET /symbol_info_tick, POST /order.
  send       send_order(...): input checks against the symbol's limits (read once a minute: the client's
             symbol_spec), the quote (GET), key + comment, POST /order with the Idempotency-Key, retcode
             interpretation, the result dict.
  send+rule  the pure risk decision (engine.trading.risk_rules: exposure_from_records, roll_day,
             latch_breach, status_of, decide_open on inputs read once before the loop), then send_order.
  send+risk  send_order(..., risk=RiskManager): the same, with RiskManager.can_open_position asked before
             the POST (it reads the account, positions and pending orders over REST and syncs its state
             with the in-memory store).

``send / bare`` includes send_order's quote read: a round trip, not client-side work (a market order is priced
on a fresh quote, which bounds its slippage by ``deviation``). ``send / bare2`` compares like for like (same
requests); its difference is send_order's own cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from engine import MT5RestClient, RiskManager, send_order
from engine.mt5.sim.data import read_minute_bars
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN
from engine.trading import risk_rules as rules
from engine.trading.execution import DEFAULT_DEVIATION, DEFAULT_MAGIC

SYMBOL, VOLUME = "BTCUSD", 0.01
LIMITS = {"max_drawdown": 0.05, "max_daily_loss": 0.05, "risk_per_trade": 0.01, "max_position_size": 1.0}


def flatten(sim: Simulator) -> None:
    """Close every open position on the simulated market itself (no HTTP): the book is the same for all."""
    for position in sim.market.positions(None):
        sim.market.close_position(position["ticket"], None, DEFAULT_DEVIATION, 0, "bench-flatten")


def cases(sim: Simulator, session: requests.Session, client: MT5RestClient) -> dict[str, Callable[[], None]]:
    url, auth = sim.url, {"Authorization": f"Bearer {DEV_TOKEN}"}
    timeout = (3.0, 30.0)  # the client's defaults
    ask = client.latest_tick(SYMBOL)["ask"]  # step mode: the quote stays put

    def bare_post() -> None:
        body = {"action": "DEAL", "symbol": SYMBOL, "volume": VOLUME, "type": "BUY", "price": ask, "sl": 0.0,
                "tp": 0.0, "deviation": DEFAULT_DEVIATION, "magic": DEFAULT_MAGIC, "comment": "bench-bare",
                "type_filling": "IOC", "type_time": 0}
        answer = session.post(f"{url}/order", json=body, headers=auth, timeout=timeout).json()
        # The MT5 result, top-level or under "result" (the quant-server bridge's envelope).
        if answer.get("result", answer).get("retcode") != 10009:
            raise RuntimeError(f"bare POST refused: {answer}")

    def bare_two() -> None:
        session.get(f"{url}/symbol_info_tick/{SYMBOL}", headers=auth, timeout=timeout).json()
        bare_post()

    def send() -> None:
        result = send_order(SYMBOL, VOLUME, "buy", client=client)
        if not result["success"]:
            raise RuntimeError(f"send_order failed: {result['error']}")

    # Inputs of the pure decision, read once (what a loop holding a fresh account snapshot would have).
    limits = rules.RiskLimits(**LIMITS)
    account = client.account_info()
    balance, floating = float(account["balance"]), min(0.0, float(account["equity"]) - float(account["balance"]))
    positions = client.positions(SYMBOL).to_dict("records")
    orders = client.orders(SYMBOL).to_dict("records")
    state = rules.initial_state(balance, dt.datetime.now(dt.UTC), limits)

    def send_after_rule() -> None:
        now = dt.datetime.now(dt.UTC)
        exposure = rules.exposure_from_records(positions, orders)
        checked = rules.latch_breach(rules.roll_day(state, now, limits), limits, now, floating)
        status, why = rules.status_of(checked, limits, floating)
        if not rules.decide_open(limits, status, why, exposure, VOLUME, 1).allowed:
            raise RuntimeError("the pure risk decision refused")
        send()

    risk = RiskManager(client, **LIMITS)

    def send_after_risk() -> None:
        result = send_order(SYMBOL, VOLUME, "buy", client=client, risk=risk)
        if not result["success"]:
            raise RuntimeError(f"send_order(risk=...) failed: {result['error']}")

    return {"bare": bare_post, "bare2": bare_two, "send": send, "send+rule": send_after_rule,
            "send+risk": send_after_risk}


class Counted(requests.Session):
    """A session that counts the HTTP requests it sends (both sides use one: the raw calls and the client)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent += 1
        return super().send(request, **kwargs)


def requests_per_call(sessions: tuple[Counted, ...], call: Callable[[], None]) -> int:
    before = sum(s.sent for s in sessions)
    call()
    return sum(s.sent for s in sessions) - before


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="timed iterations (each runs every case once)")
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()
    bars = read_minute_bars(None, "2024-03-01", None)
    with Simulator(bars) as sim, Counted() as raw, Counted() as ours, \
            MT5RestClient(sim.url, DEV_TOKEN, session=ours) as client:
        run = cases(sim, raw, client)
        names = list(run)
        for call in run.values():  # warm: the client's remembered symbol contract, connections
            call()
        counts = {name: requests_per_call((raw, ours), call) for name, call in run.items()}
        flatten(sim)
        for _ in range(args.warmup):
            for call in run.values():
                call()
            flatten(sim)
        times: dict[str, list[float]] = {name: [] for name in names}
        for i in range(args.n):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                t0 = time.perf_counter()
                run[name]()
                times[name].append(time.perf_counter() - t0)
            flatten(sim)
        deals = len(sim.market.history_deals(dt.datetime(1970, 1, 2), dt.datetime(2100, 1, 1)))

    med = {name: statistics.median(values) for name, values in times.items()}
    # Every order opened one position and flatten() closed it: two deals each, no more, no fewer.
    expected = 2 * len(names) * (2 + args.warmup + args.n)
    print(f"simulator in-process on 127.0.0.1, step mode; {args.n} interleaved iterations after {args.warmup} "
          f"warm-up; {deals} deals booked, {expected} expected ({'OK' if deals == expected else 'MISMATCH'})")
    print(f"{'case':>10} {'HTTP req':>8} {'median us':>10} {'vs bare':>8} {'vs bare2':>9}")
    for name in names:
        print(f"{name:>10} {counts[name]:>8} {med[name] * 1e6:>10.0f} {med[name] / med['bare']:>7.2f}x "
              f"{med[name] / med['bare2']:>8.2f}x")
    own = med["send"] - med["bare2"]
    rule = med["send+rule"] - med["send"]
    print(f"send_order's own client-side cost (send - bare2): {own * 1e6:.0f} us per order; the pure risk decision "
          f"adds {rule * 1e6:.0f} us")
    like_for_like = med["send+rule"] / med["bare2"]
    print(f"goal <= 1.2x: send+rule vs the same requests raw {like_for_like:.2f}x "
          f"({'met' if like_for_like <= 1.2 else 'NOT met'}); vs one bare POST {med['send+rule'] / med['bare']:.2f}x "
          f"({'met' if med['send+rule'] / med['bare'] <= 1.2 else 'NOT met'}: send_order reads the quote "
          "first, one more round trip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
