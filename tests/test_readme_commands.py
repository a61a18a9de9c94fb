"""Every command of the README's Use section runs and does what its comment says (issue 15, item 1).

The commands are read from README.md itself, so an edited or added line is tested as written: each runs against a
temporary ENGINE_ROOT with ``smoke=true`` appended where it changes the size of the work (and ``tracking=off``
where the comment does not need MLflow). A line with no check below fails ``test_every_use_command_is_checked``.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scale.services import free_port, start, stop, wait_until

PROJECT = Path(__file__).resolve().parents[1]
ENGINE = ".venv/bin/python -m engine"


def use_commands(readme: Path = PROJECT / "README.md") -> list[tuple[str, str]]:
    """(command, comment) of each line of the first ```bash block under "## Use"."""
    text = readme.read_text().split("\n## Use\n", 1)[1]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.splitlines():
        command, _, comment = line.partition("  #")
        if command.strip():
            lines.append((command.strip(), comment.strip()))
    return lines


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project root for the whole README, as a user would run it top to bottom."""
    return tmp_path_factory.mktemp("readme")


def engine(root: Path, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENGINE_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "engine", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"engine {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def saved(root: Path, name: str) -> Path:
    return root / "models" / name / "pipeline.zip"


def ensure_model(root: Path, experiment: str) -> None:
    """The saved model a command reads, trained by its own README command when an earlier test did not."""
    if not saved(root, experiment).is_file():
        engine(root, [f"+experiment={experiment}", "smoke=true", "trainer.max_epochs=1", "task.report=[]"])


def check_help(root: Path, args: list[str]) -> None:
    out = engine(root, args, timeout=60).stdout
    assert "task=" in out and "+experiment=" in out and "Examples" in out.title()
    assert not (root / "outputs").exists()  # the help runs nothing


def check_prepare(root: Path, args: list[str]) -> None:
    proc = engine(root, [*args, "smoke=true", "tracking=off"])
    assert list((root / "data" / "raw").rglob("*.parquet")), "no Parquet under data/raw"
    assert "gap" in (proc.stdout + proc.stderr).lower()


def check_train(name: str) -> Callable[[Path, list[str]], None]:
    def check(root: Path, args: list[str]) -> None:
        proc = engine(root, [*args, "smoke=true", "tracking=off", "task.report=[]"])
        assert saved(root, name).is_file() and "test_sharpe=" in proc.stderr
    return check


def check_backtest(root: Path, args: list[str]) -> None:
    ensure_model(root, "xgb_1m")
    before = saved(root, "xgb_1m").stat().st_mtime_ns
    proc = engine(root, [*args, "smoke=true", "tracking=off"])
    said = proc.stdout + proc.stderr
    assert "sharpe" in said.lower()
    if "walk_forward" in " ".join(args):
        assert "fold" in said.lower()  # retrains per fold
    else:
        assert str(saved(root, "xgb_1m")) in said  # the saved model, not a new one
    assert saved(root, "xgb_1m").stat().st_mtime_ns == before


def check_live_until_ctrl_c(root: Path, args: list[str]) -> None:
    ensure_model(root, "lstm_5m")
    log = root / "live-ctrl-c.log"
    env = {**os.environ, "ENGINE_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "engine", *args, "tracking=off"], cwd=root, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "Ctrl-C" in log.read_text(), 300, "the live loop to start", proc, log)
        assert proc.poll() is None, f"task=live ended by itself:\n{log.read_text()[-3000:]}"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # paper trading on the simulator, with the README's main model, stopped cleanly with its summary line
    text = log.read_text()
    assert "live paper: lstm on BTCUSD" in text and "session lstm_5m-" in text
    assert text.strip().splitlines()[-1].startswith("live: ") and " decisions, " in text


def check_live_smoke(root: Path, args: list[str]) -> None:
    ensure_model(root, "lstm_5m")
    proc = engine(root, [*args, "tracking=off"])
    assert "live: 300 bars, 300 decisions" in proc.stderr


def check_multirun(root: Path, args: list[str]) -> None:
    engine(root, [*args, "smoke=true", "tracking=off", "task.report=[]", "hydra.sweep.dir=readme-sweep"],
           timeout=900)
    # two models x two horizons: four trainings, each keeping its own model
    for name in ("xgboost", "random_forest"):
        assert len(list((root / "models" / name / "runs").glob("*/pipeline.zip"))) >= 2, name
    assert len([p for p in (root / "readme-sweep").iterdir() if p.is_dir() and p.name.isdigit()]) == 4


def check_cfg(root: Path, args: list[str]) -> None:
    before = set(root.rglob("*"))
    out = engine(root, args, timeout=120).stdout
    assert "task:" in out and "symbol:" in out
    assert not {p for p in set(root.rglob("*")) - before if "models" in p.parts or p.name == "mlflow.db"}


def check_mlflow_ui(root: Path, line: str) -> None:
    port = free_port()
    args = [*shlex.split(line), "--host", "127.0.0.1", "--port", str(port)]
    args[0] = str(PROJECT / args[0])
    log = root / "mlflow-ui.log"
    proc = start(args, log, cwd=root)

    def page() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.status == 200 and b"MLflow" in response.read()

    try:
        wait_until(page, 120, "mlflow ui to answer", proc, log)
    finally:
        stop(proc)  # its own session: the server and the workers it started


CHECKS: dict[str, Callable[[Path, list[str]], None]] = {
    "--help": check_help,
    "task=prepare": check_prepare,
    "+experiment=xgb_1m": check_train("xgb_1m"),
    "task=train model=random_forest features=minimal": check_train("random_forest"),
    "+experiment=xgb_1m task=backtest source.start=2024-03-01": check_backtest,
    "+experiment=xgb_1m task=backtest task.walk_forward.enabled=true": check_backtest,
    "task=live": check_live_until_ctrl_c,
    "task=live smoke=true": check_live_smoke,
    "--multirun task=train model=xgboost,random_forest labels.horizon=5,15": check_multirun,
    "--cfg job": check_cfg,
}


def test_every_use_command_is_checked() -> None:
    commands = use_commands()
    assert len(commands) >= 10
    for command, _ in commands:
        if command.startswith(ENGINE):
            assert command.removeprefix(ENGINE).strip() in CHECKS, f"no check for README line {command!r}"
        else:
            assert command.startswith(".venv/bin/mlflow ui"), f"unexpected README line {command!r}"


@pytest.mark.parametrize(("command", "comment"), use_commands(), ids=[c for c, _ in use_commands()])
def test_readme_use_command(root: Path, command: str, comment: str) -> None:
    if command.startswith(".venv/bin/mlflow ui"):
        check_mlflow_ui(root, command)
        return
    args = command.removeprefix(ENGINE).strip()
    CHECKS[args](root, shlex.split(args))

