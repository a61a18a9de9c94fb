"""Draws docs/scale_out_topology.png, the picture in docs/scale_out.md (``python docs/scale_out_topology.py``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

BOXES = {  # name: (x, y, w, h, colour, text)
    "driver": (0.3, 6.2, 3.4, 1.5, "#dbe9f6", "Laptop / CI / scheduler\npython -m engine --multirun\nhparams_search=... hydra/launcher=ray\n(Optuna sweeper: ask / tell)"),
    "head": (4.6, 6.2, 3.0, 1.5, "#fde2c8", "Ray head\nGCS, scheduler, dashboard\nhydra.launcher.ray.init.address"),
    "w1": (4.0, 3.6, 2.0, 1.6, "#fde2c8", "Ray worker node\n1 job per CPU (or GPU)\ntrainer=auto | gpu"),
    "w2": (6.3, 3.6, 2.2, 1.6, "#fde2c8", "GPU box\ntrainer=ddp\n(N processes, NCCL;\ngloo on CPUs)"),
    "optuna": (0.3, 3.6, 3.2, 1.6, "#e3f1dc", "PostgreSQL: Optuna study\nhydra.sweeper.storage=\n${oc.env:...}\n(trials, pruning reports)"),
    "mlflow": (8.9, 6.2, 3.0, 1.5, "#ece0f5", "MLflow tracking server\nmlflow server --serve-artifacts\ntracking=server"),
    "pg": (8.9, 3.6, 3.0, 1.6, "#e3f1dc", "PostgreSQL\nMLflow backend store\n(runs, params, metrics)"),
    "s3": (5.0, 0.5, 4.2, 1.6, "#f7f3c6", "S3 (AWS / MinIO; moto in tests)\ns3://mlflow/...  artifacts, models\ns3://dvc/...  data/raw, models (DVC)"),
    "dvc": (0.3, 0.5, 3.6, 1.6, "#dbe9f6", "Any clone of the repo\ndvc push / dvc pull\n(credentials in .dvc/config.local\nor AWS_* environment)"),
}
ARROWS = [  # (from, to, label)
    ("driver", "head", "jobs (Ray tasks)"),
    ("head", "w1", ""),
    ("head", "w2", ""),
    ("driver", "optuna", "ask / tell"),
    ("w1", "optuna", "val_loss per epoch"),
    ("w1", "mlflow", ""),
    ("w2", "mlflow", "runs (HTTP)"),
    ("driver", "mlflow", "study run"),
    ("mlflow", "pg", "SQL"),
    ("mlflow", "s3", "artifacts (proxied)"),
    ("dvc", "s3", "dvc remote"),
]


def _centre(name: str) -> tuple[float, float]:
    x, y, w, h, _, _ = BOXES[name]
    return x + w / 2, y + h / 2


def _edge(name: str, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the box's centre towards ``towards`` leaves the box (arrows start at edges)."""
    _, _, w, h, _, _ = BOXES[name]
    cx, cy = _centre(name)
    dx, dy = towards[0] - cx, towards[1] - cy
    scale = min((w / 2 + 0.08) / abs(dx) if dx else float("inf"), (h / 2 + 0.08) / abs(dy) if dy else float("inf"))
    return cx + dx * scale, cy + dy * scale


def main() -> None:
    fig, ax = plt.subplots(figsize=(12.5, 8.8))
    ax.set_xlim(0, 12.2)
    ax.set_ylim(0, 9.0)
    ax.axis("off")
    for x, y, w, h, colour, text in BOXES.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=colour, ec="#555555"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)
    for start, end, label in ARROWS:
        (x0, y0), (x1, y1) = _edge(start, _centre(end)), _edge(end, _centre(start))
        curved = (start, end) == ("driver", "mlflow")  # from top to top, over the Ray head
        if curved:
            (x0, y0), (x1, y1) = (_centre(start)[0], 7.78), (_centre(end)[0], 7.78)
        bend = "arc3,rad=-0.18" if curved else "arc3"
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, color="#333333",
                                     lw=1.0, connectionstyle=bend))
        if label:
            ax.text((x0 + x1) / 2, 8.68 if curved else (y0 + y1) / 2 + 0.12, label, ha="center", fontsize=7.5, color="#333333",
                    bbox={"fc": "white", "ec": "none", "pad": 1})
    ax.set_title("engine beyond one machine: sweeps on Ray, DDP training, shared MLflow / Optuna / DVC", fontsize=11)
    fig.tight_layout()
    fig.savefig(Path(__file__).with_name("scale_out_topology.png"), dpi=110)


if __name__ == "__main__":
    main()
