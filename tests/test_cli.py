from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.cli import CONF_DIR, help_text

# --help answers from conf/ alone: not even Hydra or the config schemas are loaded.
HEAVY = ("torch", "lightning", "mlflow", "shap", "xgboost", "pandas", "sklearn", "hydra", "omegaconf",
         "engine.config.groups")
# --cfg job composes and checks the config: Hydra, the schemas and every module a schema is generated from or a
# _target_ names. Those modules load their numeric stack, drivers and clients on first use, not on import
# (when they did not, start-up went from 0.34 s to 1.1 s).
NOT_FOR_CONFIG = ("numba", "pandas", "sklearn", "torch", "lightning", "mlflow", "shap", "xgboost", "psycopg2",
                  "requests", "fastapi", "uvicorn")


def test_help_lists_every_group_and_option() -> None:
    text = help_text()
    for group_dir in CONF_DIR.iterdir():
        if not group_dir.is_dir() or group_dir.name in {"schema", "hydra"}:
            continue
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(group_dir.name + " ")), None)
        assert line is not None, f"group {group_dir.name} missing from --help"
        for option in group_dir.glob("*.yaml"):
            assert option.stem in line
    assert any(ln.strip().startswith("risk ") and "default" in ln for ln in text.splitlines())


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    probe = ("import runpy, sys; sys.argv=['engine','--help']; runpy.run_module('engine', run_name='__main__'); "
             f"bad=[m for m in {HEAVY!r} if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Config groups" in proc.stdout


def test_cfg_job_composes_without_the_numeric_stack_drivers_or_clients(tmp_path: Path) -> None:
    probe = ("import runpy, sys\n"
             "sys.argv = ['engine', '--cfg', 'job']\n"
             "try:\n"
             "    runpy.run_module('engine', run_name='__main__', alter_sys=True)\n"
             "finally:\n"
             f"    bad = [m for m in {NOT_FOR_CONFIG!r} if m in sys.modules]\n"
             "    assert not bad, f'loaded {bad}; see which module: python -X importtime -m engine --cfg job'\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "_target_: engine.data.features.FeatureEngineering" in proc.stdout  # the composed config was printed


def test_out_of_range_value_fails_before_work(run_engine, engine_root: Path) -> None:
    proc = run_engine("task.max_missing_fraction=1.5")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err == ["engine: invalid config: task.max_missing_fraction: must be >= 0.0 and <= 1.0, got 1.5"]
    assert not (engine_root / "data" / "raw").exists()
    assert not (engine_root / "mlflow.db").exists()


def test_unknown_option_and_key_name_what_is_allowed(run_engine, engine_root: Path) -> None:
    proc = run_engine("source=sampel")
    assert proc.returncode != 0
    assert "Could not find 'source/sampel'" in proc.stderr and "sample" in proc.stderr
    proc = run_engine("source.pathh=x")
    assert proc.returncode != 0
    # One line naming the key and the nearest valid name (it was Hydra's "Key 'pathh' not in 'CsvSourceConfig'"
    # among 8 lines of composition detail).
    assert proc.stderr.splitlines() == ["engine: invalid config: source.pathh: unknown key; did you mean path? "
                                        "valid keys: end, path, start, timeframe"]
    proc = run_engine("timeframe=M7")
    assert proc.returncode == 2 and "timeframe" in proc.stderr and "M5" in proc.stderr
    assert not (engine_root / "data" / "raw").exists()
