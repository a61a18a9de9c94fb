"""Every option of every config group composes, validates and (when it builds something) builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from engine.cli import CONF_DIR
from engine.config.build import build
from engine.config.validate import validate
from engine.errors import ConfigError

# Groups whose options are not components (bundles, sweepers, launchers) are composed elsewhere.
_NOT_COMPONENTS = {"experiment", "hparams_search", "hydra", "schema"}
_EXTRA = {
    ("connector", "mt5_rest"): ["connector.base_url=https://127.0.0.1:8443"],
    ("source", "csv"): [f"source.path={CONF_DIR.parent}/data/sample/btcusdt_binance_1m_2024Q1.csv.gz"],
}


def _options() -> list[tuple[str, str]]:
    out = []
    for group_dir in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in _NOT_COMPONENTS):
        out += [(group_dir.name, f.stem) for f in sorted(group_dir.glob("*.yaml"))]
    return out


@pytest.fixture
def secrets_file(engine_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real encrypted secrets file holding every ${secret:} the shipped configs reference."""
    from engine.secrets import SecureConfig
    from engine.secrets.keys import generate_key

    key = generate_key()
    monkeypatch.setenv("CONFIG_AES_KEY", key)
    path = engine_root / "secrets.enc"
    SecureConfig(path, key).write({"db_password": "pw-for-build-test", "mt5_api_key": "token-for-build-test"})
    return path


@pytest.mark.parametrize(("group", "option"), _options(), ids=lambda v: str(v))
def test_every_option_composes_validates_and_builds(compose, secrets_file: Path, group: str, option: str) -> None:
    cfg = compose([f"{group}={option}", *_EXTRA.get((group, option), [])])
    validate(cfg)
    node = cfg[group]
    assert isinstance(node, DictConfig)
    if "_target_" in node:
        obj = build(node, object, key=group)
        assert type(obj).__module__.startswith("engine.")


def test_config_yaml_keeps_experiment_out_of_defaults() -> None:
    text = (CONF_DIR / "config.yaml").read_text()
    assert "experiment" not in OmegaConf.create(text).get("defaults", [])


def test_target_outside_engine_is_refused(compose) -> None:
    cfg = compose([])
    node = OmegaConf.create({"_target_": "os.system", "command": "true"})
    with pytest.raises(ConfigError, match="outside engine"):
        build(node, object, key="storage")
    nested = OmegaConf.create({"_target_": "engine.sources.store.StoreBarSource",
                               "store": {"_target_": "subprocess.Popen", "args": ["true"]}})
    with pytest.raises(ConfigError, match=r"source\.store\._target_"):
        build(nested, object, key="source")
    assert cfg.storage._target_.startswith("engine.")


def test_validation_names_nested_key(compose) -> None:
    cfg = compose(["storage=timescaledb", "storage.port=70000"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == "storage.port" and "<= 65535" in str(err.value)


def test_paths_follow_engine_root(compose, engine_root: Path) -> None:
    cfg = compose([])
    assert Path(cfg.paths.raw) == engine_root / "data" / "raw"
    assert cfg.tracking.uri == f"sqlite:///{engine_root}/mlflow.db"


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_every_experiment_passes_the_strict_checks(compose, experiment: str) -> None:
    validate(compose([f"+experiment={experiment}"]))


@pytest.mark.parametrize(("experiment", "search"), [("xgb_1m", "xgb_optuna"), ("lstm_5m", "lstm_optuna")])
def test_every_hparams_search_passes_preflight(engine_root: Path, experiment: str, search: str) -> None:
    from engine.config.preflight import preflight

    preflight([f"+experiment={experiment}", f"hparams_search={search}"])  # every swept key and value checked
    with pytest.raises(ConfigError, match=r"backtest\.long_threshold: must be >= 0\.0 and <= 1\.0, got 1\.5"):
        preflight([f"+experiment={experiment}", f"hparams_search={search}",
                   '+hydra.sweeper.params={backtest.long_threshold:"choice(0.5,1.5)"}'])
