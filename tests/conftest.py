"""Session-wide real services and config helpers.

- ``pg``: a throwaway PostgreSQL cluster (initdb + pg_ctl from the installed server binaries) with SSL
  on, scram-sha-256 auth and a random password, on a free loopback port; removed afterwards.
- ``compose``: the real conf/ composed through Hydra's compose API.
- ``run_engine``: ``python -m engine ...`` in a subprocess whose project root is a temp dir.
- ``shared_data_dir``: ../shared/data (real BTC data for tests); tests needing it skip when absent.

Under CI (``CI=true``) a missing service or data folder fails the tests that need it instead of skipping
them: CI must exercise the real things, and a skip there would hide that they were never run.
"""

from __future__ import annotations

import os
import secrets as pysecrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from omegaconf import DictConfig, open_dict

from tests.pgcluster import PgServer, start_cluster

pytest_plugins = ["tests.service_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def locate_shared_data(path: Path = SHARED_DATA) -> Path:
    """``path`` if it is a folder; otherwise skip the test, or fail it under CI."""
    if not path.is_dir():
        reason = f"real market data not found at {path} (the repo's ../shared/data)"
        if in_ci():
            pytest.fail(f"{reason}; CI runs with ../shared beside the clone, so this is a broken setup, "
                        "not a reason to skip", pytrace=False)
        pytest.skip(f"{reason}; tests that need the large files skip without it")
    return path


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    return locate_shared_data()


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    base = tmp_path_factory.mktemp("pg")
    try:
        server = start_cluster(base, password=pysecrets.token_urlsafe(24))
    except FileNotFoundError as exc:
        if in_ci():
            raise  # CI must exercise the real database: .ci/run installs the server binaries
        pytest.skip(f"PostgreSQL server binaries not found ({exc}); install postgresql (see README)")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ENGINE_ROOT", str(tmp_path))
    return tmp_path


@pytest.fixture
def compose(engine_root: Path) -> Callable[[list[str]], DictConfig]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from engine.cli import CONF_DIR
    from engine.config import register_configs, register_resolvers

    register_configs()
    register_resolvers()

    def _compose(overrides: list[str] | None = None) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides or []), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def run_engine(engine_root: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 900,
             check: bool = False) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "ENGINE_ROOT": str(engine_root), "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "engine", *args], cwd=engine_root, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"engine {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    return _run
