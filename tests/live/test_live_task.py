"""task=live from the command line: the safety gates of mode=live, the default model, and a smoke run of a model
promoted in the MLflow Model Registry (task=train task.register_as=NAME -> task.model=models:/NAME@champion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.storage.audit import ParquetAuditStore
from engine.tasks.live import check_mode, model_reference

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
                      "task.session=smoke", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "heartbeat" in proc.stderr and "live: 120 bars, 120 decisions" in proc.stderr
    records = ParquetAuditStore(engine_root / "data" / "audit").read("smoke")
    assert sum(r.kind == "bar_done" for r in records) == 120
    assert records[0].kind == "session_start" and records[0].detail["registered_version"] == 1
    assert records[-1].detail["reason"] == "max_bars=120 reached"
    (run,) = client.search_runs([client.get_experiment_by_name("engine-live").experiment_id])
    assert run.data.metrics["bars"] == 120 and "order_latency_p99_ms" in run.data.metrics
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
