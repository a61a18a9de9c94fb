"""The table a sweep ends with: one row per trial (overrides, objective, status, MLflow run, model), best marked.

Both sweepers end with it: Hydra's basic sweeper (``--multirun a=x,y``, through the callback in
:mod:`engine.tasks.sweeps`) and engine's Optuna sweeper. Jobs may have run in other processes or on other
machines (joblib, Ray), so a job is read back from its Hydra job folder, never from the sweeper's memory:
``.hydra/overrides.yaml`` (what the job was told), ``metrics.json`` and ``tags.json`` (what its run logged,
flat names) and ``run.json`` (its MLflow run id and final status; :class:`engine.tracking.mlflow.Run`).
The table is printed and written to the sweep dir as ``sweep_summary.{md,csv,html}``.
Not a task: no ``run(cfg)``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.redact import mask_override, redact_text

FILES = ("sweep_summary.md", "sweep_summary.csv", "sweep_summary.html")
_LOWER_IS_BETTER = ("log_loss", "loss", "max_drawdown", "max_drawdown_days", "costs_paid", "turnover", "seconds")


def greater_is_better(objective: str) -> bool:
    """The direction of a metric the basic sweeper has no setting for: losses, drawdowns, costs and durations
    are better small; every other metric task=train returns (accuracy, f1, roc_auc, sharpe, ...) large."""
    name = objective.split("_", 1)[1] if objective.startswith(("val_", "test_", "fit_")) else objective
    return not name.endswith(_LOWER_IS_BETTER)


@dataclass(frozen=True)
class Job:
    """What one Hydra job folder of a sweep says about the job."""

    folder: Path
    number: int
    overrides: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)

    def override(self, key: str) -> str | None:
        for item in self.overrides:
            name, _, value = item.partition("=")
            if name.lstrip("+~") == key:
                return value.strip("'\"")
        return None


def _json(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def read_jobs(sweep_dir: Path) -> list[Job]:
    """Every job folder under ``sweep_dir`` (any ``hydra.sweep.subdir`` layout), ordered by job number."""
    jobs = []
    for overrides in Path(sweep_dir).rglob(".hydra/overrides.yaml"):
        folder = overrides.parent.parent
        try:
            told = [str(o) for o in yaml.safe_load(overrides.read_text(encoding="utf-8")) or []]
            hydra = yaml.safe_load((folder / ".hydra" / "hydra.yaml").read_text(encoding="utf-8")) or {}
            number = int(hydra["hydra"]["job"]["num"])
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
            continue  # not a job folder of this sweep, or one a crash left half-written
        jobs.append(Job(folder, number, told, _json(folder / "metrics.json"), _json(folder / "tags.json"),
                        _json(folder / "run.json")))
    return sorted(jobs, key=lambda j: j.number)


@dataclass(frozen=True)
class Trial:
    number: int
    overrides: tuple[str, ...]
    value: float | None
    status: str
    run_id: str | None = None
    model_path: str | None = None
    logged_model: str | None = None  # models:/<model_id> when the trial logged its model to MLflow
    experiment_id: str | None = None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def trial_from_job(job: Job, objective: str | None, *, number: int | None = None, value: Any = None,
                   status: str | None = None, overrides: tuple[str, ...] | None = None) -> Trial:
    """A row from a job folder; the Optuna sweeper passes what the study knows (number, value, state)."""
    given = overrides if overrides is not None else tuple(o for o in job.overrides if not o.startswith("sweep."))
    shown = tuple(mask_override(o) for o in given)  # the table is printed, written and logged
    if value is None and objective is not None:
        value = job.metrics.get(objective)
    done = job.run.get("status") or ("FINISHED" if job.metrics else "FAILED")
    return Trial(number=job.number if number is None else number, overrides=shown, value=_finite(value),
                 status=status or str(done), run_id=job.run.get("run_id"), model_path=job.tags.get("model_path"),
                 logged_model=job.tags.get("logged_model"), experiment_id=job.run.get("experiment_id"))


@dataclass(frozen=True)
class Summary:
    objective: str | None
    maximize: bool
    trials: list[Trial]
    ok_states: tuple[str, ...] = ("FINISHED", "COMPLETE")

    def best(self) -> Trial | None:
        scored = [t for t in self.trials if t.value is not None and t.status in self.ok_states]
        if not scored:
            return None
        pick = max if self.maximize else min
        return pick(scored, key=lambda t: t.value if t.value is not None else math.nan)

    def fixed(self) -> tuple[str, ...]:
        """The overrides every trial had (shown once, above the table, not in every row)."""
        if len(self.trials) < 2:
            return ()
        first, *rest = (set(t.overrides) for t in self.trials)
        common = first.intersection(*rest)
        return tuple(o for o in self.trials[0].overrides if o in common)

    def header(self) -> list[str]:
        goal = f"{self.objective} ({'max' if self.maximize else 'min'})" if self.objective else "objective"
        return ["best", "trial", "overrides", goal, "status", "run id", "model"]

    def rows(self) -> list[list[str]]:
        best, fixed = self.best(), set(self.fixed())
        return [["*" if t is best else "", str(t.number), " ".join(o for o in t.overrides if o not in fixed),
                 "" if t.value is None else f"{t.value:.6g}", t.status, t.run_id or "", t.model_path or ""]
                for t in self.trials]

    def markdown(self) -> str:
        def line(cells: Iterable[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        head = self.header()
        body = [line(head), line("---" for _ in head), *(line(r) for r in self.rows())]
        return f"{self.caption()}\n\n" + "\n".join(body) + "\n"

    def caption(self) -> str:
        best = self.best()
        text = f"sweep: {len(self.trials)} trials" + (f", best trial {best.number}" if best else ", none finished")
        fixed = self.fixed()
        return text + (f"; every trial: {' '.join(fixed)}" if fixed else "")

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.header())
        writer.writerows(self.rows())
        return out.getvalue()

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.header())
        body = "".join("<tr{}>{}</tr>".format(' class="best"' if r[0] else "",
                                               "".join(f"<td>{html.escape(c)}</td>" for c in r))
                       for r in self.rows())
        return ("<!doctype html><meta charset='utf-8'><title>sweep summary</title><style>"
                "table{border-collapse:collapse;font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px 8px}"
                "tr.best{background:#e6f4ea;font-weight:bold}</style>"
                f"<p>{html.escape(self.caption())}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n")

    def table(self) -> Table:
        """The terminal's table: run ids cut to 8 characters and no model column, so it fits 80 columns (the
        files and the best-trial line below it carry both in full)."""
        table = Table(title=self.caption(), title_justify="left")
        for name in self.header()[:-1]:
            table.add_column(name, overflow="fold", no_wrap=name in ("run id", "status"))
        for row in self.rows():
            table.add_row(*row[:5], row[5][:8], style="bold green" if row[0] else None)
        return table


def write(summary: Summary, sweep_dir: Path) -> list[Path]:
    """The table as Markdown, CSV and HTML in ``sweep_dir``; returns the files."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, text in zip(FILES, (summary.markdown(), summary.csv(), summary.html()), strict=True):
        path = sweep_dir / name
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return files


