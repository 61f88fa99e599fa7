"""Training data from real imagery: the media cache, still-photo pairs, optical-flow tracks.

Everything runs on scikit-image's bundled photographs (no download): a media cache built from
them, pairs drawn from it, and a clip panned across a photo with a known motion, whose flow
tracks must follow that motion.
"""

from __future__ import annotations

import io
import math
import os
import tarfile

import cv2
import numpy as np
import pytest

from ros_tracker.evaluation.package_media import _extract_members
from training.data.flow_tracks import FlowSettings, build_flow_tracks, step_box
from training.data.media import Manifest, Source, _add_photos, build_media, object_proposals
from training.data.photos import PhotoPairs, PhotoSettings, transform_box
from training.data.sampling import PairSampler
from training.data.sequences import load_dataset

SKIMAGE_PHOTOS = ("data/astronaut.png", "data/coffee.png", "data/chelsea.png")


def _photo_source(name: str = "skimage-test") -> Source:
    return Source(name, "photo", "python", "skimage", SKIMAGE_PHOTOS, "CC0", install_hint="x")


@pytest.fixture(scope="module")
def media_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("media"))
    build_media(root, [_photo_source()], progress=False)
    return root


def _entry(kind: str, root: str, **values):
    base = {"type": kind, "root": root, "split": "", "weight": 1.0, "max_gap": None}
    base.update({"annotations": "", "images": "", "sequences": 0, "frames": 0, "seed": 0})
    base.update(values)
    return base


# -- the media cache ------------------------------------------------------------------------


def test_media_cache_keeps_photos_with_proposals(media_root: str) -> None:
    manifest = Manifest.load(media_root)
    assert len(manifest.photos) == 3
    assert manifest.sources["skimage-test"]["kept"] == 3
    for photo in manifest.photos:
        image = cv2.imread(os.path.join(media_root, photo["path"]))
        assert image.shape[:2] == (photo["height"], photo["width"])
        boxes = np.array(photo["proposals"]).reshape(-1, 4)
        assert len(boxes) > 5
        area = photo["width"] * photo["height"]
        assert np.all(boxes[:, 2] * boxes[:, 3] <= 0.12 * area + 1)
        assert np.all(np.maximum(boxes[:, 2] / boxes[:, 3], boxes[:, 3] / boxes[:, 2]) <= 4.0)
    # a second build finds the source done and changes nothing
    before = open(os.path.join(media_root, "manifest.json")).read()
    build_media(media_root, [_photo_source()], progress=False)
    assert open(os.path.join(media_root, "manifest.json")).read() == before


def test_the_same_picture_at_another_resolution_is_kept_once(tmp_path) -> None:
    photo = cv2.imread(os.path.join(os.path.dirname(np.__file__), os.pardir, "skimage",
                                    "data", "coffee.png"))  # fmt: skip
    if photo is None:
        pytest.skip("scikit-image's coffee.png not found next to numpy")
    large = str(tmp_path / "large.png")
    small = str(tmp_path / "small.png")
    cv2.imwrite(large, photo)
    cv2.imwrite(small, cv2.resize(photo, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA))
    manifest = Manifest()
    source = _photo_source("dupes")
    files = [(small, "small.png"), (large, "large.png")]
    kept = _add_photos(manifest, source, files, str(tmp_path))
    assert kept == 1 and manifest.photos[0]["member"] == "large.png"


