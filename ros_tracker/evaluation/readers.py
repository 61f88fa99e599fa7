"""Readers for the public tracking benchmarks' folder layouts.

Every reader returns a ``Dataset``: sequences with their frame files, ground truth (N x 4
``x, y, w, h`` rows; NaN rows where a benchmark marks the target absent or unannotated),
absence flags where the benchmark has them, and attributes where the dataset ships them.
Layouts (``--dataset DIR`` may name the root or, where there are splits, one split folder):

- ``otb`` / ``uav123`` (OTB layout): ``DIR/<Seq>/groundtruth_rect.txt`` and ``DIR/<Seq>/img/``.
  Several ``groundtruth_rect.<k>.txt`` files (Jogging, Skating2) are several targets, named
  ``<Seq>.<k>``; where a folder holds more images than boxes, the frame range of the OTB
  toolkit applies (David starts at frame 300, the others keep the first N images).
- ``lasot``: ``DIR/<class>/<class>-<n>/{groundtruth.txt, img/, full_occlusion.txt,
  out_of_view.txt}`` (or the flat test-set layout ``DIR/<class>-<n>/``); ``testing_set.txt``
  in DIR, where present, selects the test sequences unless ``split="all"``.
- ``got10k``: ``DIR/{train,val,test}/list.txt`` and ``<seq>/{groundtruth.txt, *.jpg,
  absence.label, meta_info.ini}``; the test split's ground truth holds the first box only.
- ``trackingnet``: ``DIR/TRAIN_<i>/`` and ``DIR/TEST/`` chunks, each with ``anno/<seq>.txt``
  and ``frames/<seq>/<k>.jpg``; TEST's annotations hold the first box only.

Ground-truth text is parsed leniently: comma, tab, space or semicolon separated, blank lines
skipped, ``NaN`` kept. Attributes: ``attributes.json`` in DIR (``{"<seq>": ["attr", ...]}``,
as the composite builder writes) for any layout, and UAV123's ``att`` flag files.
"""

from __future__ import annotations

import configparser
import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

FORMATS = ("otb", "got10k", "lasot", "uav123", "trackingnet")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
COMPOSITE_MANIFEST = "composite.json"
ATTRIBUTES_FILE = "attributes.json"
SPLIT_FILE = "split.json"

# Frame ranges of the OTB toolkit where a sequence folder holds more images than boxes:
# first frame (1-based); the others simply keep the first N images.
_OTB_START_FRAMES = {"david": 300}

# UAV123's twelve attribute flags, in the column order of its anno/UAV123/att/<seq>.txt files.
UAV123_ATTRIBUTES = (
    "scale_variation",
    "aspect_ratio_change",
    "low_resolution",
    "fast_motion",
    "full_occlusion",
    "partial_occlusion",
    "out_of_view",
    "background_clutter",
    "illumination_variation",
    "viewpoint_change",
    "camera_motion",
    "similar_object",
)


class DatasetError(ValueError):
    """A dataset folder that does not match the layout asked for; the message says why."""


@dataclass
class Sequence:
    """One sequence: frames in order, ground truth per frame (or only the first box)."""

    name: str
    frames: List[str]
    ground_truth: np.ndarray  # (N, 4) x, y, w, h; (1, 4) where only the first box is public
    absent: Optional[np.ndarray] = None  # (N,) bool, where the benchmark flags absence
    attributes: List[str] = field(default_factory=list)
    image_size: Optional[Tuple[int, int]] = None  # (width, height) where the layout says it

    @property
    def has_full_ground_truth(self) -> bool:
        return len(self.ground_truth) == len(self.frames)

    @property
    def initial_box(self) -> Tuple[float, float, float, float]:
        x, y, w, h = (float(v) for v in self.ground_truth[0])
        return (x, y, w, h)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class Dataset:
    name: str  # "composite" for a composed benchmark, else the folder name
    format: str
    root: str
    sequences: List[Sequence]
    split: Optional[str] = None
    composite: bool = False

    @property
    def has_ground_truth(self) -> bool:
        return bool(self.sequences) and all(s.has_full_ground_truth for s in self.sequences)

    def attribute_names(self) -> List[str]:
        names: List[str] = []
        for sequence in self.sequences:
            names.extend(a for a in sequence.attributes if a not in names)
        return names


# ---------------------------------------------------------------------------- text parsing
_SEPARATORS = re.compile(r"[,\s;]+")


