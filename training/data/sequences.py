"""Training data sources: annotated video sequences and images with boxes.

* Benchmark layouts (GOT-10k, LaSOT, TrackingNet, OTB / UAV123, and the composite benchmark
  built from real imagery) are read with ``ros_tracker.evaluation.readers``, the same readers
  the evaluation uses: the training split of each (``train``), sequences with full ground truth
  only;
* COCO-style json (``images``, ``annotations`` with ``bbox`` = x, y, w, h): each non-crowd
  annotation is one item; a pair is made from one image by augmentation;
* ``synthetic``: ros_tracker's synthetic scene (a photographed target moving over a
  photographed background) rendered on demand, for runs without any dataset on disk.

Boxes are (x, y, w, h) in pixels. A frame is *visible* when its box is finite with a positive
size and the layout does not flag it absent, occluded or out of view.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np


class DataError(RuntimeError):
    """A dataset that cannot be read; the message names the file or folder."""


def read_image(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return image


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    return np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)


class VideoSequence:
    """An annotated video: boxes (N, 4), visibility (N,), and frames read on demand."""

    def __init__(self, name: str, boxes: np.ndarray, visible: np.ndarray) -> None:
        self.name = name
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.visible = np.asarray(visible, dtype=bool) & valid_boxes(self.boxes)

    def __len__(self) -> int:
        return len(self.boxes)

    def frame(self, index: int) -> np.ndarray:
        raise NotImplementedError


_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z]+)$")


def frame_pattern(frames: List[str]) -> Optional[Tuple[str, int]]:
    """(printf pattern, first number) when the frames are consecutively numbered files.

    Benchmarks name frames 00000001.jpg, 0.jpg, ...: a pattern instead of one string per frame
    keeps millions of paths out of memory (and out of every loader worker).
    """
    if not frames:
        return None
    match = _NUMBERED.match(frames[0])
    if match is None:
        return None
    prefix, digits, suffix = match.groups()
    width = len(digits) if digits.startswith("0") and len(digits) > 1 else 0
    pattern = prefix.replace("%", "%%") + (f"%0{width}d" if width else "%d") + suffix
    first = int(digits)
    if any(path != pattern % (first + i) for i, path in enumerate(frames)):
        return None
    return pattern, first


class FileSequence(VideoSequence):
    """Frames are image files: a numbered pattern where possible, else one path per frame."""

    def __init__(self, name: str, frames: List[str], boxes: np.ndarray, visible: np.ndarray):
        frames = list(frames)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(frames) != len(boxes):
            raise DataError(f"sequence {name}: {len(frames)} frames but {len(boxes)} boxes")
        super().__init__(name, boxes, visible)
        numbered = frame_pattern(frames)
        self.pattern, self.first = numbered if numbered else (None, 0)
        self.paths = None if numbered else frames

    def frame_path(self, index: int) -> str:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: no frame {index}")
        return self.paths[index] if self.paths is not None else self.pattern % (self.first + index)

    def frame(self, index: int) -> np.ndarray:
        return read_image(self.frame_path(index))


class SyntheticSequence(VideoSequence):
    """ros_tracker's synthetic scene, rendered per frame (deterministic in the seed)."""

    def __init__(self, seed: int, frames: int, width: int = 320, height: int = 240) -> None:
        self._settings = dict(
            width=width,
            height=height,
            frames=frames,
            seed=seed,
            target_size=0.12 + 0.2 * ((seed * 0.618034) % 1.0),
            occlusion=seed % 3 == 1,
        )
        scene = self._scene()
        boxes = np.full((frames, 4), np.nan)
        for index in range(frames):
            box = scene.ground_truth(index)
            if box is not None:
                boxes[index] = box
        super().__init__(f"synthetic-{seed:04d}", boxes, np.ones(frames, dtype=bool))
        self._cached = None

    def _scene(self):
        from ros_tracker.sources.synthetic import SyntheticScene

        return SyntheticScene(**self._settings)

    def frame(self, index: int) -> np.ndarray:
        if self._cached is None:  # built lazily: each loader worker holds its own scene
            self._cached = self._scene()
        return self._cached.render(index).image

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_cached"] = None
        return state


