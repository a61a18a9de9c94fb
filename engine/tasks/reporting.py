"""Post-run reporting: a configured list of small steps, each logging one plot (and its data) to MLflow.

``task.report: [confusion_matrix, feature_importance, equity_curve]`` picks the steps; each is a plain
function of a :class:`ReportContext`. Plots are drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from engine.tracking.mlflow import Run
from engine.trading.backtest import BacktestResult


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


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log(ctx: ReportContext, fig: Any, name: str) -> str:
    path = f"plots/{name}.png"
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
    plt = _pyplot()
    k = ctx.proba.shape[1]
    pred = ctx.proba.argmax(axis=1)
    counts = np.zeros((k, k), dtype=int)
    np.add.at(counts, (ctx.y_eval.astype(int), pred), 1)
    fig, ax = plt.subplots(figsize=(4 + 0.4 * k, 3.5 + 0.4 * k))
    ax.imshow(counts, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{counts[i, j]:,}", ha="center", va="center",
                    color="white" if counts[i, j] > counts.max() / 2 else "black")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted class", ylabel="true class",
           title=f"confusion matrix ({ctx.span}, n={counts.sum():,})")
    fig.tight_layout()
    _log(ctx, fig, f"confusion_matrix_{ctx.span}")
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
    plt = _pyplot()
    frame = ctx.backtest.frame
    equity = frame["equity"]
    hold = equity.iloc[0] * np.cumprod(1.0 + frame["price_return"].to_numpy())
    peak = np.maximum.accumulate(equity.to_numpy())
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 1))
    top.plot(equity.index, equity.to_numpy(), label="strategy (net of costs)")
    top.plot(equity.index, hold, label="buy and hold", alpha=0.6)
    top.set(title=f"next-bar backtest ({ctx.span})", ylabel="equity")
    top.legend(loc="best")
    bottom.fill_between(equity.index, 0, -(1 - equity.to_numpy() / peak), color="tab:red", alpha=0.5)
    bottom.set(ylabel="drawdown")
    fig.autofmt_xdate()
    fig.tight_layout()
    _log(ctx, fig, f"equity_curve_{ctx.span}")
    ctx.run.log_text(frame.to_csv(), f"report/backtest_{ctx.span}.csv")
    return {}


def shap_summary(ctx: ReportContext) -> dict[str, float]:
    rows = _sample_rows(ctx)
    attr = ctx.pipeline.explain(_take(ctx.X_eval, rows), method="shap", max_samples=ctx.max_samples)
    values = attr.iloc[:, 0] if isinstance(attr, pd.DataFrame) else pd.Series(attr)
    values = values.sort_values(ascending=False)
    ctx.run.log_text(values.to_csv(), f"report/shap_{ctx.span}.csv")
    fig = _bar_plot(values.head(ctx.top_k), f"SHAP summary: mean |attribution| ({ctx.span}, {len(rows):,} rows)",
                    "mean |SHAP value|")
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