def test_archive_members_never_leave_the_destination(tmp_path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in ("./usr/share/a.jpg", "../evil.jpg", "/abs.jpg", "usr/share/b.txt"):
            data = b"x"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    dest = tmp_path / "out"
    with tarfile.open(fileobj=buffer, mode="r") as archive:
        written = _extract_members(archive, ["usr/share/*.jpg", "*evil.jpg", "abs.jpg"], str(dest))
    assert str(dest / "usr" / "share" / "a.jpg") in written
    assert all(os.path.realpath(p).startswith(str(dest) + os.sep) for p in written)
    assert not (tmp_path / "evil.jpg").exists() and not os.path.exists("/abs.jpg")
    assert not any(p.endswith("b.txt") for p in written)


def test_object_proposals_on_a_flat_image_are_few() -> None:
    flat = np.full((200, 300, 3), 128, np.uint8)
    assert len(object_proposals(flat)) <= 1


# -- still-photo pairs ----------------------------------------------------------------------


def test_search_frame_shows_the_template_target_at_its_transformed_box(media_root: str) -> None:
    """With geometry only (no appearance change), the target cut from the search frame at the
    returned box looks like the template target."""
    dataset = load_dataset(_entry("photos", media_root))
    geometry_only = PhotoSettings(
        rotation_sigma=0.0, photometric_prob=0, shadow_prob=0, blur_prob=0, noise_prob=0,
        jpeg_prob=0, occlusion_prob=0, distractor_prob=0, min_side=40.0,
    )  # fmt: skip
    pairs = PhotoPairs(dataset.items, geometry_only)
    for seed in range(12):
        rng = np.random.default_rng(seed)
        photo = dataset.items[seed % len(dataset.items)]
        ((template_source, box),) = pairs.draw(rng, photo, 1)[0]
        search_source, search_box = pairs.draw(np.random.default_rng(seed), photo, 1)[1]
        template = template_source.frame()
        search = search_source.frame()
        x, y, w, h = (int(round(v)) for v in box)
        target = template[y : y + h, x : x + w]
        sx, sy, sw, sh = search_box
        height, width = search.shape[:2]
        if not (sx >= 0 and sy >= 0 and sx + sw <= width and sy + sh <= height):
            continue  # a zoom that pushed the target out of the frame: not comparable
        cut = cv2.resize(
            search[int(round(sy)) : int(round(sy + sh)), int(round(sx)) : int(round(sx + sw))],
            (target.shape[1], target.shape[0]),
        )
        a = target.astype(np.float64) - target.mean()
        b = cut.astype(np.float64) - cut.mean()
        correlation = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
        assert correlation > 0.8, (seed, box, search_box, correlation)


def test_pairs_are_a_function_of_the_seed(media_root: str) -> None:
    dataset = load_dataset(_entry("photos", media_root))
    sampler = PairSampler([dataset], max_gap=10)
    a = sampler.draw(np.random.default_rng(5))
    b = sampler.draw(np.random.default_rng(5))
    assert a.templates[0].box == b.templates[0].box and a.search.box == b.search.box
    np.testing.assert_array_equal(a.search.image(), b.search.image())
    negative = sampler.draw(np.random.default_rng(6), negative=True)
    assert not negative.positive and negative.search.image().ndim == 3


def test_targets_span_every_aspect_and_size(media_root: str) -> None:
    dataset = load_dataset(_entry("photos", media_root, options={"proposal_prob": 0.0}))
    boxes = [
        dataset.pairs.draw(np.random.default_rng(k), dataset.items[k % 3], 1)[0][0][1]
        for k in range(300)
    ]
    aspects = np.array([w / h for _, _, w, h in boxes])
    sides = np.array([math.sqrt(w * h) for _, _, w, h in boxes])
    assert aspects.min() < 0.3 and aspects.max() > 3.3
    assert sides.min() < 16 and sides.max() > 120


def test_other_objects_are_pasted_beside_the_target_at_its_size(media_root: str) -> None:
    """Regions of other photos land around the target at about its size; the target itself
    stays visible."""
    from training.data.photos import _other_objects

    dataset = load_dataset(_entry("photos", media_root))
    for seed in range(10):
        rng = np.random.default_rng(seed)
        image = np.full((400, 500, 3), 128, np.uint8)
        box = (200.0, 150.0, float(rng.uniform(20, 60)), float(rng.uniform(20, 60)))
        before = image.copy()
        placed = _other_objects(rng, image, box, dataset.items[:2])
        assert placed, seed
        side = math.sqrt(box[2] * box[3])
        for px, py, pw, ph in placed:
            assert 0.75 * side <= math.sqrt(pw * ph) <= 1.3 * side, (seed, box, (pw, ph))
            centre = np.hypot(px + pw / 2 - 200 - box[2] / 2, py + ph / 2 - 150 - box[3] / 2)
            assert centre >= side, (seed, box, (px, py, pw, ph))
        assert (image != before).any()
        x, y, w, h = (int(v) for v in box)
        kept = (image[y : y + h, x : x + w] == before[y : y + h, x : x + w]).all(axis=2).mean()
        assert kept > 0.6, (seed, kept)


def test_pairs_with_other_objects_keep_the_target_box(media_root: str) -> None:
    dataset = load_dataset(_entry("photos", media_root, options={"other_object_prob": 1.0}))
    plain = load_dataset(_entry("photos", media_root))
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    photo = dataset.items[0]
    (_, with_others), (_, without) = (
        dataset.pairs.draw(rng_a, photo, 1)[1],
        plain.pairs.draw(rng_b, photo, 1)[1],
    )
    assert with_others == without


def test_transform_box_of_a_pure_zoom() -> None:
    zoom = np.array([[2.0, 0.0, -50.0], [0.0, 2.0, -50.0]])  # x 2 about (50, 50)
    assert transform_box(zoom, (40.0, 40.0, 20.0, 20.0)) == (30.0, 30.0, 40.0, 40.0)


def test_unknown_photo_options_are_a_clear_error(media_root: str) -> None:
    from training.data.sequences import DataError

    with pytest.raises(DataError, match="photos options"):
        load_dataset(_entry("photos", media_root, options={"zoom": 2}))


# -- optical-flow tracks --------------------------------------------------------------------


def _panned_clip(path: str, frames: int, step: float) -> np.ndarray:
    """A clip of a 240x180 window moving ``step`` px per frame to the right across a real
    photo: the content moves ``-step`` px per frame."""
    photo = cv2.imread(os.path.join(os.path.dirname(cv2.__file__), os.pardir, "skimage",
                                    "data", "astronaut.png"))  # fmt: skip
    if photo is None:
        pytest.skip("scikit-image's astronaut.png not found")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25, (240, 180))
    for k in range(frames):
        matrix = np.float32([[1, 0, -(100 + step * k)], [0, 1, -150]])
        writer.write(cv2.warpAffine(photo, matrix, (240, 180), flags=cv2.INTER_LINEAR))
    writer.release()
    return photo


