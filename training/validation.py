"""Validation during training: the network tracks held-out sequences through the runtime.

The network being trained is wrapped in the runtime's torch backend and ``Tracker`` (the
crops, decoding and box policy of deployment) and run one pass over each held-out sequence
with the evaluation module's runner; the evaluation module's metrics and benchmark protocols
score it. ``synthetic`` entries are written once as a GOT-10k ``val`` tree under the run
directory, so they go through the same readers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ros_tracker.evaluation.metrics import PROTOCOLS, score_sequence, summarize
from ros_tracker.evaluation.readers import Sequence, read_dataset
from ros_tracker.evaluation.runner import read_image, run_sequence
from ros_tracker.evaluation.template_dependence import first_frames, measure_template_dependence
from ros_tracker.runtime.backends.torch_backend import TorchBackend
from ros_tracker.runtime.decoders import SCORE_MAP_FAMILIES
from ros_tracker.runtime.tracker import Tracker

LOGGER = logging.getLogger("training")


def _synthetic_root(entry: Dict[str, Any], cache_dir: str) -> str:
    from training.data.testtree import write_got10k

    count = entry["sequences"] or 4
    root = os.path.join(cache_dir, f"synthetic_{entry['seed']}_{count}_{entry['frames']}")
    if not os.path.isfile(os.path.join(root, "val", "list.txt")):
        tmp = root + ".tmp"
        write_got10k(tmp, "val", range(entry["seed"], entry["seed"] + count), entry["frames"])
        os.replace(tmp, root)
    return root


def load_validation_sets(
    entries: List[Dict[str, Any]], cache_dir: str, max_sequences: int = 0, max_frames: int = 0
) -> List[Tuple[str, List[Sequence]]]:
    """(benchmark format, sequences) per configured entry, truncated as configured."""
    sets = []
    for entry in entries:
        kind = entry["type"]
        if kind == "synthetic":
            dataset = read_dataset(_synthetic_root(entry, cache_dir), "got10k", "val")
        elif kind in ("coco",):
            raise ValueError("validation needs video sequences, not an image dataset")
        else:
            layout = "otb" if kind == "composite" else kind
            dataset = read_dataset(entry["root"], layout, entry["split"] or None)
        sequences = [s for s in dataset.sequences if s.has_full_ground_truth]
        limit = max_sequences or entry["sequences"]
        if limit:
            sequences = sequences[:limit]
        if max_frames:
            sequences = [_truncate(s, max_frames) for s in sequences]
        sets.append((dataset.format, sequences))
    return sets


def _truncate(sequence: Sequence, frames: int) -> Sequence:
    absent = None if sequence.absent is None else sequence.absent[:frames]
    return dataclasses.replace(
        sequence,
        frames=sequence.frames[:frames],
        ground_truth=sequence.ground_truth[:frames],
        absent=absent,
    )


@torch.no_grad()
def validate(
    network: torch.nn.Module, sets: List[Tuple[str, List[Sequence]]], device: str = "cpu"
) -> Dict[str, float]:
    """Metrics (auc, precision, norm_precision, ao, sr50, sr75, false_tracking) averaged over
    the sets, and for networks with a score map ``template_similarity``
    (ros_tracker.evaluation.template_dependence, on the sequences' first frames)."""
    was_training = network.training
    backend = TorchBackend(network.card, network, device=device)
    tracker = Tracker(network.card, backend)
    summaries = []
    try:
        for layout, sequences in sets:
            protocol = PROTOCOLS[layout]
            scores = []
            for sequence in sequences:
                boxes, _, confidences = run_sequence(tracker, sequence)
                size = sequence.image_size
                if size is None and protocol.clip_to_image:
                    height, width = read_image(sequence.frames[0]).shape[:2]
                    size = (width, height)
                scores.append(
                    score_sequence(
                        sequence.name,
                        boxes,
                        sequence.ground_truth,
                        protocol,
                        sequence.absent,
                        size,
                        confidences=confidences,
                    )
                )
            summaries.append(summarize(scores, protocol))
        similarity = _template_similarity(tracker, sets)
    finally:
        network.train(was_training)
    metrics: Dict[str, float] = {}
    for key in ("auc", "precision", "norm_precision", "ao", "sr50", "sr75", "false_tracking"):
        values = [getattr(s, key) for s in summaries]
        values = [v for v in values if np.isfinite(v)]
        metrics[key] = float(np.mean(values)) if values else float("nan")
    if similarity is not None:
        metrics["template_similarity"] = similarity
    return metrics


def _template_similarity(
    tracker: Tracker, sets: List[Tuple[str, List[Sequence]]]
) -> Optional[float]:
    """Does the network follow its template or any object? None where it has no score map."""
    if tracker.card.family not in SCORE_MAP_FAMILIES:
        return None
    frames = first_frames([s for _, sequences in sets for s in sequences])
    if len(frames) < 2:
        return None
    return measure_template_dependence(tracker, frames).similarity