def parse_boxes(text: str, source: str = "ground truth") -> np.ndarray:
    """(N, 4) float array from box text: any of comma/tab/space/semicolon, NaN allowed."""
    rows: List[List[float]] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = [f for f in _SEPARATORS.split(line.strip()) if f]
        if not fields:
            continue
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise DatasetError(f"{source}, line {number}: not numbers: {line.strip()!r}") from None
        if len(values) != 4:
            raise DatasetError(
                f"{source}, line {number}: expected 4 values (x, y, w, h), got {len(values)}"
            )
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def read_boxes(path: str) -> np.ndarray:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse_boxes(handle.read(), path)


def _read_flags(path: str) -> np.ndarray:
    """0/1 flags separated by commas, spaces or newlines (LaSOT, GOT-10k labels)."""
    with open(path, encoding="utf-8") as handle:
        fields = [f for f in _SEPARATORS.split(handle.read().strip()) if f]
    try:
        return np.asarray([float(f) for f in fields], dtype=np.float64)
    except ValueError:
        raise DatasetError(f"{path}: expected numeric flags") from None


def _natural_key(name: str) -> List[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: str) -> List[str]:
    """Image files of ``folder`` in natural order ('2.jpg' before '10.jpg')."""
    if not os.path.isdir(folder):
        raise DatasetError(f"image folder not found: {folder}")
    names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    return [os.path.join(folder, n) for n in sorted(names, key=_natural_key)]


def _check_lengths(name: str, frames: List[str], boxes: np.ndarray) -> None:
    if not frames:
        raise DatasetError(f"sequence {name}: no images")
    if len(boxes) == 0:
        raise DatasetError(f"sequence {name}: empty ground truth")
    if len(boxes) != len(frames):
        raise DatasetError(
            f"sequence {name}: {len(frames)} images but {len(boxes)} ground-truth boxes"
        )


# ------------------------------------------------------------------------------ OTB, UAV123
def _otb_frames(name: str, images: List[str], count: int) -> List[str]:
    """The OTB toolkit's frame range for a folder holding more images than boxes."""
    if len(images) <= count:
        return images
    start = _OTB_START_FRAMES.get(name.lower(), 1) - 1
    return images[start : start + count]


def read_otb(root: str) -> List[Sequence]:
    sequences: List[Sequence] = []
    for folder in sorted(os.listdir(root), key=_natural_key):
        seq_dir = os.path.join(root, folder)
        if not os.path.isdir(seq_dir):
            continue
        gt_files = sorted(
            f
            for f in os.listdir(seq_dir)
            if re.fullmatch(r"groundtruth_rect(\.\d+)?\.txt", f, flags=re.IGNORECASE)
        )
        if not gt_files:
            continue
        image_dir = os.path.join(seq_dir, "img")
        images = list_images(image_dir if os.path.isdir(image_dir) else seq_dir)
        targets = [(f, read_boxes(os.path.join(seq_dir, f))) for f in gt_files]
        targets = [(f, boxes) for f, boxes in targets if len(boxes)]  # Human4's empty .1 file
        for gt_file, boxes in targets:
            match = re.fullmatch(r"groundtruth_rect\.(\d+)\.txt", gt_file, flags=re.IGNORECASE)
            name = f"{folder}.{match.group(1)}" if match and len(targets) > 1 else folder
            frames = _otb_frames(folder, images, len(boxes))
            _check_lengths(name, frames, boxes)
            sequences.append(Sequence(name, frames, boxes))
    if not sequences:
        raise DatasetError(
            f"no OTB-layout sequences in {root} "
            "(expected <seq>/groundtruth_rect.txt and <seq>/img/)"
        )
    return sequences


def _uav123_attributes(root: str, sequences: List[Sequence]) -> None:
    for folder in (os.path.join(root, "att"), os.path.join(root, "anno", "UAV123", "att")):
        for sequence in sequences:
            path = os.path.join(folder, sequence.name + ".txt")
            if os.path.isfile(path) and not sequence.attributes:
                flags = _read_flags(path)
                sequence.attributes = [a for a, f in zip(UAV123_ATTRIBUTES, flags) if f > 0]


def read_uav123(root: str) -> List[Sequence]:
    if os.path.isdir(os.path.join(root, "data_seq")) and os.path.isdir(os.path.join(root, "anno")):
        raise DatasetError(
            f"{root} has UAV123's release layout (data_seq/, anno/): its sub-sequences need "
            "the frame ranges of the UAV123 toolkit; arrange them in OTB layout "
            "(<seq>/groundtruth_rect.txt, <seq>/img/) to evaluate here"
        )
    sequences = read_otb(root)
    _uav123_attributes(root, sequences)
    return sequences


