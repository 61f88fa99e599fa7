"""Small dataset trees in the benchmarks' layouts, rendered from the synthetic scene.

For tests, smoke runs and validation without any dataset on disk: each sequence is one
synthetic scene (a real photographed target over a real photographed background, see
``ros_tracker.sources.synthetic``) written as JPEG frames with its exact ground truth.

    python -m training.data.testtree OUT_DIR [--layout got10k|lasot|trackingnet|coco] ...
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Iterable, List

import cv2
import numpy as np

from training.data.sequences import SyntheticSequence


def _write_sequence(
    sequence: SyntheticSequence, folder: str, pattern: str, first: int
) -> List[str]:
    os.makedirs(folder, exist_ok=True)
    names = []
    for index in range(len(sequence)):
        name = pattern % (index + first)
        cv2.imwrite(
            os.path.join(folder, name), sequence.frame(index), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        names.append(name)
    return names


def _box_lines(boxes: np.ndarray, separator: str = ",") -> str:
    rows = []
    for box in boxes:
        if np.isfinite(box).all():
            rows.append(separator.join(f"{v:.2f}" for v in box))
        else:
            rows.append(separator.join(["0"] * 4))
    return "\n".join(rows) + "\n"


def write_got10k(root: str, split: str, seeds: Iterable[int], frames: int) -> str:
    """``root/split/<GOT-10k_<Split>_<n>>/`` sequences plus list.txt; returns the split dir."""
    split_dir = os.path.join(root, split)
    names = []
    for number, seed in enumerate(seeds, 1):
        sequence = SyntheticSequence(seed, frames)
        name = f"GOT-10k_{split.capitalize()}_{number:06d}"
        folder = os.path.join(split_dir, name)
        _write_sequence(sequence, folder, "%08d.jpg", 1)
        with open(os.path.join(folder, "groundtruth.txt"), "w", encoding="utf-8") as handle:
            handle.write(_box_lines(sequence.boxes))
        absent = ~sequence.visible
        with open(os.path.join(folder, "absence.label"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(str(int(a)) for a in absent) + "\n")
        height, width = sequence.frame(0).shape[:2]
        with open(os.path.join(folder, "meta_info.ini"), "w", encoding="utf-8") as handle:
            handle.write(f"[METAINFO]\nresolution: ({width}, {height})\n")
        names.append(name)
    with open(os.path.join(split_dir, "list.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(names) + "\n")
    return split_dir


def write_lasot(root: str, seeds: Iterable[int], frames: int, test_every: int = 0) -> str:
    """``root/<class>/<class>-<n>/`` sequences; every ``test_every``-th listed as a test one."""
    test_names = []
    for number, seed in enumerate(seeds, 1):
        sequence = SyntheticSequence(seed, frames)
        name = f"cat-{number}"
        folder = os.path.join(root, "cat", name)
        _write_sequence(sequence, os.path.join(folder, "img"), "%08d.jpg", 1)
        with open(os.path.join(folder, "groundtruth.txt"), "w", encoding="utf-8") as handle:
            handle.write(_box_lines(sequence.boxes))
        hidden = ",".join(str(int(h)) for h in ~sequence.visible)
        for flag_file in ("full_occlusion.txt", "out_of_view.txt"):
            with open(os.path.join(folder, flag_file), "w", encoding="utf-8") as handle:
                handle.write(hidden + "\n")
        if test_every and number % test_every == 0:
            test_names.append(name)
    if test_names:
        with open(os.path.join(root, "testing_set.txt"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(test_names) + "\n")
    return root


def write_trackingnet(root: str, seeds: Iterable[int], frames: int, chunk: str = "TRAIN_0") -> str:
    for seed in seeds:
        sequence = SyntheticSequence(seed, frames)
        name = f"video_{seed:04d}"
        _write_sequence(sequence, os.path.join(root, chunk, "frames", name), "%d.jpg", 0)
        anno_dir = os.path.join(root, chunk, "anno")
        os.makedirs(anno_dir, exist_ok=True)
        with open(os.path.join(anno_dir, name + ".txt"), "w", encoding="utf-8") as handle:
            handle.write(_box_lines(sequence.boxes))
    return root


def write_coco(root: str, seeds: Iterable[int]) -> str:
    """One image per seed (first frame of its scene) with one object, COCO json layout."""
    image_dir = os.path.join(root, "images")
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for number, seed in enumerate(seeds, 1):
        sequence = SyntheticSequence(seed, 1)
        file_name = f"{number:012d}.jpg"
        image = sequence.frame(0)
        cv2.imwrite(os.path.join(image_dir, file_name), image)
        height, width = image.shape[:2]
        images.append({"id": number, "file_name": file_name, "width": width, "height": height})
        x, y, w, h = (float(v) for v in sequence.boxes[0])
        annotations.append(
            {"id": number, "image_id": number, "bbox": [x, y, w, h], "iscrowd": 0, "area": w * h}
        )
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    path = os.path.join(root, "annotations", "instances_train2017.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"images": images, "annotations": annotations, "categories": []}, handle)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument(
        "--layout", default="got10k", choices=("got10k", "lasot", "trackingnet", "coco")
    )
    parser.add_argument("--split", default="train")
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    seeds = range(args.seed, args.seed + args.sequences)
    if args.layout == "got10k":
        write_got10k(args.out, args.split, seeds, args.frames)
    elif args.layout == "lasot":
        write_lasot(args.out, seeds, args.frames)
    elif args.layout == "trackingnet":
        write_trackingnet(args.out, seeds, args.frames)
    else:
        write_coco(args.out, seeds)
    print(args.out)


if __name__ == "__main__":
    main()
