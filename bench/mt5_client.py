"""MT5RestClient overhead against a raw ``requests`` call, both on one pooled session over loopback.

Run: .venv/bin/python bench/mt5_client.py [--n 2000]
Both sides hit the same in-process simulator route; the ratio is client time / raw time (goal <= 1.2).
Calls are interleaved (raw, client, client, raw, ...) so machine noise hits both alike; medians are compared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from engine.mt5.client import MT5RestClient
from engine.mt5.sim.data import read_minute_bars
from engine.mt5.sim.embedded import Simulator
from engine.mt5.sim.settings import DEV_TOKEN


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="requests per side per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    bars = read_minute_bars(None, "2024-03-01", None)
    with Simulator(bars) as sim:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {DEV_TOKEN}"}
        client = MT5RestClient(sim.url, DEV_TOKEN, server_time_offset_hours=2.0)
        cases = {
            "account_info": (lambda: session.get(f"{sim.url}/account_info", headers=headers, timeout=(3, 30)).json(),
                             client.account_info),
            "latest_tick": (lambda: session.get(f"{sim.url}/symbol_info_tick/BTCUSD", headers=headers,
                                                timeout=(3, 30)).json(),
                            lambda: client.latest_tick("BTCUSD")),
        }
        print(f"loopback, {args.n * args.rounds} interleaved requests per side; simulator in-process (2-core machine)")
        worst = 0.0
        for name, (raw, ours) in cases.items():
            for _ in range(200):  # warm the pool and caches
                raw()
                ours()
            raw_s, our_s = [], []
            for i in range(args.n * args.rounds):
                # Interleaved, alternating order: drift from other processes hits both sides alike.
                first, second = (raw, ours) if i % 2 == 0 else (ours, raw)
                t0 = time.perf_counter()
                first()
                t1 = time.perf_counter()
                second()
                t2 = time.perf_counter()
                a, b = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
                raw_s.append(a)
                our_s.append(b)
            raw_med, our_med = statistics.median(raw_s), statistics.median(our_s)
            ratio = our_med / raw_med
            worst = max(worst, ratio)
            print(f"{name:>13}: raw requests {raw_med * 1e6:7.1f} us/call, MT5RestClient "
                  f"{our_med * 1e6:7.1f} us/call (medians), ratio {ratio:.3f} (goal <= 1.2)")
        client.close()
        session.close()
    print(f"worst ratio {worst:.3f}: {'OK' if worst <= 1.2 else 'ABOVE GOAL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
