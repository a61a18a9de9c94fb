"""The simulator as a command (``python -m engine.mt5.sim``), its options generated from SimSettings."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests

from engine.mt5.client import MT5RestClient
from engine.mt5.sim.cli import parser, settings_from
from engine.mt5.sim.settings import DEV_TOKEN, SimSettings

REPO = Path(__file__).resolve().parents[2]


def test_simulator_command_serves_and_stops_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MT5_API_KEY"} | {"MT5_API_KEY": "cli-token-123456"}
    proc = subprocess.Popen([sys.executable, "-m", "engine.mt5.sim", "--port", "0", "--start",
                             "2024-02-01T00:00Z", "--spread-points", "700"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        client = MT5RestClient(url.group(0), "cli-token-123456", read_timeout=10)
        tick = client.latest_tick("BTCUSD")
        assert tick["time"] == pd.Timestamp("2024-02-01T00:00Z") and tick["ask"] - tick["bid"] == pytest.approx(7.0)
        r = requests.get(url.group(0) + "/account_info", headers={"Authorization": f"Bearer {DEV_TOKEN}"}, timeout=5)
        assert r.status_code == 401  # the env token replaced the dev token
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]


def test_every_setting_is_an_option_with_the_settings_default() -> None:
    args = parser().parse_args([])
    assert settings_from(args) == SimSettings()
    flags = parser().format_help()
    for spec in dataclasses.fields(SimSettings):
        assert "--" + spec.name.replace("_", "-") in flags, spec.name
    chosen = settings_from(parser().parse_args(["--spread-points", "700", "--step-on-poll", "--drop-rate", "0.5"]))
    assert (chosen.spread_points, chosen.step_on_poll, chosen.drop_rate) == (700, True, 0.5)


def test_an_out_of_bounds_option_is_one_line_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from engine.mt5.sim.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--error-rate", "1.5"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--error-rate" in err and "<= 1.0" in err
