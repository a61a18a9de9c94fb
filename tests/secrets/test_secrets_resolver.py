"""``${secret:name}`` in composed configs: lazy, uncached, typed failures, and never in what gets recorded."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from engine import redact
from engine.config.build import build
from engine.config.groups.secrets import SecretReferenceError
from engine.config.validate import validate
from engine.errors import ConfigError, EngineError
from engine.secrets import SecureConfig
from engine.storage.timescaledb import TimescaleDBClient
from engine.tasks.common import flatten

CANARY = "resolver-canary-7Hq2x"
TSDB = ["storage=timescaledb"]


def test_composing_and_validating_never_touch_the_secrets_file(compose, engine_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFIG_AES_KEY", raising=False)
    cfg = compose(TSDB)  # no key, no file: composition and validation must still pass
    validate(cfg)
    assert cfg.secrets.path == str(engine_root / "secrets.enc")
    assert cfg.secrets.key_env == "CONFIG_AES_KEY"
    assert OmegaConf.to_yaml(cfg.storage, resolve=False).count("${secret:db_password}") == 1
    assert flatten(cfg)["storage.password"] == "${secret:db_password}"
    with pytest.raises(SecretReferenceError) as err:
        _ = cfg.storage.password
    assert isinstance(err.value, EngineError) and "CONFIG_AES_KEY is not set" in str(err.value)


def test_resolves_at_use_without_caching(compose, engine_root: Path, key: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_AES_KEY", key)
    cfg = compose(TSDB)
    store = SecureConfig(engine_root / "secrets.enc", key)
    store.write({"db_password": CANARY})
    assert cfg.storage.password == CANARY
    store.write({"db_password": CANARY + "-rotated"})
    assert cfg.storage.password == CANARY + "-rotated"  # read afresh: nothing kept by OmegaConf
    client = build(cfg.storage, TimescaleDBClient, key="storage")
    assert CANARY not in repr(client) and CANARY not in client.describe()
    # What the tracking layer records still holds the reference only.
    assert flatten(cfg)["storage.password"] == "${secret:db_password}"
    assert CANARY not in OmegaConf.to_yaml(cfg)


def test_resolved_values_are_masked_in_logs_and_streams(compose, engine_root: Path, key: str,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("CONFIG_AES_KEY", key)
    SecureConfig(engine_root / "secrets.enc", key).write({"db_password": CANARY})
    cfg = compose(TSDB)
    value = cfg.storage.password
    print(f"connecting with {value}")
    print(f"as json: {{\"pw\": \"{value}\"}}", file=sys.stderr)
    with caplog.at_level(logging.INFO):
        logging.getLogger("engine.test").info("password is %s", value)
        try:
            raise RuntimeError(f"failed with {value}")
        except RuntimeError:
            logging.getLogger("engine.test").exception("boom")
    out, err = capsys.readouterr()
    assert "connecting with ***" in out and CANARY not in out + err
    assert CANARY not in caplog.text and "password is ***" in caplog.text
    assert "failed with ***" in caplog.text


def test_missing_name_wrong_key_and_no_group_are_typed(compose, engine_root: Path, key: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    SecureConfig(engine_root / "secrets.enc", key).write({"db_password": CANARY})
    monkeypatch.setenv("CONFIG_AES_KEY", key)
    cfg = compose([*TSDB, "storage.user=${secret:db_user}"])
    with pytest.raises(SecretReferenceError, match="no secret named 'db_user'") as err:
        build(cfg.storage, TimescaleDBClient, key="storage")
    assert CANARY not in str(err.value)
    monkeypatch.setenv("CONFIG_AES_KEY", "w" * 32)
    with pytest.raises(SecretReferenceError, match="key does not open"):
        _ = compose(TSDB).storage.password
    monkeypatch.setenv("CONFIG_AES_KEY", key)
    cfg = compose([*TSDB, "~secrets"])
    with pytest.raises(SecretReferenceError, match="no secrets file is configured"):
        _ = cfg.storage.password


def test_secrets_file_can_be_moved_by_environment(compose, tmp_path: Path, key: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "mounted" / "prod.enc"
    elsewhere.parent.mkdir()
    SecureConfig(elsewhere, key).write({"db_password": CANARY})
    monkeypatch.setenv("ENGINE_SECRETS_FILE", str(elsewhere))
    monkeypatch.setenv("PROD_KEY", key)
    cfg = compose([*TSDB, "secrets.key_env=PROD_KEY"])
    assert cfg.storage.password == CANARY


def test_key_env_must_be_a_variable_name(compose) -> None:
    pasted = "base64:c2VjcmV0LWtleS1wYXN0ZWQtaW50by1jb25maWcx"
    cfg = compose([f"secrets.key_env='{pasted}'"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == "secrets.key_env" and pasted[7:] not in str(err.value)


def test_redaction_covers_escaped_forms_and_records() -> None:
    secret = 'p@ss "w0rd"/é'
    redact.remember(secret)
    redact.remember("abc")  # too short to mask usefully: ignored
    import json
    import urllib.parse

    for form in (secret, json.dumps(secret), repr(secret), urllib.parse.quote(secret, safe=""),
                 f"postgresql://u:{urllib.parse.quote_plus(secret)}@h/db"):
        assert "w0rd" not in redact.redact_text(form), form
    assert redact.redact_text("abc") == "abc"
    assert redact.redact_mapping({"storage.password": "x", "storage.host": f"h-{secret}",
                                  "mt5.api_key": "${secret:api}"}) == {
        "storage.password": "***", "storage.host": "h-***", "mt5.api_key": "${secret:api}"}
    redact.install_log_redaction()
    record = logging.getLogRecordFactory()("n", logging.INFO, __file__, 1, "v=%s", (secret,), None)
    assert record.getMessage() == "v=***"


def test_references_in_hydras_own_node_stay_text(compose, engine_root: Path, key: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # hydra.overrides.task holds the command line; run names are built from it, so resolving a
    # `storage.dbname=${secret:db_name}` override there would put the value into MLflow.
    from hydra.core.hydra_config import HydraConfig

    from engine.tasks.common import run_name

    monkeypatch.setenv("CONFIG_AES_KEY", key)
    SecureConfig(engine_root / "secrets.enc", key).write({"db_password": CANARY})
    cfg = compose([*TSDB, "storage.user=${secret:db_password}"])
    assert list(HydraConfig.get().overrides.task)[-1] == "storage.user=${secret:db_password}"
    assert CANARY not in run_name(cfg)
    assert cfg.storage.user == CANARY  # outside hydra's node the reference resolves as usual
