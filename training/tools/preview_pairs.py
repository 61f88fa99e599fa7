"""A contact sheet of training pairs, to see what a config feeds the network.

    python -m training.tools.preview_pairs --config training/configs/hcat_mobilenetv2.yaml \\
        --pairs 24 --out build/pairs.jpg

Each tile shows the template crop (its box in green) beside the search crop (the target box
in green, red for negative pairs, whose search crop does not show the target), as the
network receives them after cropping and augmentation (before normalisation).
"""

from __future__ import annotations

import argparse
import math
import os
from typing import List, Optional, Sequence

import cv2
import numpy as np

from ros_tracker.zoo.registry import get_card
from training.config import load_config
from training.data import build_pair_dataset
from training.data.labels import LabelMaker


def _denormalise(chw: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    rgb = chw.transpose(1, 2, 0) * np.asarray(std) + np.asarray(mean)
    return cv2.cvtColor(np.clip(rgb * 255.0, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def _draw_box(image: np.ndarray, box_xyxy: np.ndarray, colour) -> None:
    size = image.shape[0]
    x1, y1, x2, y2 = (int(round(float(v) * size)) for v in box_xyxy)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, 1)


def pair_tiles(config_path: str, pairs: int, overrides: Sequence[str] = ()) -> List[np.ndarray]:
    config = load_config(config_path, list(overrides))
    card = get_card(config["model"]["name"])
    family = card.family
    dataset = build_pair_dataset(config, card, family)
    dataset.labels = LabelMaker(family, grid=card.feature_size)  # labels are not drawn
    tiles = []
    for index in range(pairs):
        sample = dataset[index]
        template = _denormalise(sample["templates"][0].numpy(), card.mean, card.std)
        search = _denormalise(sample["search"].numpy(), card.mean, card.std)
        _draw_box(template, sample["template_boxes"][0].numpy(), (0, 255, 0))
        positive = float(sample["positive"]) > 0
        _draw_box(search, sample["search_box"].numpy(), (0, 255, 0) if positive else (0, 0, 255))
        canvas = np.zeros((search.shape[0], template.shape[1] + search.shape[1], 3), np.uint8)
        canvas[: template.shape[0], : template.shape[1]] = template
        canvas[:, template.shape[1] :] = search
        tiles.append(canvas)
    return tiles


def contact_sheet(tiles: List[np.ndarray], columns: int = 4) -> np.ndarray:
    rows = math.ceil(len(tiles) / columns)
    height, width = tiles[0].shape[:2]
    sheet = np.full((rows * (height + 4), columns * (width + 4), 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[
            r * (height + 4) : r * (height + 4) + height, c * (width + 4) : c * (width + 4) + width
        ] = tile
    return sheet


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--out", default="build/pairs.jpg")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value config overrides")
    args = parser.parse_args(argv)
    sheet = contact_sheet(pair_tiles(args.config, args.pairs, args.overrides))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, sheet)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