def test_flow_tracks_follow_a_known_motion(tmp_path) -> None:
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "videos", "test"))
    clip = os.path.join(root, "videos", "test", "pan.avi")
    _panned_clip(clip, frames=30, step=2.5)
    manifest = Manifest(
        videos=[{"path": "videos/test/pan.avi", "source": "test", "member": "pan.avi",
                 "width": 240, "height": 180, "frames": 30}]
    )  # fmt: skip
    manifest.save(root)
    settings = FlowSettings(seed_every=10, seeds_per_round=6, max_length=15, min_length=5)
    counts = build_flow_tracks(root, settings, progress=False)
    assert counts["test-pan"] > 0
    sequences = load_dataset(_entry("flow", root)).items
    moved, scales = [], []
    for sequence in sequences:
        boxes = sequence.boxes
        moved.append(np.diff(boxes[:, 0] + boxes[:, 2] / 2))
        scales.append(boxes[-1, 2] / boxes[0, 2])
        assert os.path.isfile(sequence.frame_path(len(sequence) - 1))
    # a pure translation: sizes stay (a small box at the border may drift a little)
    assert np.median(scales) == pytest.approx(1.0, abs=0.02)
    assert np.percentile(np.abs(np.array(scales) - 1.0), 90) < 0.08
    steps = np.concatenate(moved)
    assert np.median(steps) == pytest.approx(-2.5, abs=0.3)
    assert np.percentile(np.abs(steps + 2.5), 90) < 1.0
    if len(sequences) > 3:  # a long clip can be capped to a few tracks spread over it
        capped = load_dataset(_entry("flow", root, options={"per_clip": 3})).items
        assert [s.name for s in capped] == [sequences[0].name, capped[1].name, sequences[-1].name]


def test_a_box_on_inconsistent_flow_ends_its_track() -> None:
    forward = np.zeros((60, 80, 2), np.float32)
    backward = np.zeros((60, 80, 2), np.float32)
    forward[..., 0] = 3.0  # everything moves right ...
    assert step_box((20.0, 20.0, 20.0, 20.0), forward, -forward, FlowSettings()) == pytest.approx(
        (23.0, 20.0, 20.0, 20.0)
    )
    backward[..., 1] = 4.0  # ... but the backward flow does not bring it back
    assert step_box((20.0, 20.0, 20.0, 20.0), forward, backward, FlowSettings()) is None
