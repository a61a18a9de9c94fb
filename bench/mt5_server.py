"""Throughput of the contract server: the ASGI one (FastAPI on uvicorn) against the http.server one it replaced.

Run: .venv/bin/python bench/mt5_server.py [--legacy-ref d11a62c] [--seconds 4] [--rounds 3] [--threads 4]
Each server runs the simulator as its own process (``python -m engine.mt5.sim``) on 127.0.0.1; the legacy one
from a copy of the tree at ``--legacy-ref`` (``git archive``, nothing in this checkout changes). This process
sends the same requests to each from ``--threads`` keep-alive sessions for ``--seconds``, in alternating
rounds (legacy, new, legacy, ...) so machine noise hits both alike, and reports medians of answers per second
and of the server process's CPU time per answer (from /proc: far less sensitive to other load than rates).
Cases: a small answer (/symbol_info_tick), 1,000 M1 bars (/fetch_data_pos), and 8 sessions opening a new
connection per request. Load and server share the 2 cores, so absolute rates are low; the ratios are the point.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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


CASES: dict[str, tuple[str, dict[str, object], bool]] = {
    "tick (small answer)": ("/symbol_info_tick/BTCUSD", {}, False),
    "1,000 M1 bars": ("/fetch_data_pos", {"symbol": "BTCUSD", "num_bars": 1000}, False),
    "tick, new connection each": ("/symbol_info_tick/BTCUSD", {}, True),
}


def one_round(proc: subprocess.Popen[bytes], url: str, case: str, threads: int, seconds: float) -> tuple[float, float]:
    """(answers per second, server CPU microseconds per answer) for one round of ``case``."""
    path, params, fresh = CASES[case]
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    rate = load(url, path, params, 8 if fresh else threads, seconds, fresh)
    answers = rate * (time.monotonic() - t0)
    return rate, 1e6 * (cpu_seconds(proc.pid) - cpu0) / max(answers, 1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--legacy-ref", default="d11a62c", help="git ref of the http.server-based server")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        legacy = Path(tmp) / "legacy"
        legacy.mkdir()
        archive = subprocess.run(["git", "archive", args.legacy_ref, "engine", "data/sample"], cwd=REPO,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(legacy)], input=archive, check=True)
        servers = {label: start(tree) for label, tree in (("legacy", legacy), ("asgi", REPO))}
        try:
            for _, url in servers.values():
                load(url, "/symbol_info_tick/BTCUSD", {}, args.threads, 1.0, False)  # warm up
            rows = []
            for case in CASES:
                runs: dict[str, list[tuple[float, float]]] = {"legacy": [], "asgi": []}
                for _ in range(args.rounds):
                    for label, (proc, url) in servers.items():
                        runs[label].append(one_round(proc, url, case, args.threads, args.seconds))
                rows.append((case, *(statistics.median(r[i] for r in runs[label])
                                     for label in ("legacy", "asgi") for i in (0, 1))))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(10)
    print(f"{args.threads} keep-alive sessions (8 new-connection ones), {args.rounds} alternating rounds of "
          f"{args.seconds:g} s per case; medians")
    print(f"{'case':<27}{'http.server':>13}{'ASGI':>8}{'ratio':>7}{'CPU us/answer: http.server':>29}{'ASGI':>7}")
    for case, old_rate, old_cpu, new_rate, new_cpu in rows:
        print(f"{case:<27}{old_rate:>9.0f} r/s{new_rate:>8.0f}{new_rate / old_rate:>7.2f}{old_cpu:>29.0f}{new_cpu:>7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
