"""What a job prints and where its lines go: quiet by default, everything in the run folder's log.

- :func:`job_console`: the rich console a task prints its phase lines and results on (stderr). Each line is
  also logged (logger ``engine.console``), so the Hydra run folder's ``<job>.log`` holds the whole story,
  and in a multirun every line carries the job's label (``[#3]``) because parallel jobs share one terminal.
- :func:`configure_logging`: library chatter a user cannot act on stays in the log file, not the terminal:
  Hydra's stdout handler shows warnings and errors only (``-v`` / ``hydra.verbose`` shows INFO again);
  MLflow's INFO lines ("Creating initial MLflow database tables", "Validating input example") and its
  artifact download bar are off unless verbose.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf.errors import MissingMandatoryValue
from rich.console import Console
from rich.text import Text

CONSOLE_LOGGER = "engine.console"
_log = logging.getLogger(CONSOLE_LOGGER)


def _hydra() -> Any | None:
    try:
        return HydraConfig.get()
    except ValueError:  # compose API: no Hydra app
        return None


def job_label() -> str | None:
    """``#<job number>`` in a multirun, else None."""
    hc = _hydra()
    if hc is None or str(hc.mode) != "RunMode.MULTIRUN":
        return None
    try:
        return f"#{hc.job.num}"
    except MissingMandatoryValue:
        return None


def verbose() -> bool:
    """``-v`` (``hydra.verbose=engine``) or any ``hydra.verbose`` setting asks for library INFO lines."""
    hc = _hydra()
    return bool(hc is not None and hc.verbose) or os.environ.get("ENGINE_VERBOSE", "") not in ("", "0")


class _NotOnTerminal(logging.Filter):
    """The console already showed these lines; stream handlers skip them, file handlers keep them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != CONSOLE_LOGGER


def configure_logging(label: str | None = None, *, loud: bool | None = None) -> None:
    """Quiet terminal, full log file (idempotent; call once the job's logging is configured by Hydra)."""
    loud = verbose() if loud is None else loud
    if not loud:
        # read by MLflow when it is imported (loggers) and when it downloads (the tqdm bar)
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        if "mlflow" in sys.modules:  # imported already: its loggers were configured from the old level
            logging.getLogger("mlflow").setLevel(logging.WARNING)
    prefix = f"[{label}]" if label else ""
    for handler in logging.getLogger().handlers:
        if type(handler) is not logging.StreamHandler:  # Hydra's console handler; not files, not test capture
            continue
        if not any(isinstance(f, _NotOnTerminal) for f in handler.filters):
            handler.addFilter(_NotOnTerminal())
        handler.setLevel(logging.INFO if loud else logging.WARNING)
        if prefix:
            handler.setFormatter(logging.Formatter(f"{prefix}[%(name)s][%(levelname)s] - %(message)s"))


class JobConsole(Console):
    """A rich console on stderr whose every printed line is also logged to the run folder's log file, with
    the job's label in front of each line in a multirun (no spinner there: parallel spinners garble a terminal)."""

    def __init__(self, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(stderr=True, soft_wrap=True, **kwargs)
        self.label = label
        # a library's logging.config call (disable_existing_loggers defaults to true) may have switched our
        # logger off; the run folder's log depends on it
        _log.disabled = False

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.label:
            objects = (f"[dim]\\[{self.label}][/]", *objects)
        super().print(*objects, **kwargs)
        _log.info("%s", _plain(objects, kwargs.get("sep", " ")))

    def status(self, *args: Any, **kwargs: Any) -> Any:
        if self.label:
            from contextlib import nullcontext

            return nullcontext()
        return super().status(*args, **kwargs)


def _plain(objects: tuple[Any, ...], sep: str) -> str:
    parts = []
    for obj in objects:
        if isinstance(obj, str):
            parts.append(Text.from_markup(obj).plain)
        else:  # a table or another renderable: its text, without colour
            buffer = io.StringIO()
            Console(file=buffer, width=120, color_system=None, soft_wrap=True).print(obj)
            parts.append(buffer.getvalue().rstrip("\n"))
    return sep.join(parts)


def job_console() -> JobConsole:
    """The console of this job, with the job's logging configured (quiet terminal, full log file)."""
    label = job_label()
    configure_logging(label)
    return JobConsole(label)


def print_metrics(console: Console, metrics: Mapping[str, float], keys: tuple[str, ...], note: str = "") -> None:
    """One line of the headline metrics (those present), then ``note`` (how they are computed) if any."""
    console.print("  ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics))
    if note:
        console.print(f"[dim]{note}[/]")