# ------------------------------------------------------------------------------------ LaSOT
def read_lasot(root: str, split: Optional[str] = None) -> List[Sequence]:
    seq_dirs: List[str] = []
    for entry in sorted(os.listdir(root), key=_natural_key):
        path = os.path.join(root, entry)
        if not os.path.isdir(path):
            continue
        if os.path.isfile(os.path.join(path, "groundtruth.txt")):
            seq_dirs.append(path)  # flat layout (the test-set download)
            continue
        for sub in sorted(os.listdir(path), key=_natural_key):
            if os.path.isfile(os.path.join(path, sub, "groundtruth.txt")):
                seq_dirs.append(os.path.join(path, sub))
    listing = os.path.join(root, "testing_set.txt")
    if split not in (None, "all", "test", "train"):
        raise DatasetError(f"LaSOT split must be test, train or all, got {split!r}")
    if split != "all" and os.path.isfile(listing):
        with open(listing, encoding="utf-8") as handle:
            test_names = {line.strip() for line in handle if line.strip()}
        keep_test = split in (None, "test")
        seq_dirs = [d for d in seq_dirs if (os.path.basename(d) in test_names) == keep_test]
    sequences = []
    for seq_dir in seq_dirs:
        name = os.path.basename(seq_dir)
        boxes = read_boxes(os.path.join(seq_dir, "groundtruth.txt"))
        image_dir = os.path.join(seq_dir, "img")
        frames = list_images(image_dir if os.path.isdir(image_dir) else seq_dir)
        _check_lengths(name, frames, boxes)
        absent = np.zeros(len(frames), dtype=bool)
        for flag_file in ("full_occlusion.txt", "out_of_view.txt"):
            path = os.path.join(seq_dir, flag_file)
            if os.path.isfile(path):
                flags = _read_flags(path)
                if len(flags) != len(frames):
                    raise DatasetError(f"{path}: {len(flags)} flags for {len(frames)} frames")
                absent |= flags > 0
        sequences.append(Sequence(name, frames, boxes, absent=absent))
    if not sequences:
        raise DatasetError(
            f"no LaSOT sequences in {root} (expected <class>/<class>-<n>/groundtruth.txt)"
        )
    return sequences


# ---------------------------------------------------------------------------------- GOT-10k
def _got10k_split_dir(root: str, split: Optional[str]) -> Tuple[str, str]:
    if os.path.isfile(os.path.join(root, "list.txt")):
        return root, os.path.basename(os.path.normpath(root)).lower()
    if split is None:
        split = "val" if os.path.isdir(os.path.join(root, "val")) else "test"
    split_dir = os.path.join(root, split)
    if not os.path.isfile(os.path.join(split_dir, "list.txt")):
        raise DatasetError(f"no GOT-10k split {split!r} in {root} (expected {split}/list.txt)")
    return split_dir, split


def _got10k_resolution(seq_dir: str) -> Optional[Tuple[int, int]]:
    path = os.path.join(seq_dir, "meta_info.ini")
    if not os.path.isfile(path):
        return None
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_string(handle.read())
        text = parser.get("METAINFO", "resolution", fallback="")
    except configparser.Error:
        return None
    numbers = re.findall(r"\d+", text)
    return (int(numbers[0]), int(numbers[1])) if len(numbers) == 2 else None


def read_got10k(root: str, split: Optional[str] = None) -> Tuple[List[Sequence], str]:
    split_dir, split_name = _got10k_split_dir(root, split)
    with open(os.path.join(split_dir, "list.txt"), encoding="utf-8") as handle:
        names = [line.strip() for line in handle if line.strip()]
    sequences = []
    for name in names:
        seq_dir = os.path.join(split_dir, name)
        frames = list_images(seq_dir)
        boxes = read_boxes(os.path.join(seq_dir, "groundtruth.txt"))
        if len(boxes) != 1:  # the test split publishes the first box only
            _check_lengths(name, frames, boxes)
        elif not frames:
            raise DatasetError(f"sequence {name}: no images")
        absent = None
        absence_file = os.path.join(seq_dir, "absence.label")
        cover_file = os.path.join(seq_dir, "cover.label")
        if os.path.isfile(absence_file):
            absent = _read_flags(absence_file) > 0
        elif os.path.isfile(cover_file):
            absent = _read_flags(cover_file) == 0
        if absent is not None and len(absent) != len(frames):
            raise DatasetError(
                f"sequence {name}: {len(absent)} absence flags, {len(frames)} frames"
            )
        resolution = _got10k_resolution(seq_dir)
        sequences.append(Sequence(name, frames, boxes, absent=absent, image_size=resolution))
    if not sequences:
        raise DatasetError(f"GOT-10k list {split_dir}/list.txt names no sequence")
    return sequences, split_name


