"""The researcher's view of a run (issue 15): quiet terminal, everything in the Hydra run folder with or without
MLflow, and plots that read at a glance."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from engine.config.validate import validate
from engine.tracking.mlflow import metric_key
from tests.tasks.conftest import Store

# what a train job used to print that a user can do nothing about
NOISE = ("Add type hints", "Validating input example", "Downloading artifacts", "Creating initial MLflow database",
         "it/s]", "LeafSpec", "\x1b[33m")
PHASES = ("done load bars", "done fit", "done evaluate", "done report", "done save model")


def _run_folder(root: Path) -> Path:
    (folder,) = {p.parent for p in (root / "outputs").rglob(".hydra")}
    return folder


def test_a_net_trains_quietly_and_its_run_folder_holds_everything(run_engine, store: Store, engine_root: Path) -> None:
    proc = run_engine("+experiment=dnn_1m", "smoke=true", "trainer.max_epochs=1", timeout=600, check=True)
    said = proc.stdout + proc.stderr
    for noise in NOISE:
        assert noise not in said, f"{noise!r} printed:\n{said}"
    # Lightning's INFO lines reach the log file once, and the terminal not at all by default
    assert "GPU available" not in said
    assert "done fit" in proc.stderr and "test_sharpe=" in proc.stderr and "annualised" in proc.stderr

    folder = _run_folder(engine_root)
    log = (folder / "cli.log").read_text()
    for line in PHASES:
        assert line in log, f"{line!r} missing from the run's log:\n{log}"
    assert "test_sharpe=" in log and log.count("GPU available") == 1
    metrics = json.loads((folder / "metrics.json").read_text())
    (run,) = store.runs("dnn_1m")
    for key in ("test_accuracy", "test_sharpe", "val_f1", "n_test"):
        assert metrics[key] == pytest.approx(run.data.metrics[metric_key(key)])
    assert {"confusion_matrix_test.png", "equity_curve_test.png", "report/dataset.json",
            "report/backtest_test.csv"} <= {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert json.loads((folder / "tags.json").read_text())["model_path"].endswith("pipeline.zip")
    # the equity curve is a stepped metric (the compare view overlays runs); the folder keeps it as CSV
    history = store.client.get_metric_history(run.info.run_id, "test/equity_curve")
    assert len(history) > 10 and history[0].value == pytest.approx(1.0)
    assert (folder / "metrics" / "test_equity_curve.csv").read_text().startswith("step,value\n0,")
    # MLflow pages worth opening: the data as a dataset, a described experiment, named models, no class paths
    (dataset,) = [d.dataset for d in store.client.get_run(run.info.run_id).inputs.dataset_inputs]
    assert dataset.digest and "M1" in dataset.name and "train" in dataset.profile
    assert "task=train" in store.client.get_experiment_by_name("dnn_1m").tags["mlflow.note.content"]
    assert not [k for k in run.data.params if k.endswith("_target_")]
    models = store.client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.name for m in models] == ["dnn_1m"]


def test_tracking_off_keeps_plots_metrics_and_shap_in_the_run_folder(compose_job, engine_root: Path, capsys) -> None:
    from engine.tasks import explain, train

    overrides = ["+experiment=xgb_1m", "smoke=true", "tracking=off", "model.params.n_estimators=20"]
    cfg = compose_job(overrides)
    validate(cfg)
    metrics = train.run(cfg)
    folder = engine_root / "outputs"
    assert not (engine_root / "mlflow.db").exists()
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    for plot in ("confusion_matrix_test", "feature_importance_test", "equity_curve_test"):
        assert (folder / f"{plot}.png").stat().st_size > 5_000

    ecfg = compose_job([*overrides, "task=explain", "task.max_samples=40", "task.top_k=5"])
    validate(ecfg)
    explain.run(ecfg)
    table = (folder / "report" / "shap_test.csv").read_text().splitlines()
    top = table[1].split(",")[0]
    assert (folder / "shap_summary_test.png").stat().st_size > 5_000
    printed = capsys.readouterr().err
    assert "mean |SHAP|" in printed and top in printed  # the results are printed, not only written


def test_confusion_matrix_text_contrasts_with_every_cell() -> None:
    """The old rule (white above max/2) drew the smallest count white on the palest cell."""
    from matplotlib import colormaps

    from engine.tasks.plots import confusion_figure

    counts = np.array([[900, 850], [880, 1000]])
    fig = confusion_figure(counts, "test")
    cmap = colormaps["Blues"]
    texts = {t.get_text().replace(",", ""): t for t in fig.axes[0].texts}
    for value in counts.ravel():
        cell = np.asarray(cmap((value - counts.min()) / (counts.max() - counts.min()))[:3])
        text = np.asarray(texts[str(value)].get_color()[:3])
        luminance = np.array([0.2126, 0.7152, 0.0722])
        assert abs(cell @ luminance - text @ luminance) > 0.4, f"{value} is hard to read"


def test_the_equity_plot_states_its_metrics() -> None:
    from engine.tasks.plots import equity_text

    text = equity_text({"total_return": -0.0192, "sharpe": -44.95, "max_drawdown": 0.0198, "n_trades": 34.0,
                        "hit_rate": float("nan")})
    assert "total return: -1.92%" in text and "Sharpe (annualised): -44.95" in text and "trades: 34" in text
    assert "hit rate" not in text  # not a number: left out rather than printed as nan


def test_sharpe_note_names_the_annualisation() -> None:
    from engine.tasks.reporting import sharpe_note

    assert "sqrt(105,120 bars a year at 300s bars" in sharpe_note(300)


def test_multirun_lines_carry_the_job_label_and_reach_the_log(caplog) -> None:
    import io

    from engine.tasks.console import CONSOLE_LOGGER, JobConsole

    console = JobConsole("#3", file=io.StringIO(), color_system=None)
    with caplog.at_level(logging.INFO, logger=CONSOLE_LOGGER):
        console.print("[green]done[/] fit [dim](1.0s)[/]")
    assert console.file.getvalue().strip() == "[#3] done fit (1.0s)"
    assert [r.getMessage() for r in caplog.records if r.name == CONSOLE_LOGGER] == ["[#3] done fit (1.0s)"]


def test_local_record_keeps_metrics_json_safe_and_refuses_paths_outside(tmp_path: Path) -> None:
    from engine.tracking.mlflow import Run

    run = Run(None, None, None, tmp_path)
    assert run.records and not run.active
    run.log_metrics({"a": 1.0, "b": float("nan")})
    run.log_metrics({"a": 2.0})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 2.0, "b": None}
    with pytest.raises(ValueError, match="leaves the run folder"):
        run.log_text("x", "../outside.txt")
