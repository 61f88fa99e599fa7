"""Success and precision plots of one-pass evaluation, every tracker on one figure.

Drawn as the benchmark papers draw them: success rate over the IoU threshold with the AUC in
the legend, precision over the centre-error threshold with the value at 20 px in the
legend, legends sorted best first. matplotlib runs on the Agg backend (no display needed).
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

from ros_tracker.evaluation.metrics import CENTRE_THRESHOLDS, IOU_THRESHOLDS, PRECISION_INDEX
from ros_tracker.evaluation.report import TrackerReport

_STYLES = ("-", "--", "-.", ":")


def _auc(report: TrackerReport) -> float:
    return report.summary.auc


def _precision(report: TrackerReport) -> float:
    return float(report.summary.precision_curve[PRECISION_INDEX])


def ranked(reports: Sequence[TrackerReport], plot: str) -> List[Tuple[TrackerReport, str]]:
    """(report, legend label) for the "success" or "precision" plot, best first."""
    key = _auc if plot == "success" else _precision
    usable = [r for r in reports if math.isfinite(key(r))]
    return [(r, f"{r.name} [{key(r):.3f}]") for r in sorted(usable, key=lambda r: -key(r))]


def plot_success_precision(reports: Sequence[TrackerReport], path: str, title: str) -> str:
    """Write a PNG with the success plot (left) and the precision plot (right) to ``path``."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11.0, 4.6), dpi=130)
    FigureCanvasAgg(figure)  # Agg, whatever backend pyplot may have chosen elsewhere
    success_axes, precision_axes = figure.subplots(1, 2)
    colours = matplotlib.colormaps["tab10"]
    names = [r.name for r in reports]

    def style(report: TrackerReport) -> dict:
        index = names.index(report.name)
        return dict(
            color=colours(index % 10),
            linestyle=_STYLES[(index // 10) % len(_STYLES)],
            linewidth=2.0,
        )

    for report, label in ranked(reports, "success"):
        success_axes.plot(
            IOU_THRESHOLDS, report.summary.success_curve, label=label, **style(report)
        )
    success_axes.set(
        xlabel="Overlap threshold",
        ylabel="Success rate",
        xlim=(0.0, 1.0),
        ylim=(0.0, 1.02),
        title="Success plot of OPE (AUC)",
    )
    success_axes.legend(loc="lower left", fontsize=9, title="tracker [AUC]", title_fontsize=9)

    for report, label in ranked(reports, "precision"):
        curve = report.summary.precision_curve
        precision_axes.plot(CENTRE_THRESHOLDS, curve, label=label, **style(report))
    precision_axes.axvline(CENTRE_THRESHOLDS[PRECISION_INDEX], color="0.6", linewidth=0.8)
    precision_axes.set(
        xlabel="Location error threshold (pixels)",
        ylabel="Precision",
        xlim=(0.0, float(CENTRE_THRESHOLDS[-1])),
        ylim=(0.0, 1.02),
        title="Precision plot of OPE (at 20 px)",
    )
    precision_axes.legend(loc="lower right", fontsize=9, title="tracker [P@20]", title_fontsize=9)
    for axes in (success_axes, precision_axes):
        axes.grid(True, linestyle=":", linewidth=0.6)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path)
    return path
