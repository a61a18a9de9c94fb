"""A sweep that cannot run is refused before any worker starts (issue 15, item 8): exit status 2, one line
on stderr naming the fix, and nothing created (no sweep folder, no MLflow store, no data)."""

from __future__ import annotations

from pathlib import Path

import pytest

PREFIX = "engine: invalid config: "
CASES = {
    # used to say "Key 'objective' not in 'PrepareTaskConfig'": the default task is prepare
    "search-without-experiment": (
        ("hparams_search=xgb_optuna",),
        "hparams_search=xgb_optuna: needs task=train with model=xgboost (task=prepare is selected); "
        "try +experiment=xgb_1m hparams_search=xgb_optuna"),
    # used to start the workers, then suggest a wrong fix
    "search-for-another-model-family": (
        ("+experiment=xgb_1m", "hparams_search=lstm_optuna"),
        "hparams_search=lstm_optuna: searches model.seq_len, model.params.hidden_dim, model.params.dropout, which "
        "model=xgboost does not have (a search for model=lstm"),
    "tree-search-on-a-net": (
        ("+experiment=lstm_5m", "hparams_search=xgb_optuna"),
        "which model=lstm does not have (a search for model=xgboost); try +experiment=xgb_1m "
        "hparams_search=xgb_optuna"),
    "typo-in-a-searched-key": (
        ("+experiment=xgb_1m", "hparams_search=xgb_optuna",
         '+hydra.sweeper.params={model.params.max_dept:"choice(2,3)"}'),
        "model.params.max_dept: unknown key; did you mean max_depth?"),
    "typo-in-a-swept-key-on-the-command-line": (
        ("+experiment=xgb_1m", "hparams_search=xgb_optuna", "backtest.long_threshol=interval(0.5,0.6)"),
        "backtest.long_threshol: unknown key; did you mean long_threshold"),
    "objective-the-task-never-returns": (
        ("+experiment=xgb_1m", "hparams_search=xgb_optuna", "task.objective=val_sharp"),
        "task.objective: 'val_sharp' is not a metric task=train returns; did you mean val_sharpe"),
    "objective-on-the-test-span": (
        ("+experiment=xgb_1m", "hparams_search=xgb_optuna", "task.objective=test_sharpe"),
        "task.objective: 'test_sharpe' would select on the held-out test span; optimise val_sharpe instead"),
    "basic-sweep-objective": (
        ("--multirun", "+experiment=xgb_1m", "labels.horizon=5,15", "task.objective=val_sharp"),
        "task.objective: 'val_sharp' is not a metric task=train returns"),
    # MLflow refuses these aliases only when the sweep's best trial is registered, after every job has run
    "reserved-alias": (
        ("--multirun", "+experiment=xgb_1m", "labels.horizon=5,15", "task.register_as=btc",
         "task.register_alias=latest"),
        "task.register_alias: 'latest' is reserved by MLflow"),
    "version-like-alias": (
        ("+experiment=xgb_1m", "hparams_search=xgb_optuna", "task.register_as=btc", "task.register_alias=v2"),
        "task.register_alias: 'v2' is reserved by MLflow"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_sweep_is_one_line_naming_the_fix(run_engine, engine_root: Path, case: str) -> None:
    args, expected = CASES[case]
    proc = run_engine(*args, timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(PREFIX) and expected in lines[0], lines[0]
    assert sorted(p.name for p in engine_root.iterdir()) == [], "created before the sweep was refused"


def test_a_right_search_still_passes_preflight(engine_root: Path) -> None:
    from engine.config.preflight import preflight

    preflight(["+experiment=lstm_5m", "hparams_search=lstm_optuna", "task.objective=val_f1"])
    preflight(["--multirun", "+experiment=xgb_1m", "labels.horizon=5,15"])
