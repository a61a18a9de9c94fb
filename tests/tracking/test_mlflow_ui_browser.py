"""The MLflow UI shows what a train run logs, checked in a real browser (issue 15, item 5).

Two real ``task=train`` runs (xgboost and random forest, smoke mode, backtest and plots included) go into one
experiment of a SQLite store; the venv's ``mlflow server`` serves it on a free 127.0.0.1 port, and headless
Debian Chromium, driven by Playwright, opens the run page (metrics with their values, the dataset), its
model-metrics tab (the equity curve as a line chart), its artifacts view (every plot rendered as an image),
the compare page of both runs, and the two places where MLflow overlays the runs' equity curves: the metric
page linked from the compare view and the experiment's chart view. Expected metric keys are read back from the
store with MlflowClient; only the equity curve is found by a rule (a stepped metric whose key names equity).

Screenshots (full page PNGs, one per page checked, taken whether the checks pass or fail) go to
``test-artifacts/browser/`` in the repo root and, when ``ENGINE_TEST_ARTIFACTS`` is set, to
``$ENGINE_TEST_ARTIFACTS/browser/`` as well.

Needs /usr/bin/chromium (``scripts/install.sh --test`` installs Debian's package; Playwright's own browser
download cannot work offline). Without it the tests skip, except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, in_ci
from tests.scale.services import VENV_BIN, free_port, start, stop, wait_until

CHROMIUM = Path(os.environ.get("ENGINE_CHROMIUM", "/usr/bin/chromium"))
# What worked on an offline machine as root: no sandbox (root), no GPU, and none of Chromium's own
# background connections (update checks, sync, QUIC probes), which the closed network refuses by the dozen.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The UI's first-visit extras would cover half of every screenshot: the assistant panel opens itself, a
# guidance popover points at a button. Seeded as a returning user who works in the "Model training" view.
UI_STORAGE = {
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "mlflow.assistant.panelOpen_v1": "false",
    "mlflow.detectIssues.guidanceShown_v1": "true",
    "mlflow.workflowType_v1": json.dumps("machine_learning"),
}
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
TRAIN = [["task=train", "model=xgboost", "features=minimal", "smoke=true"],
         ["task=train", "model=random_forest", "features=minimal", "smoke=true"]]
UI_TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1600, "height": 1400}
SHOT_MAX_HEIGHT = 3000  # px: a screenshot shows at most this much of a long pane
# How much taller the window must be for the page's scroll panes (those at least half the window high; inner
# panes such as virtualised tables keep their own height) to show all of their content
OVERFLOW_JS = """() => Math.max(0, ...[...document.querySelectorAll('*')].filter(e => e.offsetParent !== null
    && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY) && e.clientHeight >= window.innerHeight / 2
).map(e => e.scrollHeight - e.clientHeight))"""


def shot_dirs() -> list[Path]:
    dirs = [REPO / "test-artifacts" / "browser"]
    if os.environ.get("ENGINE_TEST_ARTIFACTS"):
        dirs.append(Path(os.environ["ENGINE_TEST_ARTIFACTS"]) / "browser")
    return dirs


def require_browser() -> None:
    """Skip without Chromium or Playwright; under CI fail instead (.ci/run installs both)."""
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (apt-get install chromium, or scripts/install.sh --test)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if missing:
        reason = "the MLflow UI browser test needs " + " and ".join(missing)
        if in_ci():
            pytest.fail(f"{reason}; CI must run it", pytrace=False)
        pytest.skip(reason)


def js_number(value: float) -> str:
    """How the UI prints a metric value (JavaScript's shortest round-trip form, as Python's repr for the
    magnitudes :func:`shown_metrics` picks)."""
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    name: str
    metrics: dict[str, float]
    plots: list[str]  # artifact paths of the PNGs (at the artifact root, for the compare view)
    datasets: list[str]
    description: str  # the run's own (mlflow.note.content): model, data, groups chosen


@dataclass(frozen=True)
class Experiment:
    root: Path
    experiment_id: str
    description: str
    runs: list[TrackedRun]
    equity_key: str  # the stepped equity-curve metric both runs logged


def equity_metric(client: Any, run_id: str, keys: list[str]) -> str:
    """The equity curve's key, whatever its style (``test_equity_curve``, ``test/equity_curve``, ...): a
    metric naming equity with more than one step, the test span's when there are several."""
    stepped = [k for k in keys if "equity" in k.lower() and len(client.get_metric_history(run_id, k)) > 1]
    assert stepped, f"no stepped equity metric among {sorted(keys)}"
    return sorted(stepped, key=lambda k: ("test" not in k.lower(), k))[0]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    """Two real train runs, as a user makes them, in one experiment of a fresh SQLite store."""
    require_browser()  # before minutes of training
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("ui")
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    client.search_experiments(max_results=1)  # the store's tables exist before two jobs write to it at once
    env = {**os.environ, **QUIET_ENV, "ENGINE_ROOT": str(root), "PYTHONUNBUFFERED": "1"}
    jobs = []
    for i, args in enumerate(TRAIN):
        log = root / f"train-{i}.log"
        with log.open("w") as out:
            jobs.append((args, log, subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=root, env=env,
                                                     stdout=out, stderr=subprocess.STDOUT)))
    for args, log, proc in jobs:
        try:
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code == 0, f"engine {' '.join(args)} exited {code}\n{log.read_text()[-4000:]}"
    (exp,) = [e for e in client.search_experiments() if e.name != "Default"]
    found = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(found) == 2, [r.info.run_name for r in found]
    runs = [TrackedRun(r.info.run_id, r.info.run_name, dict(r.data.metrics),
                       sorted(a.path for a in client.list_artifacts(r.info.run_id)
                              if a.path.endswith(".png")),
                       [d.dataset.name for d in r.inputs.dataset_inputs],
                       r.data.tags.get("mlflow.note.content", "")) for r in found]
    keys = equity_metric(client, runs[0].run_id, list(runs[0].metrics))
    assert keys == equity_metric(client, runs[1].run_id, list(runs[1].metrics))
    assert keys.startswith("test/"), keys  # metrics grouped by span: the UI's "test" section
    for r in found:  # params are the user's values: no component class paths
        assert r.data.params and not [k for k in r.data.params if k.endswith("_target_")], sorted(r.data.params)
    return Experiment(root, exp.experiment_id, exp.tags.get("mlflow.note.content", ""), runs, keys)