@dataclass
class ImageItem:
    """One object of an image dataset: the image file and the object's box."""

    path: str
    box: np.ndarray

    def frame(self, index: int = 0) -> np.ndarray:
        return read_image(self.path)


@dataclass
class SourceDataset:
    """One configured dataset: its items (videos or image objects) and sampling settings."""

    name: str
    kind: str  # "video" | "image" | "photo"
    items: List[Any]
    weight: float = 1.0
    max_gap: Optional[int] = None
    info: Dict[str, Any] = field(default_factory=dict)
    pairs: Any = None  # "photo": the pair maker (training.data.photos.PhotoPairs)

    def __len__(self) -> int:
        return len(self.items)


# ------------------------------------------------------------------------------------------
# Layout readers

# Benchmark layouts read by the evaluation module's readers (one reader for training and
# evaluation); "composite" is the composed benchmark built from real imagery (OTB layout with
# a split.json holding its train / test sequence lists).
BENCHMARK_TYPES = ("got10k", "lasot", "trackingnet", "otb", "uav123", "composite")


def read_benchmark(kind: str, root: str, split: str = "train", sequences: int = 0):
    """Fully annotated sequences of a benchmark layout, via ros_tracker.evaluation.readers.

    Sequences whose ground truth is public for the first frame only (test splits) are left
    out: they cannot give training pairs.
    """
    from ros_tracker.evaluation.readers import DatasetError, read_dataset

    layout = "otb" if kind == "composite" else kind
    try:
        dataset = read_dataset(root, layout, split or None)
    except DatasetError as error:
        raise DataError(str(error)) from None
    result: List[VideoSequence] = []
    for sequence in dataset.sequences:
        if not sequence.has_full_ground_truth:
            continue
        absent = sequence.absent
        visible = np.ones(len(sequence), dtype=bool) if absent is None else ~np.asarray(absent)
        result.append(
            FileSequence(sequence.name, list(sequence.frames), sequence.ground_truth, visible)
        )
        if 0 < sequences <= len(result):
            break
    if not result:
        raise DataError(f"no fully annotated {kind} sequences for split {split!r} in {root}")
    return result


def read_coco(
    root: str, annotations: str, images: str, min_side: float = 4.0, limit: int = 0
) -> List[ImageItem]:
    """Every non-crowd object with both sides >= min_side pixels."""
    json_path = os.path.join(root, annotations or "annotations/instances_train2017.json")
    if not os.path.isfile(json_path):
        raise DataError(f"COCO annotation file not found: {json_path}")
    image_dir = os.path.join(root, images) if images else root
    with open(json_path, encoding="utf-8") as handle:
        data = json.load(handle)
    files = {image["id"]: image["file_name"] for image in data.get("images", [])}
    items: List[ImageItem] = []
    for ann in data.get("annotations", []):
        if ann.get("iscrowd", 0) or ann["image_id"] not in files:
            continue
        box = np.asarray(ann["bbox"], dtype=np.float64)
        if box.size != 4 or box[2] < min_side or box[3] < min_side:
            continue
        items.append(ImageItem(os.path.join(image_dir, files[ann["image_id"]]), box))
        if 0 < limit <= len(items):
            break
    if not items:
        raise DataError(f"no usable objects in {json_path}")
    return items


def read_photos(root: str, limit: int = 0) -> List[Any]:
    """The photos of a media cache (``training.data.media``) with their object proposals."""
    from training.data.photos import Photo

    path = os.path.join(root, "manifest.json")
    if not os.path.isfile(path):
        raise DataError(
            f"no media manifest at {path}: build it with `python -m training.data.media build "
            f"--root {root}`"
        )
    with open(path, encoding="utf-8") as handle:
        entries = json.load(handle)["photos"]
    photos = [
        Photo(
            path=os.path.join(root, entry["path"]),
            width=int(entry["width"]),
            height=int(entry["height"]),
            proposals=np.asarray(entry["proposals"], dtype=np.float64).reshape(-1, 4),
            name=entry["path"],
        )
        for entry in entries
    ]
    if limit:
        photos = photos[:limit]
    if not photos:
        raise DataError(f"the media cache {root} has no photos")
    return photos


