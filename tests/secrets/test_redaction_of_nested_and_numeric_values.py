"""Secrets inside non-string values (a whole config group aliased into another key,
numeric secrets) must be masked in MLflow params and tags like string values are."""

from __future__ import annotations

from pathlib import Path

from engine.redact import MASK, redact_mapping, remember_all
from engine.tracking.mlflow import TrackingSettings, start_run

SECRET = "Sup3rS3cretPW!x"
PIN = 73914582


def test_container_and_numeric_values_are_redacted() -> None:
    remember_all({"db_password": SECRET, "mt5_login_pin": PIN})
    out = redact_mapping({"probe_copy": {"user": "engine", "password": SECRET, "port": 5432},
                          "probe_list": [SECRET, 1], "pin_alias": PIN, "seed": 42, "ratio": 0.5, "flag": True})
    assert SECRET not in repr(out) and str(PIN) not in repr(out)
    assert out["probe_copy"]["user"] == "engine" and out["probe_copy"]["port"] == 5432
    assert out["seed"] == 42 and out["ratio"] == 0.5 and out["flag"] is True and out["probe_list"][1] == 1


def test_mlflow_params_and_tags_never_hold_a_secret_nested_in_a_group(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    remember_all({"db_password": SECRET, "mt5_login_pin": PIN})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = TrackingSettings(enabled=True, uri=uri, experiment="leak", artifact_root=str(tmp_path / "art"))
    params = {"probe_copy": {"_target_": "x.Client", "password": SECRET, "host": "db"}, "pin_alias": PIN}
    with start_run(settings, params=params, tags={"copy": {"token": SECRET}, "n": PIN}) as run:
        run_id = run.run_id
    data = MlflowClient(tracking_uri=uri).get_run(run_id).data
    dumped = repr(data.params) + repr(data.tags)
    assert SECRET not in dumped and str(PIN) not in dumped
    assert '"host": "db"' in data.params["probe_copy"] and data.params["pin_alias"] == MASK


def test_wrapped_stream_survives_copy_and_keeps_tty_facts() -> None:
    import copy
    import io

    from engine.redact import RedactingStream

    inner = io.StringIO()
    stream = RedactingStream(inner)
    twin = copy.copy(stream)  # used to recurse forever through __getattr__
    remember_all(SECRET)
    twin.write(f"pw={SECRET}\n")
    assert inner.getvalue() == f"pw={MASK}\n"
    assert stream.isatty() is False and stream.writable()