# ------------------------------------------------------------------------------ TrackingNet
def _trackingnet_chunks(root: str, split: Optional[str]) -> List[str]:
    if os.path.isdir(os.path.join(root, "anno")) and os.path.isdir(os.path.join(root, "frames")):
        return [root]
    chunks = [
        c
        for c in sorted(os.listdir(root), key=_natural_key)
        if re.fullmatch(r"(TRAIN_\d+|TEST)", c, flags=re.IGNORECASE)
        and os.path.isdir(os.path.join(root, c, "anno"))
    ]
    if split is None:
        split = "test" if any(c.upper() == "TEST" for c in chunks) else "train"
    wanted = split.upper()
    if wanted == "TRAIN":
        selected = [c for c in chunks if c.upper().startswith("TRAIN_")]
    else:
        selected = [c for c in chunks if c.upper() == wanted]
    if not selected:
        raise DatasetError(
            f"no TrackingNet chunk for split {split!r} in {root} "
            f"(found: {', '.join(chunks) or 'none'}; "
            "expected TRAIN_<i>/ or TEST/ with anno/ and frames/)"
        )
    return [os.path.join(root, c) for c in selected]


def read_trackingnet(root: str, split: Optional[str] = None) -> List[Sequence]:
    sequences = []
    for chunk in _trackingnet_chunks(root, split):
        anno_dir = os.path.join(chunk, "anno")
        for anno in sorted(os.listdir(anno_dir), key=_natural_key):
            if not anno.endswith(".txt"):
                continue
            name = anno[: -len(".txt")]
            frames = list_images(os.path.join(chunk, "frames", name))
            boxes = read_boxes(os.path.join(anno_dir, anno))
            if len(boxes) != 1:
                _check_lengths(name, frames, boxes)
            elif not frames:
                raise DatasetError(f"sequence {name}: no images")
            sequences.append(Sequence(name, frames, boxes))
    if not sequences:
        raise DatasetError(f"no TrackingNet sequences under {root}")
    return sequences


# ------------------------------------------------------------------------------ entry point
def _apply_attributes_file(root: str, sequences: List[Sequence]) -> None:
    path = os.path.join(root, ATTRIBUTES_FILE)
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        table: Dict[str, List[str]] = json.load(handle)
    for sequence in sequences:
        if sequence.name in table:
            sequence.attributes = [str(a) for a in table[sequence.name]]


def read_split_file(root: str) -> Dict[str, List[str]]:
    """The ``split.json`` of a composed dataset: {"train": [...], "test": [...]}."""
    path = os.path.join(root, SPLIT_FILE)
    if not os.path.isfile(path):
        raise DatasetError(f"{root} has no {SPLIT_FILE}")
    with open(path, encoding="utf-8") as handle:
        return {k: list(v) for k, v in json.load(handle).items()}


def read_dataset(root: str, format: str, split: Optional[str] = None) -> Dataset:
    """Read the dataset at ``root`` in ``format`` (one of FORMATS); see the module doc."""
    format = format.lower()
    if format not in FORMATS:
        raise DatasetError(f"unknown dataset format {format!r} (choose from {', '.join(FORMATS)})")
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DatasetError(f"dataset folder not found: {root}")
    split_name = split
    if format == "otb":
        sequences = read_otb(root)
    elif format == "uav123":
        sequences = read_uav123(root)
    elif format == "lasot":
        sequences = read_lasot(root, split)
    elif format == "got10k":
        sequences, split_name = read_got10k(root, split)
    else:
        sequences = read_trackingnet(root, split)
    _apply_attributes_file(root, sequences)
    composite = os.path.isfile(os.path.join(root, COMPOSITE_MANIFEST))
    if format in ("otb", "uav123") and split not in (None, "all"):
        splits = read_split_file(root)
        if split not in splits:
            raise DatasetError(f"split {split!r} not in {root}/{SPLIT_FILE} ({', '.join(splits)})")
        keep = set(splits[split])
        sequences = [s for s in sequences if s.name in keep]
    name = "composite" if composite else os.path.basename(os.path.normpath(root))
    return Dataset(name, format, root, sequences, split=split_name, composite=composite)
