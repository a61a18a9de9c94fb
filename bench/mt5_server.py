"""Throughput of the contract server: the ASGI one (FastAPI on uvicorn) against the http.server one it replaced.

Run: .venv/bin/python bench/mt5_server.py [--legacy-ref d11a62c] [--seconds 8] [--threads 4]
Each server runs the simulator as its own process (``python -m engine.mt5.sim``) on 127.0.0.1; the legacy one
from a copy of the tree at ``--legacy-ref`` (``git archive``, nothing in this checkout changes). A load process
of ``--threads`` keep-alive sessions sends the same requests to each for ``--seconds`` and counts answers.
Cases: a small answer (/symbol_info_tick), 1,000 M1 bars (/fetch_data_pos), and 8 sessions opening a new
connection per request. Both sides share the 2 cores, so absolute numbers are low; the ratio is the point.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tree: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "MT5_API_KEY": TOKEN, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen([sys.executable, "-m", "engine.mt5.sim", "--port", str(port), "--start",
                             "2024-03-15T00:00Z"], cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the simulator from {tree} did not start")


def load(url: str, path: str, params: dict[str, object], threads: int, seconds: float, fresh: bool) -> float:
    """Answers per second from ``threads`` sessions (or a new connection per request when ``fresh``)."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        session = requests.Session()
        while time.monotonic() < stop:
            if fresh:
                session.close()
                session = requests.Session()
            r = session.get(url + path, params=params, headers=HEADERS, timeout=30)
            r.raise_for_status()
            counts[i] += 1
        session.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, threads: int, seconds: float) -> dict[str, float]:
    cases: dict[str, Callable[[], float]] = {
        "tick (small answer)": lambda: load(url, "/symbol_info_tick/BTCUSD", {}, threads, seconds, False),
        "1,000 M1 bars": lambda: load(url, "/fetch_data_pos", {"symbol": "BTCUSD", "num_bars": 1000}, threads,
                                      seconds, False),
        "tick, new connection each": lambda: load(url, "/symbol_info_tick/BTCUSD", {}, 8, seconds, True),
    }
    load(url, "/symbol_info_tick/BTCUSD", {}, threads, 1.0, False)  # warm up
    return {name: run() for name, run in cases.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--legacy-ref", default="d11a62c", help="git ref of the http.server-based server")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        legacy = Path(tmp) / "legacy"
        legacy.mkdir()
        archive = subprocess.run(["git", "archive", args.legacy_ref, "engine", "data/sample"], cwd=REPO,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(legacy)], input=archive, check=True)
        results = {}
        for label, tree in (("http.server (legacy)", legacy), ("ASGI (uvicorn)", REPO)):
            proc, url = start(tree)
            try:
                results[label] = measure(url, args.threads, args.seconds)
            finally:
                proc.terminate()
                proc.wait(10)
    old, new = results["http.server (legacy)"], results["ASGI (uvicorn)"]
    print(f"{args.threads} keep-alive sessions, {args.seconds:g} s per case, server and load on one 2-core machine")
    print(f"{'case':<28}{'http.server req/s':>20}{'ASGI req/s':>14}{'ratio':>8}")
    for case in old:
        print(f"{case:<28}{old[case]:>20.0f}{new[case]:>14.0f}{new[case] / old[case]:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
