"""task=live from the command line: the safety gates of mode=live, the default model, and a smoke run of a model
promoted in the MLflow Model Registry (task=train task.register_as=NAME -> task.model=models:/NAME@champion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.validate import validate
from engine.errors import ConfigError
from engine.storage.audit import ParquetAuditStore
from engine.tasks.live import check_mode, model_reference
from engine.tracking.mlflow import flat_metrics

BRIDGE = ["task=live", "connector=mt5_rest"]


@pytest.mark.parametrize(("overrides", "key", "words"), [
    (["task=live", "task.mode=live", "task.confirm_live=true"], "task.mode", "connector=mt5_rest"),
    ([*BRIDGE, "task.mode=live", "connector.base_url=http://127.0.0.1:8443", "task.confirm_live=true"],
     "connector.base_url", "without TLS"),
    ([*BRIDGE, "task.mode=live", "connector.base_url=https://bridge.lan:8443", "connector.api_key=${oc.env:KEY}",
      "task.confirm_live=true"], "connector.api_key", "secrets store"),
    ([*BRIDGE, "task.mode=live", "connector.base_url=https://bridge.lan:8443"], "task.confirm_live", "confirm"),
])
def test_live_mode_refuses_without_tls_a_secret_key_and_a_confirmation(compose, overrides, key, words) -> None:
    with pytest.raises(ConfigError) as caught:
        check_mode(compose(overrides))
    assert caught.value.key == key and words in str(caught.value)


def test_live_mode_with_every_gate_passed_is_accepted(compose) -> None:
    check_mode(compose([*BRIDGE, "task.mode=live", "connector.base_url=https://bridge.lan:8443",
                        "task.confirm_live=true"]))  # the key is ${secret:mt5_api_key}: resolved only when used


def test_the_default_model_is_the_one_the_readme_main_command_saves(compose, engine_root: Path) -> None:
    assert model_reference(compose(["task=live"])) == str(engine_root / "models" / "lstm_5m" / "pipeline.zip")


def test_the_unsettled_alarm_is_a_task_key_checked_before_anything_runs(compose) -> None:
    validate(compose(["task=live", "task.unsettled_alarm_seconds=120"]))
    with pytest.raises(ConfigError) as caught:
        validate(compose(["task=live", "task.unsettled_alarm_seconds=0"]))
    assert caught.value.key == "task.unsettled_alarm_seconds"


def test_without_a_model_it_says_how_to_get_one(run_engine) -> None:
    proc = run_engine("task=live", "tracking.enabled=false", timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "no model at" in last and "models/lstm_5m/pipeline.zip" in last, proc.stderr[-2000:]


def test_smoke_trades_a_registered_champion_and_ends_by_itself(compose, run_engine, engine_root: Path) -> None:
    from mlflow.tracking import MlflowClient

    from engine.tasks import train

    train.run(compose(["task=train", "model=xgboost", "features=minimal", "smoke=true", "model.params.n_estimators=20",
                       "task.report=[]", "task.model_name=btc", "task.register_as=btc"]))
    client = MlflowClient(tracking_uri=f"sqlite:///{engine_root}/mlflow.db")
    assert int(client.get_model_version_by_alias("btc", "champion").version) == 1

    proc = run_engine("task=live", "task.model=models:/btc@champion", "smoke=true", "task.smoke_bars=120",
                      "task.session=smoke", "task.unsettled_alarm_seconds=120", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "heartbeat" in proc.stderr and "live: 120 bars, 120 decisions" in proc.stderr
    records = ParquetAuditStore(engine_root / "data" / "audit").read("smoke")
    assert sum(r.kind == "bar_done" for r in records) == 120
    assert records[0].kind == "session_start" and records[0].detail["registered_version"] == 1
    assert records[0].detail["settings"]["unsettled_alarm_seconds"] == 120.0  # the task key reached the loop
    assert records[-1].detail["reason"] == "max_bars=120 reached"
    (run,) = client.search_runs([client.get_experiment_by_name("engine-live").experiment_id])
    metrics = flat_metrics(run.data.metrics)
    assert metrics["bars"] == 120 and "order_latency_p99_ms" in metrics
    assert run.data.tags["registered_name"] == "btc" and run.data.tags["mode"] == "paper"


@pytest.mark.postgres
def test_with_storage_timescaledb_the_trail_and_risk_state_live_in_the_database(compose, pg) -> None:
    import datetime as dt

    from engine.tasks.live import stores
    from engine.trading.audit import AuditLog
    from engine.trading.risk_state import RiskState

    cfg = compose(["task=live", "storage=timescaledb", f"storage.host={pg.host}", f"storage.port={pg.port}",
                   f"storage.dbname={pg.dbname}", f"storage.user={pg.user}", f"storage.password={pg.password}"])
    audit, risk = stores(cfg)
    try:
        assert audit.describe().startswith("postgresql://") and "live_audit" in audit.describe()
        log = AuditLog(audit, "pg-session")
        log.add("bar", dt.datetime(2024, 2, 22, tzinfo=dt.UTC), close=1.0)
        log.flush()
        assert [r.kind for r in audit.read("pg-session")] == ["bar"]
        state = RiskState(peak_balance=1.0, day_start_balance=1.0, last_balance=1.0, daily_pnl=0.0,
                          trading_day=dt.date(2024, 2, 22), version=1)
        assert risk.save("pg-session", state) and risk.load("pg-session") == state
    finally:
        audit.close()
        risk.close()


def test_live_refuses_a_configured_quant_server_bridge_in_one_line_before_connecting(run_engine) -> None:
    """Nothing listens on port 1: reaching it would fail otherwise (exit 1); the refusal comes first."""
    proc = run_engine(*BRIDGE, "connector.dialect=quant_server", "connector.base_url=http://127.0.0.1:1",
                      "connector.api_key=${oc.env:SIM_TOKEN}", "tracking.enabled=false", env={"SIM_TOKEN": "x"},
                      timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("engine: ConfigError: connector.dialect: task=live cannot trade through the "
                           "metatrader5-quant-server bridge (configured)") and "python -m engine.mt5.bridge" in last
    assert "Traceback" not in proc.stderr


def test_live_refuses_a_detected_quant_server_bridge_before_any_order(run_engine, model, sample_bars,
                                                                      engine_root: Path) -> None:
    from engine.mt5.sim.market import SimMarket
    from engine.mt5.sim.settings import SimSettings
    from tests.live.conftest import REPLAY_START
    from tests.mt5.bridge.fake_metatrader5 import make_module
    from tests.mt5.quant_server import QuantServer

    market = SimMarket(sample_bars, SimSettings(start=REPLAY_START))
    server = QuantServer(make_module(market)).start()
    try:
        path = model.save_copy(engine_root / "models" / "q" / "pipeline.zip")
        proc = run_engine(*BRIDGE, f"connector.base_url={server.url}", "connector.api_key=${oc.env:SIM_TOKEN}",
                          f"task.model={path}", "tracking.enabled=false", env={"SIM_TOKEN": "x"}, timeout=300)
    finally:
        server.stop()
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "connector.dialect" in last and f"detected from {server.url}/health" in last
    assert server.requests[("GET", "/health")] >= 1
    assert not [route for (method, route) in server.requests if method == "POST"]  # no order, no close
    assert not market.account.deals