@pytest.fixture(scope="module")
def server(experiment: Experiment) -> Iterator[str]:
    """The venv's ``mlflow server`` on the experiment's stores; stopped (with its workers) afterwards."""
    port = free_port()
    log = experiment.root / "mlflow-server.log"
    proc = start([str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{experiment.root}/mlflow.db",
                  "--default-artifact-root", str(experiment.root / "mlartifacts"), "--host", "127.0.0.1",
                  "--port", str(port), "--workers", "1"], log, env=QUIET_ENV, cwd=experiment.root)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200

    try:
        wait_until(healthy, 60, "mlflow server /health", proc, log)
        yield url
    finally:
        stop(proc)  # its own session: the server and the workers it started


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    """Headless Chromium, closed before the server stops (its open connections would hold up the shutdown)."""
    from playwright.sync_api import expect, sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    seed = "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});" for k, v in UI_STORAGE.items())
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                viewport=VIEWPORT)
            context.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            context.add_init_script(seed)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = browser.new_page()
    yield tab
    tab.close()


@contextmanager
def screenshot(page: Any, name: str) -> Iterator[None]:
    """Save the page as ``name``.png when the block ends, passed or failed (a failure's picture explains it)."""
    try:
        yield
    finally:
        first, *more = shot_dirs()
        first.mkdir(parents=True, exist_ok=True)
        # The UI scrolls inside its own panes, so a "full page" is one window: grow the window to the
        # tallest pane's content (capped) for the picture, then put it back.
        hidden = page.evaluate(OVERFLOW_JS)
        page.set_viewport_size({"width": VIEWPORT["width"],
                                "height": min(VIEWPORT["height"] + int(hidden), SHOT_MAX_HEIGHT)})
        page.wait_for_timeout(800)  # charts redraw for the new size; the picture decides nothing
        page.screenshot(path=str(first / f"{name}.png"), full_page=True)
        page.set_viewport_size(VIEWPORT)
        for folder in more:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(first / f"{name}.png", folder / f"{name}.png")