def read_flow(root: str, limit: int = 0, per_clip: int = 0) -> List[VideoSequence]:
    """One sequence per optical-flow track of the media cache (``training.data.flow_tracks``);
    ``per_clip`` > 0 keeps that many tracks of each clip, spread over it, so that long clips
    do not outweigh the others."""
    folder = os.path.join(root, "flow")
    files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    files = [f for f in files if f.endswith(".json")]
    if not files:
        raise DataError(
            f"no flow tracks in {folder}: build them with `python -m training.data.flow_tracks "
            f"build --root {root}`"
        )
    sequences: List[VideoSequence] = []
    for name in files:
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            clip = json.load(handle)
        pattern = os.path.join(root, clip["frames"])
        tracks = list(enumerate(clip["tracks"]))
        if 0 < per_clip < len(tracks):
            chosen = np.linspace(0, len(tracks) - 1, per_clip).round().astype(int)
            tracks = [tracks[k] for k in chosen]
        for number, track in tracks:
            boxes = np.asarray(track["boxes"], dtype=np.float64).reshape(-1, 4)
            first = int(track["start"]) + 1  # frame files are numbered from 1
            frames = [pattern % (first + k) for k in range(len(boxes))]
            visible = np.ones(len(boxes), dtype=bool)
            sequences.append(FileSequence(f"{clip['clip']}-{number}", frames, boxes, visible))
            if 0 < limit <= len(sequences):
                return sequences
    if not sequences:
        raise DataError(f"the flow tracks in {folder} are empty")
    return sequences


def read_synthetic(seed: int, count: int, frames: int) -> List[VideoSequence]:
    return [SyntheticSequence(seed + i, frames) for i in range(max(count, 1))]


def load_dataset(entry: Dict[str, Any], min_side: float = 4.0) -> SourceDataset:
    """A SourceDataset from one validated config entry (see training.config.DATASET_ENTRY)."""
    kind = entry["type"]
    root = os.path.expanduser(entry.get("root", ""))
    split = entry.get("split", "train")
    count = int(entry.get("sequences", 0))
    if kind != "synthetic" and not root:
        raise DataError(f"dataset of type {kind!r} needs a root folder")
    if kind in BENCHMARK_TYPES:
        items: Sequence[Any] = read_benchmark(kind, root, split, count)
    elif kind == "coco":
        items = read_coco(
            root, entry.get("annotations", ""), entry.get("images", ""), min_side, count
        )
    elif kind == "synthetic":
        items = read_synthetic(int(entry.get("seed", 0)), count or 8, int(entry.get("frames", 60)))
    elif kind == "photos":
        return _photo_dataset(entry, root, count)
    elif kind == "flow":
        options = dict(entry.get("options", {}))
        per_clip = int(options.pop("per_clip", 0))
        if options:
            raise DataError(f"flow options: unknown {sorted(options)}; known: per_clip")
        items = read_flow(root, count, per_clip)
    else:
        raise DataError(f"unknown dataset type {kind!r}")
    return SourceDataset(
        name=f"{kind}:{root or entry.get('seed', 0)}:{split}",
        kind="image" if kind == "coco" else "video",
        items=list(items),
        weight=float(entry.get("weight", 1.0)),
        max_gap=entry.get("max_gap"),
    )


def _photo_dataset(entry: Dict[str, Any], root: str, count: int) -> SourceDataset:
    from training.data.photos import PhotoPairs, PhotoSettings

    try:
        settings = PhotoSettings(**entry.get("options", {}))
    except TypeError as error:
        raise DataError(f"photos options: {error}") from None
    photos = read_photos(root, count)
    return SourceDataset(
        name=f"photos:{root}",
        kind="photo",
        items=photos,
        weight=float(entry.get("weight", 1.0)),
        pairs=PhotoPairs(photos, settings),
    )
