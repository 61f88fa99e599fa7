"""Scalar logging: TensorBoard when installed, and always a JSON-lines file and a loss plot.

``scalars.jsonl`` (one ``{"step": ..., "tag": value, ...}`` object per line) is the run's own
record: it needs no extra package, the loss curve PNG is drawn from it, and on resume the lines
past the resumed step are dropped so the record matches the run. TensorBoard event files go to
``<run>/tensorboard`` when the ``tensorboard`` package can be imported.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional

LOGGER = logging.getLogger("training")


class ScalarLogger:
    def __init__(self, run_dir: str, tensorboard: bool = True, resume_step: Optional[int] = None):
        self.path = os.path.join(run_dir, "scalars.jsonl")
        os.makedirs(run_dir, exist_ok=True)
        if resume_step is not None and os.path.isfile(self.path):
            kept = [r for r in read_scalars(self.path) if r.get("step", 0) <= resume_step]
            with open(self.path, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in kept)
        elif resume_step is None and os.path.isfile(self.path):
            os.unlink(self.path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"))
            except ImportError:
                LOGGER.info("tensorboard is not installed: scalars go to %s only", self.path)

    def log(self, step: int, values: Dict[str, float]) -> None:
        record = {"step": int(step)}
        record.update({k: float(v) for k, v in values.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, float(value), int(step))

    def close(self) -> None:
        self._file.close()
        if self.writer is not None:
            self.writer.close()


def read_scalars(path: str) -> List[Dict[str, float]]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def plot_loss_curve(jsonl_path: str, png_path: str) -> bool:
    """Draw every ``train/*`` loss and the validation metric against the step; False if none."""
    if not os.path.isfile(jsonl_path):
        return False
    records = read_scalars(jsonl_path)
    series: Dict[str, List[tuple]] = {}
    for record in records:
        for tag, value in record.items():
            if tag.startswith("train/loss") or tag.startswith("val/"):
                series.setdefault(tag, []).append((record["step"], value))
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = {t: s for t, s in series.items() if t.startswith("train/")}
    validation = {t: s for t, s in series.items() if t.startswith("val/")}
    rows = 2 if validation else 1
    figure, axes = plt.subplots(rows, 1, figsize=(8, 3.5 * rows), squeeze=False)
    for tag, points in sorted(losses.items()):
        steps, values = zip(*points)
        axes[0][0].plot(steps, values, label=tag[len("train/") :], linewidth=1.2)
    axes[0][0].set_xlabel("step")
    axes[0][0].set_ylabel("loss")
    axes[0][0].set_yscale("log")
    axes[0][0].legend(fontsize=8)
    axes[0][0].grid(alpha=0.3)
    if validation:
        for tag, points in sorted(validation.items()):
            steps, values = zip(*points)
            axes[1][0].plot(steps, values, marker="o", label=tag[len("val/") :])
        axes[1][0].set_xlabel("step")
        axes[1][0].set_ylabel("validation")
        axes[1][0].legend(fontsize=8)
        axes[1][0].grid(alpha=0.3)
    figure.tight_layout()
    tmp = png_path + ".tmp.png"
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, png_path)
    return True
