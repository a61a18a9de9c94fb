"""Helpers for task tests: read back what a job recorded in the temp MLflow store."""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Store:
    root: Path

    @property
    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=f"sqlite:///{self.root}/mlflow.db")

    def runs(self, experiment: str) -> list[Any]:
        exp = self.client.get_experiment_by_name(experiment)
        assert exp is not None, f"MLflow experiment {experiment!r} missing in {self.root}"
        return self.client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])

    def artifacts(self, run_id: str, path: str | None = None) -> set[str]:
        """Every artifact path under ``path`` (recursively)."""
        out: set[str] = set()
        for info in self.client.list_artifacts(run_id, path):
            if info.is_dir:
                out |= self.artifacts(run_id, info.path)
            else:
                out.add(info.path)
        return out

    def text(self, run_id: str, path: str) -> str:
        dst = self.root / "downloads" / run_id
        dst.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, path, str(dst))).read_text()


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, created (tables + migrations, several seconds) once per session."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def store(engine_root: Path, mlflow_template: Path) -> Store:
    """The job's MLflow store under ENGINE_ROOT, pre-created from the template."""
    shutil.copyfile(mlflow_template, engine_root / "mlflow.db")
    return Store(engine_root)


@pytest.fixture
def compose_job(compose, engine_root: Path):
    """``compose`` plus the Hydra runtime fields a real job has (the compose API leaves
    ``hydra.runtime.output_dir`` unset, and job_run tags every run with it)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    def _compose(overrides: list[str]) -> Any:
        cfg = compose(overrides)
        hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)
        for node in (hydra_cfg, hydra_cfg.hydra, hydra_cfg.hydra.runtime):
            OmegaConf.set_readonly(node, False)
        hydra_cfg.hydra.runtime.output_dir = str(engine_root / "outputs")
        HydraConfig.instance().set_config(hydra_cfg)
        return cfg

    return _compose