def show(summary: Summary, console: Console | None = None) -> None:
    console = console or Console(stderr=True, soft_wrap=True)
    console.print(summary.table())
    best = summary.best()
    if best is not None and best.run_id:
        console.print(f"best trial {best.number}: {summary.objective}={best.value:.6g}, MLflow run {best.run_id}")
    if best is not None and best.model_path:
        console.print(f"best model: {best.model_path}", markup=False)


def basic_summary(sweep_dir: Path, objective: str | None) -> Summary:
    """The summary of a basic (grid) multirun from its job folders."""
    trials = [trial_from_job(job, objective) for job in read_jobs(sweep_dir)]
    return Summary(objective, greater_is_better(objective) if objective else True, trials)


def jobs_by_trial(jobs: Iterable[Job]) -> Mapping[int, Job]:
    """Job folders of an Optuna sweep keyed by the trial number the sweeper told each (``sweep.trial``)."""
    out = {}
    for job in jobs:
        told = job.override("sweep.trial")
        if told is not None and told.lstrip("-").isdigit():
            out[int(told)] = job
    return out


def conclude(summary: Summary, sweep_dir: Path, parent: Any | None, *, register_as: str | None,
             alias: str | None, tracking_uri: str | None, console: Console | None = None) -> Trial | None:
    """Print the table, write it to the sweep dir, log it to the parent run (which adopts every trial's run)
    and, with ``register_as``, register the best trial's logged model under that name (trials never do)."""
    console = console or Console(stderr=True, soft_wrap=True)
    files = write(summary, sweep_dir)
    show(summary, console)
    console.print(f"[dim]summary: {escape(str(files[0]))} (also .csv, .html)[/]")
    best = summary.best()
    if parent is not None:
        parent.adopt(t.run_id for t in summary.trials if t.run_id)
        parent.log_files(files)
        if best is not None:
            parent.set_tags({"best_trial": best.number, "best_run_id": best.run_id or "",
                             "best_model_path": best.model_path or "", "objective": summary.objective or ""})
    if not register_as:
        return best
    if best is None or not best.logged_model:
        console.print(f"[yellow]nothing registered as {register_as}[/]: "
                      + ("no trial finished with a value" if best is None else
                         f"trial {best.number} logged no MLflow model (task.log_model and tracking on)"))
        return best
    from engine.tracking.registry import register

    try:
        registered = register(best.logged_model, register_as, alias=alias, tracking_uri=tracking_uri)
    except Exception as exc:
        console.print(f"[red]could not register trial {best.number}'s model as {register_as}[/]: "
                      f"{redact_text(str(exc))}")
        raise
    if parent is not None:
        parent.set_tags({"registered_model": registered.uri, "registered_version": registered.version})
    if best.run_id and parent is not None:
        parent.client.set_tag(best.run_id, "registered_model", registered.uri)
    console.print(f"registered trial {best.number}'s model as {registered.name} version {registered.version} "
                  f"({registered.uri})")
    return best
