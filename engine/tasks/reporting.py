"""Post-run reporting: a configured list of small steps, each logging one plot (and its data) to the run.

``task.report: [confusion_matrix, feature_importance, equity_curve]`` picks the steps; each is a plain
function of a :class:`ReportContext`. The run keeps what they log in MLflow and in the Hydra run folder
(:class:`engine.tracking.mlflow.Run`), so the plots exist with ``tracking=off`` too. The figures are
drawn by :mod:`engine.tasks.plots`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.tasks import plots
from engine.tracking.mlflow import Run
from engine.trading.backtest import BacktestResult
from engine.trading.performance import periods_per_year

EQUITY_POINTS = 500  # the equity curve as a stepped metric: at most this many points per run


@dataclass
class ReportContext:
    run: Run
    pipeline: Any  # a fitted engine.models.pipeline.MLPipeline
    X_eval: Any  # evaluation inputs: a 2-D frame or a [n, seq, features] array
    y_eval: np.ndarray
    proba: np.ndarray
    feature_names: list[str]
    backtest: BacktestResult | None = None
    span: str = "test"
    max_samples: int = 1000
    top_k: int = 20
    seed: int = 0
    bar_seconds: float | None = None  # for the annualisation note on the equity plot


def sharpe_note(bar_seconds: float) -> str:
    """How Sharpe and Sortino are annualised (engine.trading.performance states the convention)."""
    return (f"Sharpe/Sortino are annualised: per-bar mean/std x sqrt({periods_per_year(bar_seconds):,.0f} bars a "
            f"year at {bar_seconds:g}s bars; 365-day year, risk-free rate 0)")


def _pyplot() -> Any:
    return plots.pyplot()


def _log(ctx: ReportContext, fig: Any, name: str) -> str:
    # at the artifact root: the MLflow compare view lines up only top-level files across runs
    path = f"{name}.png"
    ctx.run.log_figure(fig, path)
    _pyplot().close(fig)
    return path


def _take(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else np.asarray(X[idx])


def _sample_rows(ctx: ReportContext) -> np.ndarray:
    n = len(ctx.y_eval)
    if n <= ctx.max_samples:
        return np.arange(n)
    rng = np.random.default_rng(ctx.seed)
    return np.sort(rng.choice(n, size=ctx.max_samples, replace=False))


def confusion_matrix(ctx: ReportContext) -> dict[str, float]:
    k = ctx.proba.shape[1]
    pred = ctx.proba.argmax(axis=1)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (ctx.y_eval.astype(int), pred), 1)
    _log(ctx, plots.confusion_figure(counts, ctx.span), f"confusion_matrix_{ctx.span}")
    ctx.run.log_dict({"labels": list(range(k)), "counts": counts.tolist()}, f"report/confusion_matrix_{ctx.span}.json")
    return {}


def permutation_importance(pipeline: Any, X: Any, y: np.ndarray, feature_names: Sequence[str],
                           seed: int = 0) -> pd.Series:
    """Increase of log loss when one feature is shuffled across samples (model-agnostic; for windows the
    feature is shuffled as a whole across samples, keeping each window's time order)."""
    from engine.metrics import classification_metrics

    rng = np.random.default_rng(seed)
    base = classification_metrics(y, pipeline.predict_proba(X))["log_loss"]
    order = rng.permutation(len(y))
    out = {}
    for j, name in enumerate(feature_names):
        if isinstance(X, pd.DataFrame):
            shuffled = X.copy()
            shuffled[name] = X[name].to_numpy()[order]
        else:
            shuffled = np.array(X, copy=True)
            shuffled[..., j] = shuffled[order][..., j]
        out[name] = classification_metrics(y, pipeline.predict_proba(shuffled))["log_loss"] - base
    return pd.Series(out, name="log_loss_increase").sort_values(ascending=False)


def _bar_plot(values: pd.Series, title: str, xlabel: str) -> Any:
    plt = _pyplot()
    shown = values.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(shown) + 1.5))
    ax.barh(list(map(str, shown.index)), shown.to_numpy())
    ax.set(title=title, xlabel=xlabel)
    fig.tight_layout()
    return fig


def feature_importance(ctx: ReportContext) -> dict[str, float]:
    rows = _sample_rows(ctx)
    imp = permutation_importance(ctx.pipeline, _take(ctx.X_eval, rows), ctx.y_eval[rows], ctx.feature_names,
                                 ctx.seed)
    ctx.run.log_text(imp.to_csv(), f"report/feature_importance_{ctx.span}.csv")
    fig = _bar_plot(imp.head(ctx.top_k), f"permutation importance ({ctx.span}, {len(rows):,} rows)",
                    "log-loss increase when shuffled")
    _log(ctx, fig, f"feature_importance_{ctx.span}")
    return {}


def equity_curve(ctx: ReportContext) -> dict[str, float]:
    if ctx.backtest is None:
        return {}
    frame = ctx.backtest.frame
    note = sharpe_note(ctx.bar_seconds) if ctx.bar_seconds else ""
    _log(ctx, plots.equity_figure(frame, ctx.backtest.metrics, ctx.span, note), f"equity_curve_{ctx.span}")
    ctx.run.log_text(frame.to_csv(), f"report/backtest_{ctx.span}.csv")
    # the same curve as a stepped metric (equity relative to the start, at most EQUITY_POINTS steps): MLflow's
    # compare view overlays the runs' curves, which it cannot do with images
    equity = frame["equity"].to_numpy(dtype="float64")
    steps = np.unique(np.linspace(0, len(equity) - 1, min(EQUITY_POINTS, len(equity))).astype(int))
    if len(steps):
        ctx.run.log_series(f"{ctx.span}_equity_curve", equity[steps] / equity[0], steps.tolist())
    return {}


def shap_summary(ctx: ReportContext) -> dict[str, float]:
    rows = _sample_rows(ctx)
    sample = _take(ctx.X_eval, rows)
    attr = ctx.pipeline.explain(sample, method="shap", max_samples=ctx.max_samples)
    values = attr.iloc[:, 0] if isinstance(attr, pd.DataFrame) else pd.Series(attr)
    values = values.sort_values(ascending=False)
    ctx.run.log_text(values.to_csv(), f"report/shap_{ctx.span}.csv")
    raw = getattr(ctx.pipeline, "shap_values_", None)
    if raw is None:  # no per-row values: the bars alone
        fig = _bar_plot(values.head(ctx.top_k), f"SHAP summary: mean |attribution| ({ctx.span}, {len(rows):,} rows)",
                        "mean |SHAP value|")
    else:
        x = np.asarray(sample[ctx.feature_names] if isinstance(sample, pd.DataFrame) else sample, dtype="float64")
        shap, feats = plots.per_feature(np.asarray(raw), x)
        fig = plots.shap_figure(values, shap, feats, ctx.feature_names, ctx.span, ctx.top_k,
                                np.random.default_rng(ctx.seed))
    _log(ctx, fig, f"shap_summary_{ctx.span}")
    return {}


STEPS: dict[str, Callable[[ReportContext], dict[str, float]]] = {
    "confusion_matrix": confusion_matrix,
    "feature_importance": feature_importance,
    "equity_curve": equity_curve,
    "shap_summary": shap_summary,
}


def run_steps(names: Sequence[str], ctx: ReportContext, progress: Callable[[str], Any] | None = None
              ) -> dict[str, float]:
    """Run the named steps in order; a step may return extra metrics."""
    metrics: dict[str, float] = {}
    for name in names:
        if progress is not None:
            progress(name)
        metrics.update(STEPS[name](ctx))
    return metrics