def run_url(base: str, exp: Experiment, run: TrackedRun, tab: str = "") -> str:
    return f"{base}/#/experiments/{exp.experiment_id}/runs/{run.run_id}" + (f"/{tab}" if tab else "")


def shown_metrics(run: TrackedRun, word: str) -> dict[str, float]:
    """The run's metrics whose key contains ``word`` and whose value prints the same in JavaScript."""
    return {k: v for k, v in run.metrics.items()
            if word in k.lower() and math.isfinite(v) and (v == 0 or 1e-4 <= abs(v) < 1e15)}


def expect_curves(chart: Any, count: int) -> None:
    """``chart`` (a Plotly chart) draws ``count`` different line curves, each with many points. (The metric
    page draws each run's line twice, a hover layer over the visible one: distinct paths are counted.)"""
    lines = chart.locator(".scatterlayer .trace path.js-line")
    wait_until(lambda: lines.count() >= count, UI_TIMEOUT_MS / 1000, f"{count} line traces")
    paths = {lines.nth(i).get_attribute("d") or "" for i in range(lines.count())}
    curves = {d for d in paths if d.count("L") > 10}
    assert len(curves) == count, f"{len(curves)} distinct curves drawn, expected {count}"


def test_run_page_shows_metrics_with_values_and_the_dataset(page: Any, server: str,
                                                           experiment: Experiment) -> None:
    from playwright.sync_api import expect

    run = experiment.runs[0]
    page.goto(run_url(server, experiment, run))
    with screenshot(page, "run_overview"):
        expect(page.get_by_text(f"Metrics ({len(run.metrics)})", exact=True)).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Parameters \(\d+\)$")).first).to_be_visible()
        expect(page.get_by_text(run.name).first).to_be_visible()
        assert run.datasets, "the run logged no dataset"
        assert run.description.startswith("task=train: model "), run.description
        expect(page.get_by_text(run.description[:40], exact=False).first).to_be_visible()
        for name in run.datasets:
            expect(page.get_by_text(name).first).to_be_visible()
    search = page.get_by_placeholder("Search metrics")
    for word in ("sharpe", "accuracy"):
        expected = shown_metrics(run, word)
        assert expected, f"no {word} metric in {sorted(run.metrics)}"
        search.fill(word)
        with screenshot(page, f"run_metrics_{word}"):
            for key, value in expected.items():
                row = page.get_by_role("row").filter(has=page.get_by_role("link", name=key, exact=True))
                expect(row.get_by_role("cell").nth(1)).to_have_text(js_number(value))


def test_model_metrics_tab_charts_the_equity_curve(page: Any, server: str, experiment: Experiment) -> None:
    from playwright.sync_api import expect

    run = experiment.runs[0]
    page.goto(run_url(server, experiment, run, "model-metrics"))
    with screenshot(page, "run_model_metrics"):
        expect(page.get_by_placeholder("Search metric charts")).to_be_visible()
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
    page.get_by_placeholder("Search metric charts").fill("equity")
    with screenshot(page, "run_model_metrics_equity"):
        # MLflow groups charts by the key's prefix (a section "test") and titles each by the rest
        section, _, title = experiment.equity_key.rpartition("/")
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        if section:
            expect(page.get_by_text(re.compile(rf"^{re.escape(section)}\s*\(1\)$"))).to_be_visible()
        charts = page.locator(".js-plotly-plot")
        expect(charts).to_have_count(1)  # the search left the equity chart alone
        expect_curves(charts.first, 1)


