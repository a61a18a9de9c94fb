"""Two jobs started in the same second share Hydra's default run folder (outputs/<day>/<HH-MM-SS>): writing
the run's JSON records there must not fail either job (it did: both used one temp file name)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from engine.tracking.mlflow import LocalRecord


def _write_tags(folder: str, who: int, times: int) -> None:
    record = LocalRecord(Path(folder))
    for i in range(times):
        record.tags({f"job{who}": str(i)})


def test_two_processes_write_one_run_folder_without_failing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    jobs = [context.Process(target=_write_tags, args=(str(tmp_path), who, 300)) for who in (0, 1)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
    assert [job.exitcode for job in jobs] == [0, 0]
    assert json.loads((tmp_path / "tags.json").read_text())  # a whole file, whichever job wrote it last
    assert not list(tmp_path.glob(".*.tmp"))
