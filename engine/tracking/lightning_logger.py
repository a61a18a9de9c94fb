"""Lightning's MLflow logger writing into an engine job's run (imports lightning: load it lazily).

At module level, not inside a function: ``trainer=ddp`` (ddp_spawn) pickles the logger to its worker
processes, and pickle finds classes by their module path. Only global rank 0 writes (Lightning's loggers
log from rank 0 only), into the run the job's own process opened.
"""

from __future__ import annotations

from lightning.pytorch.loggers import MLFlowLogger


class JobRunLogger(MLFlowLogger):
    # The stock logger marks the run FINISHED when training ends; the run belongs to the engine job, which
    # logs more afterwards and closes it itself, so finalize only flushes.
    def finalize(self, status: str = "success") -> None:
        return None