def test_artifacts_view_renders_every_plot(page: Any, server: str, experiment: Experiment) -> None:
    from playwright.sync_api import expect

    run = experiment.runs[0]
    assert any("equity" in p for p in run.plots), f"no equity plot among {run.plots}"
    page.goto(run_url(server, experiment, run, f"artifacts/{run.plots[0]}"))
    shown: set[str] = set()
    for plot in run.plots:  # picked in the file tree, as a user does (the hash route only opens the first)
        page.get_by_text(Path(plot).name, exact=True).first.click()
        with screenshot(page, "artifact_" + Path(plot).stem):
            expect(page.get_by_text(plot, exact=True).first).to_be_visible()
            image = page.locator("img[src^='blob:']").first

            def loaded(img: Any = image) -> bool:
                return bool(img.evaluate("e => e.complete && e.naturalWidth > 0")) and img.get_attribute(
                    "src") not in shown

            wait_until(loaded, UI_TIMEOUT_MS / 1000, f"{plot} to load as an image")
            shown.add(image.get_attribute("src") or "")
            assert image.evaluate("e => e.naturalWidth") > 200, f"{plot} rendered as a tiny image"


def test_compare_page_lists_both_runs(page: Any, server: str, experiment: Experiment) -> None:
    from playwright.sync_api import expect

    ids = [r.run_id for r in experiment.runs]
    page.goto(f"{server}/#/compare-runs?runs={json.dumps(ids)}&experiments={json.dumps([experiment.experiment_id])}")
    with screenshot(page, "compare_runs"):
        expect(page.get_by_text("Comparing 2 Runs", exact=False)).to_be_visible()
        for run in experiment.runs:
            expect(page.get_by_text(run.run_id, exact=True).first).to_be_visible()
            expect(page.get_by_text(run.name, exact=True).first).to_be_visible()
        # the long parameter table folded away, so the picture shows the metrics and artifacts sections
        page.get_by_text("Parameters", exact=True).first.click()
        common = sorted(set(experiment.runs[0].metrics) & set(experiment.runs[1].metrics))
        expect(page.get_by_text(common[0], exact=True).first).to_be_visible()
        # the plots sit at the artifact root, which is what the compare view lines up across runs
        expect(page.get_by_text("No common artifacts", exact=False)).to_have_count(0)
        equity_png = next(p for p in experiment.runs[0].plots if "equity" in p)
        expect(page.get_by_text(equity_png, exact=True).first).to_be_visible()


def test_equity_curves_of_both_runs_overlay(page: Any, server: str, experiment: Experiment) -> None:
    """The metric page the compare view links to, and the experiment's chart view: one chart, both runs."""
    from playwright.sync_api import expect

    key, ids = experiment.equity_key, [r.run_id for r in experiment.runs]
    quoted = urllib.parse.quote(json.dumps([key]))
    page.goto(f"{server}/#/metric/{urllib.parse.quote(key, safe='')}?runs={json.dumps(ids)}"
              f"&metric={urllib.parse.quote(json.dumps(key))}&experiments={json.dumps([experiment.experiment_id])}"
              f"&plot_metric_keys={quoted}&plot_layout={{}}&x_axis=step&y_axis_scale=linear&line_smoothness=1"
              "&show_point=false&deselected_curves=[]&last_linear_y_axis_range=[]")
    with screenshot(page, "compare_equity_metric_page"):
        chart = page.locator(".js-plotly-plot").first
        expect(chart).to_be_visible()
        expect_curves(chart, 2)
        for run in experiment.runs:  # the chart's legend, and the table of latest values under it
            expect(page.get_by_text(f"{run.name} ({key})", exact=True).first).to_be_visible()
            expect(page.get_by_role("link", name=run.name, exact=True).first).to_be_visible()

    page.goto(f"{server}/#/experiments/{experiment.experiment_id}/runs?compareRunsMode=CHART")
    page.get_by_placeholder("Search metric charts").fill("equity")
    with screenshot(page, "compare_equity_chart_view"):
        assert experiment.description, "the experiment has no description"
        expect(page.get_by_text(experiment.description[:40], exact=False).first).to_be_visible()
        card = page.locator("[data-testid='experiment-view-compare-runs-card']")
        expect(card).to_have_count(1)  # the search left the equity chart alone
        expect(card).to_contain_text(key[:12])
        for run in experiment.runs:
            expect(card).to_contain_text(run.name[:20])  # the legend (the UI shortens long run names)
        expect_curves(card.locator(".js-plotly-plot"), 2)
