"""The backtest report a person reads: files in one folder, then logged to MLflow by the task.

    trades.csv, trades.parquet   one row per trade (entry/exit time and price, side, size, PnL, costs, reason)
    equity.png                   equity vs buy-and-hold, drawdown underneath
    monthly_returns.png          calendar heatmap of monthly returns
    trade_pnl.png                distribution of trade net PnL
    exposure.png                 signed exposure (notional / equity) over time
    metrics.json                 every figure of engine.trading.performance
    report.html                  one self-contained page: the figures (embedded), metrics and tables

Not a task: ``engine/tasks/backtest.py`` calls :func:`write_report`.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.trading.backtest import BacktestResult
from engine.trading.performance import RETURN_METRICS, monthly_returns

MAX_PLOT_POINTS = 3000  # curves are thinned to about this many points (a 1M-bar line draws no better)
MAX_HTML_TRADES = 200  # the page shows the first and last trades; the CSV/Parquet hold them all
FIGURES = ("equity", "monthly_returns", "trade_pnl", "exposure")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thin(n: int) -> np.ndarray:
    """Start of each chunk when a curve of ``n`` points is drawn with at most MAX_PLOT_POINTS."""
    return np.arange(0, n, max(1, math.ceil(n / MAX_PLOT_POINTS)))


def equity_figure(result: BacktestResult, title: str) -> Any:
    plt = _pyplot()
    equity = result.equity.to_numpy()
    hold = result.buy_and_hold.to_numpy()
    starts = _thin(len(equity))
    times = result.frame.index[starts]
    peak = np.maximum.accumulate(equity)
    dd = np.maximum.reduceat(np.where(peak > 0, 1.0 - equity / peak, 0.0), starts)  # deepest of each chunk
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(3, 1))
    top.plot(times, equity[starts], label="strategy (net of costs)", lw=1.2)
    top.plot(times, hold[starts], label="buy and hold", lw=1.0, alpha=0.7)
    top.set(title=title, ylabel="equity")
    top.legend(loc="best")
    bottom.fill_between(times, 0, -dd, color="tab:red", alpha=0.5, step="post")
    bottom.set(ylabel="drawdown")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def monthly_figure(table: pd.DataFrame) -> Any:
    plt = _pyplot()
    values = table.to_numpy(dtype="float64") * 100
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.5 * max(len(table), 1)))
    finite = values[np.isfinite(values)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    ax.imshow(values, cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
    ax.set(xticks=range(12), xticklabels=["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                          "Nov", "Dec"], yticks=range(len(table)),
           yticklabels=[str(y) for y in table.index], title="monthly returns (%)")
    fig.tight_layout()
    return fig


def pnl_figure(trades: pd.DataFrame) -> Any:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    pnl = trades["net_pnl"].to_numpy(dtype="float64")
    if pnl.size:
        ax.hist(pnl, bins=min(80, max(10, pnl.size // 20)), color="tab:blue", alpha=0.8)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.axvline(float(pnl.mean()), color="tab:orange", lw=1.2, label=f"mean {pnl.mean():.2f}")
        ax.legend(loc="best")
    ax.set(title=f"trade net PnL ({pnl.size:,} trades)", xlabel="net PnL (account currency)", ylabel="trades")
    fig.tight_layout()
    return fig


def exposure_figure(result: BacktestResult) -> Any:
    plt = _pyplot()
    frame = result.frame
    signed = np.sign(frame["position"].to_numpy()) * frame["exposure"].to_numpy()
    starts = _thin(len(signed))
    counts = np.diff(np.append(starts, len(signed)))
    mean = np.add.reduceat(signed, starts) / counts  # average exposure of each chunk
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.fill_between(frame.index[starts], 0, mean, step="post", alpha=0.6)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set(title="exposure: signed notional / equity (chunk means)", ylabel="x equity")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _number(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _metrics_table(metrics: Mapping[str, float]) -> str:
    rows = [f"<tr><th>{html.escape(name)}</th><td>{_number(metrics[name])}</td>"
            f"<td>{_number(metrics['buy_hold_' + name])}</td></tr>" for name in RETURN_METRICS]
    others = [f"<tr><th>{html.escape(k)}</th><td>{_number(v)}</td><td></td></tr>" for k, v in metrics.items()
              if k not in RETURN_METRICS and not k.startswith("buy_hold_")]
    return ("<table><tr><th></th><th>strategy</th><th>buy &amp; hold</th></tr>" + "".join(rows + others)
            + "</table>")


def _trades_html(trades: pd.DataFrame) -> str:
    if len(trades) > MAX_HTML_TRADES:
        half = MAX_HTML_TRADES // 2
        shown = pd.concat([trades.head(half), trades.tail(half)])
        note = f"<p>First and last {half} of {len(trades):,} trades; all of them are in trades.csv.</p>"
    else:
        shown, note = trades, ""
    return note + shown.to_html(float_format=lambda v: f"{v:,.4f}", border=0)


def _fact(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items() if not str(k).startswith("_"))
    return str(value)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'


_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
          "td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}img{max-width:100%}"
          "h1{font-size:1.4em}")


def write_report(result: BacktestResult, folder: Path, *, title: str, facts: Mapping[str, Any]) -> list[Path]:
    """Write every report file into ``folder``; returns their paths (report.html last)."""
    folder.mkdir(parents=True, exist_ok=True)
    book = result.trades
    book.to_csv(folder / "trades.csv", index=False)
    book.to_parquet(folder / "trades.parquet", index=False)
    table = monthly_returns(result.equity, result.initial)
    figures = [_save(equity_figure(result, title), folder / "equity.png"),
               _save(monthly_figure(table), folder / "monthly_returns.png"),
               _save(pnl_figure(book), folder / "trade_pnl.png"),
               _save(exposure_figure(result), folder / "exposure.png")]
    clean = {k: (v if math.isfinite(v) else str(v)) for k, v in result.metrics.items()}
    (folder / "metrics.json").write_text(json.dumps(clean, indent=2, sort_keys=True))
    reasons = book["exit_reason"].value_counts().to_dict() if len(book) else {}
    fact_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td style='text-align:left'>{html.escape(_fact(v))}"
                        f"</td></tr>" for k, v in facts.items())
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><table>{fact_rows}</table>"
            f"<h2>Performance</h2>{_metrics_table(result.metrics)}"
            f"<p>Exits: {html.escape(', '.join(f'{k} {v:,}' for k, v in reasons.items()) or 'none')}</p>"
            f"<h2>Equity</h2>{_image(figures[0])}<h2>Monthly returns</h2>{_image(figures[1])}"
            f"{(table * 100).round(2).to_html(border=0, na_rep='')}"
            f"<h2>Trades</h2>{_image(figures[2])}{_trades_html(book)}<h2>Exposure</h2>{_image(figures[3])}"
            "</body></html>")
    (folder / "report.html").write_text(page, encoding="utf-8")
    return [folder / "trades.csv", folder / "trades.parquet", *figures, folder / "metrics.json",
            folder / "report.html"]
