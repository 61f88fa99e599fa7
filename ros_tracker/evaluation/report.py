"""Score result folders against a dataset; the table, the JSON report and the labels.

A composed dataset (ros_tracker.evaluation.composite) is labelled "composite" in every
output, with a note that its figures are not benchmark scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ros_tracker.evaluation.metrics import (
    CENTRE_THRESHOLDS,
    IOU_THRESHOLDS,
    NORM_THRESHOLDS,
    PROTOCOLS,
    SequenceScore,
    Summary,
    empty_summary,
    mean_fps,
    score_sequence,
    summarize,
    summarize_by_attribute,
)
from ros_tracker.evaluation.readers import Dataset
from ros_tracker.evaluation.runner import read_image, read_results, read_scores

COMPOSITE_NOTE = "sequences composed from real images and videos; not a benchmark score"

_TABLE_COLUMNS = (
    ("AUC", "auc"),
    ("P@20", "precision"),
    ("NP@0.2", "norm_precision"),
    ("AO", "ao"),
    ("SR0.5", "sr50"),
    ("SR0.75", "sr75"),
    ("fps", "fps"),
    ("FT", "false_tracking"),
)


@dataclass
class TrackerReport:
    name: str
    summary: Summary
    by_attribute: Dict[str, Summary] = field(default_factory=dict)
    sequences: List[SequenceScore] = field(default_factory=list)


def dataset_title(dataset: Dataset) -> str:
    """How results on ``dataset`` are titled: composite sets say what they are."""
    if dataset.composite:
        title = f"composite ({COMPOSITE_NOTE})"
    else:
        title = f"{dataset.name} ({dataset.format} protocol)"
    if dataset.split:
        title += f", split {dataset.split}"
    return title


def score_tracker(dataset: Dataset, result_dir: str, name: str) -> TrackerReport:
    """Scores of the results in ``result_dir`` under ``dataset``'s benchmark protocol."""
    protocol = PROTOCOLS[dataset.format]
    scores: List[SequenceScore] = []
    all_times = []
    for sequence in dataset.sequences:
        boxes, times = read_results(result_dir, sequence.name)
        confidences = read_scores(result_dir, sequence.name)
        all_times.append(times)
        if not sequence.has_full_ground_truth:
            continue  # a test split: results are for the benchmark's server
        image_size = sequence.image_size
        if protocol.clip_to_image and image_size is None:
            height, width = read_image(sequence.frames[0]).shape[:2]
            image_size = (width, height)
        score = score_sequence(
            sequence.name,
            boxes,
            sequence.ground_truth,
            protocol,
            absent=sequence.absent,
            image_size=image_size,
            times=times,
            attributes=sequence.attributes,
            confidences=confidences,
        )
        if score is not None:
            scores.append(score)
    if not scores:
        return TrackerReport(name, empty_summary(mean_fps(all_times, protocol)))
    return TrackerReport(
        name,
        summarize(scores, protocol),
        summarize_by_attribute(scores, protocol),
        scores,
    )


def _number(value: float) -> Optional[float]:
    return float(value) if value is not None and math.isfinite(value) else None


def _curve(values: np.ndarray) -> List[Optional[float]]:
    return [_number(v) for v in values]


def report_dict(dataset: Dataset, reports: List[TrackerReport]) -> Dict[str, Any]:
    """Everything measured, for ``report.json``: overall, per attribute, per sequence."""
    trackers = {}
    for report in reports:
        trackers[report.name] = {
            "metrics": report.summary.metrics(),
            "false_tracking": _number(report.summary.false_tracking),
            "sequences_scored": report.summary.sequences,
            "curves": {
                "iou_thresholds": IOU_THRESHOLDS.tolist(),
                "success": _curve(report.summary.success_curve),
                "centre_thresholds_px": CENTRE_THRESHOLDS.tolist(),
                "precision": _curve(report.summary.precision_curve),
                "norm_thresholds": NORM_THRESHOLDS.tolist(),
                "norm_precision": _curve(report.summary.norm_precision_curve),
            },
            "attributes": {
                name: dict(summary.metrics(), sequences=summary.sequences)
                for name, summary in report.by_attribute.items()
            },
            "per_sequence": {
                score.name: {
                    "auc": _number(score.auc),
                    "precision": _number(score.precision_curve[20]),
                    "fps": _number(score.fps),
                    "frames_scored": score.frames,
                }
                for score in report.sequences
            },
        }
    return {
        "dataset": dataset.name,
        "title": dataset_title(dataset),
        "composite": dataset.composite,
        "format": dataset.format,
        "split": dataset.split,
        "root": dataset.root,
        "sequences": len(dataset.sequences),
        "trackers": trackers,
    }


def _cell(value: Optional[float], key: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.1f}" if key == "fps" else f"{value:.3f}"


def _render(rows: List[List[str]]) -> List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def format_table(dataset: Dataset, reports: List[TrackerReport]) -> str:
    """The results table (sorted by AUC), then AUC per attribute where there are attributes."""
    ordered = sorted(reports, key=lambda r: _sort_key(r.summary.auc))
    lines = [f"Results on {dataset_title(dataset)}: {len(dataset.sequences)} sequences"]
    rows = [["tracker"] + [label for label, _ in _TABLE_COLUMNS]]
    for report in ordered:
        values = report.summary.metrics([key for _, key in _TABLE_COLUMNS])
        rows.append([report.name] + [_cell(values[key], key) for _, key in _TABLE_COLUMNS])
    lines.extend(_render(rows))
    lines.append(
        "FT: share of frames that claim TRACKING (confidence >= 0.3) with IoU < 0.1 "
        "(- where the tracker reports no confidence)"
    )
    if not dataset.has_ground_truth:
        lines.append(
            "(no public ground truth beyond the first box in this split: only speed is "
            "measured; submit the result files to the benchmark's server)"
        )
    attributes = sorted({a for r in reports for a in r.by_attribute})
    if attributes:
        lines.append("")
        lines.append("AUC per attribute (sequences with the attribute)")
        rows = [["attribute", "seqs"] + [r.name for r in ordered]]
        for attribute in attributes:
            counts = [
                r.by_attribute[attribute].sequences for r in ordered if attribute in r.by_attribute
            ]
            row = [attribute, str(counts[0] if counts else 0)]
            for report in ordered:
                summary = report.by_attribute.get(attribute)
                row.append(_cell(summary.auc if summary else None, "auc"))
            rows.append(row)
        lines.extend(_render(rows))
    return "\n".join(lines)


def _sort_key(value: float) -> float:
    return -value if math.isfinite(value) else math.inf
