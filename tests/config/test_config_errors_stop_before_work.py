"""A config that cannot run stops ``python -m engine`` before any work: exit status 2, ONE line on stderr that
names the key (and the nearest valid names), and no run directory, data file or MLflow store left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

# A base64 AES key, as someone might paste it where the key's variable NAME belongs.
PASTED_KEY = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY="
SLICE = ("source.start=2024-03-01", "source.end=2024-03-02")

CASES = {
    # Hydra appends used to slip into schema nodes and run (exit 0, data written).
    "append-at-root": (("+foo=1",), "engine: invalid config: foo: unknown key; valid keys: "),
    "append-to-cleaner": (("+cleaner.zscoree=3",), "cleaner.zscoree: unknown key; did you mean zscore?"),
    "append-to-trainer": (("+trainer.max_epoch=3",), "trainer.max_epoch: unknown key; did you mean max_epochs?"),
    "append-existing-risk-key": (("+risk.max_drawdown=5",), "risk.max_drawdown: the config already has this key"),
    "append-to-deselected-group": (("~connector", "+connector.speed=5"),
                                   "connector.speed: unknown key: no connector option is selected"),
    "typo-in-store-node": (("source=parquet", "+source.store.roott=x"),
                           "source.store.roott: unknown key; did you mean root?"),
    "typo-in-model-params": (("+model.params.n_estimatorz=5",),
                             "model.params.n_estimatorz: unknown key; did you mean n_estimators?"),
    # Hydra's composition errors: 13 lines with the config search path, before.
    "missing-option": (("model=lstmm",), "model: Could not find 'model/lstmm'; did you mean model=lstm?"),
    "plain-typo": (("source.pathh=x",), "source.pathh: unknown key; did you mean path?"),
    "sweep-without-multirun": (("source.end=2024-03-02,2024-03-03",), "Ambiguous value for argument"),
    # A 28-line pandas traceback after the MLflow run had started, before.
    "bad-date": (("source.start=2024-13-45",), "source.start: '2024-13-45' is not a date/time"),
    "end-before-start": (("source.start=2024-03-02", "source.end=2024-03-01"), "source.end: end 2024-03-01 must be after"),
    "out-of-range": (("cleaner.spread_mult=1",), "cleaner.spread_mult: must be > 1.0, got 1"),
    "cross-field-rule": (("task=train", "task.val_frac=0.45", "task.test_frac=0.4"),
                         "task.test_frac: val_frac + test_frac must leave at least 20% for training"),
    "target-reexported-class": (("source=parquet", "source.store._target_=engine.storage.parquet.Path"),
                                "source.store._target_: 'engine.storage.parquet.Path' is pathlib.Path, defined "
                                "outside engine"),
    "target-reexported-builtin": (("source=parquet", "source.store._target_=engine.secrets.formats.os.system"),
                                  "source.store._target_: 'engine.secrets.formats.os.system' is a "
                                  "builtin_function_or_method, not a class or function"),
}


def _assert_nothing_created(root: Path) -> None:
    left = sorted(p.name for p in root.iterdir())
    assert left == [], f"files created before the config was refused: {left}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_one_line_before_any_work(run_engine, engine_root: Path, case: str) -> None:
    overrides, expected = CASES[case]
    proc = run_engine("task=prepare", *SLICE, *overrides)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("engine: invalid config: ") and expected in lines[0]
    _assert_nothing_created(engine_root)


@pytest.mark.parametrize("overrides", [
    ("source.start=2024-03-01", "source.end=2024-03-02,2024-13-03"),
    ("source.start=2024-03-01", "source.end=2024-03-02", "+cleaner.zscoree=3,4"),
    ("source.start=2024-03-01", "source.end=2024-03-02", "model=xgboost,lstmm"),
], ids=["bad-value-in-sweep", "unknown-key-in-sweep", "missing-option-in-sweep"])
def test_multirun_fails_before_launching_jobs(run_engine, engine_root: Path, overrides: tuple[str, ...]) -> None:
    proc = run_engine("--multirun", "task=prepare", *overrides)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    _assert_nothing_created(engine_root)  # no multirun/ folder, no mlflow.db from the sweep callback


def test_sweeper_parameters_are_checked_before_the_sweep(run_engine, engine_root: Path) -> None:
    proc = run_engine("+experiment=xgb_1m", "hparams_search=xgb_optuna",
                      '+hydra.sweeper.params={model.params.learnin_rate:"interval(0.1,0.2)"}')
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "engine: invalid config: model.params.learnin_rate: unknown key; did you mean learning_rate? valid keys: "
        "colsample_bytree, learning_rate, max_depth, min_child_weight, n_estimators, n_jobs, reg_lambda, "
        "subsample, tree_method"]
    _assert_nothing_created(engine_root)


@pytest.mark.parametrize("override", [
    f"secrets.key_env={PASTED_KEY}",  # unquoted: Hydra's parse error used to echo the whole override
    f"secrets.key_env='{PASTED_KEY}'",  # quoted: parses, and the validator refuses it
    f"+secrets.key_envv={PASTED_KEY}",
    f"{PASTED_KEY}",  # the key alone, where an override belongs
    f"storage.password=[{PASTED_KEY}]",  # a type error quotes the value
])
def test_one_line_errors_never_echo_a_secret(run_engine, engine_root: Path, override: str) -> None:
    proc = run_engine("task=prepare", "storage=timescaledb", override)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for fragment in (PASTED_KEY, PASTED_KEY.rstrip("="), PASTED_KEY[:16], PASTED_KEY[-16:]):
        assert fragment not in proc.stderr + proc.stdout
    _assert_nothing_created(engine_root)


def test_hydra_full_error_still_shows_everything(run_engine, engine_root: Path) -> None:
    composition = run_engine("task=prepare", "model=lstmm", env={"HYDRA_FULL_ERROR": "1"})
    assert composition.returncode != 0
    assert "Traceback" in composition.stderr and "Config search path" in composition.stderr
    strict = run_engine("task=prepare", "+foo=1", env={"HYDRA_FULL_ERROR": "1"})
    assert strict.returncode != 0
    assert "Traceback" in strict.stderr and "foo: unknown key" in strict.stderr
    _assert_nothing_created(engine_root)


def test_cfg_job_refuses_unknown_keys_but_shows_incomplete_values(run_engine, engine_root: Path) -> None:
    shown = run_engine("--cfg", "job", "source=csv")  # source.path is ??? until set: still printable
    assert shown.returncode == 0 and "path: ???" in shown.stdout
    refused = run_engine("--cfg", "job", "+foo=1")
    assert refused.returncode == 2 and refused.stderr.startswith("engine: invalid config: foo: unknown key")
    _assert_nothing_created(engine_root)
