"""Training data: layouts, pair sampling, crops and augmentation, labels, reproducible loaders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ros_tracker.zoo.card import IMAGENET_MEAN, IMAGENET_STD
from training.data import make_loader
from training.data.dataset import EpochSampler, PairDataset
from training.data.labels import LabelMaker, center_targets, inside_box_targets
from training.data.processing import CropSettings, PairProcessor
from training.data.sampling import PairSampler
from training.data.sequences import SyntheticSequence, load_dataset
from training.data.testtree import write_coco, write_got10k, write_lasot, write_trackingnet


def settings(**changes) -> CropSettings:
    base = dict(
        template_size=32,
        search_size=64,
        template_factor=2.0,
        search_factor=4.0,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )
    base.update(changes)
    return CropSettings(**base)


def entry(**values):
    base = {"type": "synthetic", "root": "", "split": "train", "weight": 1.0, "max_gap": None}
    base.update({"annotations": "", "images": "", "sequences": 3, "frames": 12, "seed": 0})
    base.update(values)
    return base


def dataset(seed: int = 5, family: str = "abtrack", **crop) -> PairDataset:
    sources = [load_dataset(entry())]
    return PairDataset(
        sources, PairProcessor(settings(**crop)), LabelMaker(family, grid=4, bins=16), seed, 16
    )


def test_same_index_gives_the_same_pair_and_other_indices_or_seeds_differ():
    first, again, other_seed = dataset(5), dataset(5), dataset(6)
    a, b = first[7], again[7]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["search"], first[8]["search"])
    assert not torch.equal(a["search"], other_seed[7]["search"])


def test_worker_processes_produce_the_same_batches_as_the_main_process():
    data = dataset(5)
    in_process = list(make_loader(data, epoch=1, batch_size=4, num_workers=0))
    in_worker = list(make_loader(data, epoch=1, batch_size=4, num_workers=1))
    assert len(in_process) == len(in_worker) == 4
    for a, b in zip(in_process, in_worker):
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_epoch_sampler_shards_processes_and_resumes_mid_epoch():
    ranks = [list(EpochSampler(10, epoch=2, rank=r, world=2)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == list(range(20, 30))
    assert list(EpochSampler(10, epoch=2, rank=1, world=2, start=3)) == ranks[1][3:]


def test_video_pairs_stay_within_the_frame_gap_and_on_visible_frames():
    sequence = SyntheticSequence(4, frames=40)
    sequence.visible[10:14] = False
    source = load_dataset(entry(sequences=1))
    source.items = [sequence]
    sampler = PairSampler([source], max_gap=3, num_templates=2)
    rng = np.random.default_rng(0)
    for _ in range(200):
        draw = sampler.draw(rng)
        indices = [t.index for t in draw.templates] + [draw.search.index]
        assert all(sequence.visible[i] for i in indices)
        assert max(abs(i - indices[0]) for i in indices) <= 3
        assert draw.positive


def test_negative_pairs_take_the_search_frame_from_another_sequence():
    sampler = PairSampler([load_dataset(entry(sequences=3))], max_gap=5)
    rng = np.random.default_rng(1)
    for _ in range(20):
        draw = sampler.draw(rng, negative=True)
        assert not draw.positive
        assert draw.search.item is not draw.templates[0].item


def test_search_crop_geometry_without_jitter():
    processor = PairProcessor(
        settings(
            center_jitter_search=0.0,
            scale_jitter_search=0.0,
            brightness_jitter=0.0,
            grayscale_prob=0.0,
            flip_prob=0.0,
        )
    )
    image = np.full((200, 300, 3), 90, np.uint8)
    box = (100.0, 50.0, 40.0, 10.0)
    out = processor(np.random.default_rng(0), [(image, box)], (image, box))
    side = math.sqrt(40.0 * 10.0) * 4.0
    expected = [0.5 - 20 / side, 0.5 - 5 / side, 0.5 + 20 / side, 0.5 + 5 / side]
    assert np.allclose(out["search_box"], expected, atol=1e-5)
    assert out["templates"].shape == (1, 3, 32, 32)
    assert out["search"].shape == (3, 64, 64)


def test_flip_mirrors_the_crops_and_the_box():
    sequence = SyntheticSequence(2, frames=3)
    image, box = sequence.frame(1), tuple(sequence.boxes[1])
    plain = PairProcessor(settings(flip_prob=0.0, grayscale_prob=0.0))
    flipped = PairProcessor(settings(flip_prob=1.0, grayscale_prob=0.0))
    a = plain(np.random.default_rng(3), [(image, box)], (image, box))
    b = flipped(np.random.default_rng(3), [(image, box)], (image, box))
    assert np.array_equal(a["search"][:, :, ::-1], b["search"])
    assert np.array_equal(a["templates"][..., ::-1], b["templates"])
    x1, y1, x2, y2 = a["search_box"]
    assert np.allclose(b["search_box"], [1 - x2, y1, 1 - x1, y2])


def test_grayscale_pairs_have_equal_channels_before_normalisation():
    processor = PairProcessor(
        settings(grayscale_prob=1.0, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    )
    sequence = SyntheticSequence(1, frames=2)
    out = processor(
        np.random.default_rng(0),
        [(sequence.frame(0), tuple(sequence.boxes[0]))],
        (sequence.frame(1), tuple(sequence.boxes[1])),
    )
    assert np.array_equal(out["search"][0], out["search"][1])
    assert np.array_equal(out["search"][1], out["search"][2])


def test_hcat_labels_mark_cells_whose_centres_lie_in_the_box():
    labels = inside_box_targets(np.array([0.3, 0.3, 0.6, 0.55]), grid=4, negative_weight=1 / 16)
    grid = labels["cls_labels"].reshape(4, 4)
    # centres 0.125, 0.375, 0.625, 0.875: only x = 0.375 lies in [0.3, 0.6]; y = 0.375 too
    expected = np.zeros((4, 4), np.float32)
    expected[1, 1] = 1.0
    assert np.array_equal(grid, expected)
    assert set(labels["cls_weights"].tolist()) == {1.0, 1 / 16}
    negative = inside_box_targets(np.array([0.3, 0.3, 0.6, 0.55]), 4, 1 / 16, positive=False)
    assert negative["cls_labels"].sum() == 0


def test_abtrack_labels_peak_at_the_centre_cell_with_offset_and_size():
    targets = center_targets(np.array([0.4, 0.2, 0.8, 0.5]), grid=16)
    cx, cy = 0.6 * 16, 0.35 * 16
    index = int(targets["center_index"])
    assert divmod(index, 16) == (int(cy), int(cx))
    assert targets["heatmap"][0].max() == 1.0
    assert targets["heatmap"][0].reshape(-1)[index] == 1.0
    assert np.allclose(targets["offset"], [cx - int(cx), cy - int(cy)])
    assert np.allclose(targets["size"], [0.4, 0.3])


@pytest.mark.parametrize("layout", ["got10k", "lasot", "trackingnet", "coco"])
def test_dataset_layouts_give_training_pairs(tmp_path, layout):
    seeds = range(3)
    if layout == "got10k":
        write_got10k(str(tmp_path), "train", seeds, frames=5)
        config = entry(type="got10k", root=str(tmp_path), sequences=0)
    elif layout == "lasot":
        write_lasot(str(tmp_path), seeds, frames=5, test_every=3)
        config = entry(type="lasot", root=str(tmp_path), sequences=0)
    elif layout == "trackingnet":
        write_trackingnet(str(tmp_path), seeds, frames=5)
        config = entry(type="trackingnet", root=str(tmp_path), sequences=0)
    else:
        write_coco(str(tmp_path), seeds)
        config = entry(
            type="coco",
            root=str(tmp_path),
            annotations="annotations/instances_train2017.json",
            images="images",
            sequences=0,
        )
    source = load_dataset(config)
    expected = 2 if layout == "lasot" else 3  # the LaSOT test sequence is not for training
    assert len(source) == expected
    if layout != "coco":  # numbered frames are kept as a pattern, not one path per frame
        assert all(item.paths is None for item in source.items)
        assert source.items[0].frame(4).shape == (240, 320, 3)
    data = PairDataset(
        [source], PairProcessor(settings()), LabelMaker("hcat", grid=4), seed=0, samples_per_epoch=4
    )
    sample = data[0]
    assert sample["search"].shape == (3, 64, 64)
    assert sample["cls_labels"].sum() >= 1
    x1, y1, x2, y2 = sample["search_box"].tolist()
    assert 0 < (x1 + x2) / 2 < 1 and 0 < (y1 + y2) / 2 < 1 and x2 > x1 and y2 > y1
