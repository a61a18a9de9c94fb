"""The report figures, drawn to be read at a glance (matplotlib's Agg backend: no display needed).

- :func:`confusion_figure`: scikit-learn's ConfusionMatrixDisplay, whose text colour flips at the middle of
  the colour scale (min..max), so every count stays legible on its cell.
- :func:`equity_figure`: strategy vs buy-and-hold with the headline metrics written on the plot.
- :func:`shap_figure`: mean |SHAP| bars beside a beeswarm of the per-row values, coloured by feature value.
Each returns the figure; the caller logs and closes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(counts: np.ndarray, span: str, labels: Sequence[str] | None = None) -> Any:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    k = counts.shape[0]
    fig, ax = plt.subplots(figsize=(4 + 0.4 * k, 3.5 + 0.4 * k))
    display = ConfusionMatrixDisplay(counts, display_labels=list(labels) if labels else list(range(k)))
    display.plot(ax=ax, cmap="Blues", values_format=",d", colorbar=False)
    ax.set(xlabel="predicted class", ylabel="true class", title=f"confusion matrix ({span}, n={int(counts.sum()):,})")
    fig.tight_layout()
    return fig


# (metric key, label, format) written on the equity plot, when the backtest returned the metric
_EQUITY_LINES = (("total_return", "total return", "{:+.2%}"), ("sharpe", "Sharpe (annualised)", "{:.2f}"),
                 ("max_drawdown", "max drawdown", "{:.2%}"), ("hit_rate", "hit rate", "{:.1%}"),
                 ("n_trades", "trades", "{:,.0f}"), ("buy_hold_total_return", "buy and hold", "{:+.2%}"))


def equity_text(metrics: Mapping[str, float]) -> str:
    lines = []
    for key, label, fmt in _EQUITY_LINES:
        value = metrics.get(key)
        if value is not None and np.isfinite(value):
            lines.append(f"{label}: {fmt.format(value)}")
    return "\n".join(lines)


def equity_figure(frame: pd.DataFrame, metrics: Mapping[str, float], span: str, note: str = "") -> Any:
    plt = pyplot()
    equity = frame["equity"]
    hold = equity.iloc[0] * np.cumprod(1.0 + frame["price_return"].to_numpy())
    peak = np.maximum.accumulate(equity.to_numpy())
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 1))
    top.plot(equity.index, equity.to_numpy(), label="strategy (net of costs)")
    top.plot(equity.index, hold, label="buy and hold", alpha=0.6)
    top.set(title=f"next-bar backtest ({span})", ylabel="equity")
    top.legend(loc="lower left")
    text = equity_text(metrics)
    if text:
        top.text(0.01, 0.98, text, transform=top.transAxes, va="top", ha="left", fontsize=8, family="monospace",
                 bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"})
    bottom.fill_between(equity.index, 0, -(1 - equity.to_numpy() / peak), color="tab:red", alpha=0.5)
    bottom.set(ylabel="drawdown")
    if note:
        fig.text(0.01, 0.005, note, fontsize=7, color="0.35", ha="left", va="bottom")
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    return fig


def per_feature(values: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row SHAP values of the last class ([n, features]) and the feature values they belong to: a
    window's attribution is summed over its time steps and shown against the window's last row."""
    shap = values.sum(axis=1) if values.ndim == 4 else values
    shap = shap[..., -1] if shap.ndim == 3 else shap
    feats = x[:, -1, :] if x.ndim == 3 else x
    return shap, feats[-len(shap):]


def shap_figure(importance: pd.Series, shap: np.ndarray, feats: np.ndarray, names: Sequence[str], span: str,
                top_k: int, rng: np.random.Generator) -> Any:
    plt = pyplot()
    top = list(importance.head(top_k).index)
    column = {name: i for i, name in enumerate(names)}
    height = 0.3 * len(top) + 1.8
    fig, (bars, swarm) = plt.subplots(1, 2, figsize=(13, height), sharey=True, width_ratios=(2, 3))
    rows = np.arange(len(top))[::-1]  # largest on top
    bars.barh(rows, importance.loc[top].to_numpy())
    bars.set(yticks=rows, yticklabels=top, xlabel="mean |SHAP value|", title=f"mean |SHAP| ({span})")
    scatter = None
    for row, name in zip(rows, top, strict=True):
        s = shap[:, column[name]]
        v = feats[:, column[name]].astype("float64")
        lo, hi = np.nanpercentile(v, [5, 95]) if np.isfinite(v).any() else (0.0, 1.0)
        colour = np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.full_like(v, 0.5)
        jitter = rng.uniform(-0.3, 0.3, len(s))
        scatter = swarm.scatter(s, row + jitter, c=colour, cmap="coolwarm", vmin=0, vmax=1, s=6, alpha=0.7,
                                linewidths=0)
    swarm.axvline(0, color="0.6", linewidth=0.8)
    swarm.set(xlabel="SHAP value (impact on the last class's probability)", title=f"per row, n={len(shap):,}")
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=swarm, ticks=[0, 1], fraction=0.04)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value")
    fig.tight_layout()
    return fig
