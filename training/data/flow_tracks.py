"""Pseudo ground truth on real video: regions followed by dense optical flow.

The media cache's clips (``training.data.media``) have no boxes. Here regions are followed
frame to frame with OpenCV's DIS optical flow, the way a median-flow tracker does it: a grid of
points inside the box moves with the forward flow, each point is checked by the backward flow
(forward-backward consistency), and the box moves by the median displacement of the points
that came back to where they started and scales by the median change of their pairwise
distances. A track ends when too few points are consistent, when the box leaves the frame or
after ``max_length`` frames, so that its drift stays small. Seeds are object proposals,
regions that move against the background, and random regions: all textured (flat regions
have no trustworthy flow) and small enough to leave the search region room in the frame.

``python -m training.data.flow_tracks build [--root build/media]`` decodes each clip into
``<root>/clips/<clip>/img/00001.jpg...`` and writes ``<root>/flow/<clip>.json`` with the
tracks; the training reader (dataset type ``flow``) makes one sequence per track.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from training.data.media import Manifest, object_proposals
from training.data.photos import texture

LOGGER = logging.getLogger("training.flow")

Box = Tuple[float, float, float, float]
FRAME_PATTERN = "%05d.jpg"


@dataclass(frozen=True)
class FlowSettings:
    max_side: int = 640  # frames are decoded at most this large
    max_frames: int = 1500  # per clip, after subsampling
    frame_step: int = 0  # 0: every frame, or every 2nd for clips over max_frames, ...
    seed_every: int = 12  # frames between seeding rounds
    seeds_per_round: int = 10
    max_length: int = 40  # frames per track
    min_length: int = 8
    grid: int = 10  # points per side of the box
    fb_threshold: float = 1.0  # pixels (or 2 % of the box side, whichever is larger)
    min_consistent: float = 0.6  # fraction of points that must pass the check
    min_side: float = 16.0
    max_side_fraction: float = 0.3  # of the frame's shorter side: room around it to search
    min_texture: float = 12.0  # grey-level std: flat regions have no trustworthy flow
    seed: int = 0


def decode_clip(path: str, out_dir: str, settings: FlowSettings) -> int:
    """Frames of a clip as JPEGs in ``out_dir`` (once); returns how many."""
    done = os.path.join(out_dir, "frames.txt")
    if os.path.isfile(done):
        with open(done, encoding="utf-8") as handle:
            return int(handle.read().strip())
    os.makedirs(out_dir, exist_ok=True)
    capture = cv2.VideoCapture(path)
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    step = settings.frame_step or max(1, math.ceil(total / settings.max_frames))
    count = index = 0
    while count < settings.max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            height, width = frame.shape[:2]
            scale = settings.max_side / max(height, width)
            if scale < 1.0:
                size = (round(width * scale), round(height * scale))
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            count += 1
            cv2.imwrite(os.path.join(out_dir, FRAME_PATTERN % count), frame,
                        [cv2.IMWRITE_JPEG_QUALITY, 92])  # fmt: skip
        index += 1
    capture.release()
    with open(done, "w", encoding="utf-8") as handle:
        handle.write(str(count))
    return count


def _sample(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear flow at (N, 2) points."""
    map_x = points[:, 0].astype(np.float32).reshape(1, -1)
    map_y = points[:, 1].astype(np.float32).reshape(1, -1)
    values = cv2.remap(flow, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return values.reshape(-1, 2).astype(np.float64)


def grid_points(box: Box, grid: int) -> np.ndarray:
    x, y, w, h = box
    u = (np.arange(grid) + 0.5) / grid
    xs, ys = np.meshgrid(x + u * w, y + u * h)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def step_box(
    box: Box, forward: np.ndarray, backward: np.ndarray, settings: FlowSettings
) -> Optional[Box]:
    """The box one frame on, or None when the flow cannot be trusted for it."""
    points = grid_points(box, settings.grid)
    moved = points + _sample(forward, points)
    returned = moved + _sample(backward, moved)
    error = np.linalg.norm(returned - points, axis=1)
    threshold = max(settings.fb_threshold, 0.02 * math.sqrt(box[2] * box[3]))
    height, width = forward.shape[:2]
    # Points off either frame have no flow of their own (the border is replicated), and
    # dense flow within a few pixels of the border is unreliable.
    inside = _in_frame(points, width, height) & _in_frame(moved, width, height)
    good = (error <= threshold) & inside
    if good.mean() < settings.min_consistent:
        return None
    before, after = points[good], moved[good]
    shift = np.median(after - before, axis=0)
    i, j = np.triu_indices(len(before), k=1)
    distance_before = np.linalg.norm(before[i] - before[j], axis=1)
    distance_after = np.linalg.norm(after[i] - after[j], axis=1)
    # far-apart pairs only: a ratio's error is the flow's error over the pair's distance
    valid = distance_before > 0.25 * math.sqrt(box[2] * box[3])
    scale = float(np.median(distance_after[valid] / distance_before[valid])) if valid.any() else 1.0
    x, y, w, h = box
    cx, cy = x + 0.5 * w + shift[0], y + 0.5 * h + shift[1]
    w, h = w * scale, h * scale
    return (cx - 0.5 * w, cy - 0.5 * h, w, h)


BORDER = 8  # pixels: about one DIS patch


def _in_frame(points: np.ndarray, width: int, height: int) -> np.ndarray:
    return (
        (points[:, 0] >= BORDER) & (points[:, 0] <= width - 1 - BORDER)
        & (points[:, 1] >= BORDER) & (points[:, 1] <= height - 1 - BORDER)
    )  # fmt: skip


def _inside_fraction(box: Box, width: int, height: int) -> float:
    x, y, w, h = box
    iw = max(0.0, min(x + w, width) - max(x, 0.0))
    ih = max(0.0, min(y + h, height) - max(y, 0.0))
    return iw * ih / max(w * h, 1e-9)


def moving_regions(flow: np.ndarray, min_area: float) -> List[Box]:
    """Boxes of connected regions whose flow differs from the frame's median (camera) flow."""
    residual = np.linalg.norm(flow - np.median(flow.reshape(-1, 2), axis=0), axis=2)
    mask = (residual > max(1.0, 3.0 * float(np.median(residual)))).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [
        tuple(float(v) for v in stats[k, :4]) for k in range(1, count) if stats[k, 4] >= min_area
    ]


def seed_boxes(
    rng: np.random.Generator, frame: np.ndarray, flow: np.ndarray, settings: FlowSettings
) -> List[Box]:
    """Candidate regions in one frame: moving regions, object proposals, random regions."""
    height, width = frame.shape[:2]
    candidates: List[Box] = moving_regions(flow, settings.min_side**2)
    proposals = object_proposals(frame)
    if len(proposals):
        picks = rng.choice(len(proposals), size=min(len(proposals), settings.seeds_per_round))
        candidates += [tuple(float(v) for v in proposals[k]) for k in picks]
    largest = settings.max_side_fraction * min(width, height)
    for _ in range(settings.seeds_per_round // 2):
        side = math.exp(rng.uniform(math.log(settings.min_side), math.log(largest)))
        aspect = math.exp(rng.uniform(-math.log(3.0), math.log(3.0)))
        w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
        if w < width and h < height:
            candidates.append((rng.uniform(0, width - w), rng.uniform(0, height - h), w, h))
    usable = [
        b for b in candidates
        if settings.min_side <= min(b[2], b[3]) and math.sqrt(b[2] * b[3]) <= largest
        and _inside_fraction(b, width, height) > 0.95
        and texture(frame, b) >= settings.min_texture
    ]  # fmt: skip
    rng.shuffle(usable)
    return usable[: settings.seeds_per_round]


def track_clip(frames_dir: str, count: int, settings: FlowSettings) -> List[Dict]:
    """Tracks of one decoded clip: [{"start": first frame index (0-based), "boxes": [...]}]."""
    rng = np.random.default_rng([settings.seed, count])
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    tracks: List[Dict] = []
    active: List[Dict] = []
    previous = cv2.imread(os.path.join(frames_dir, FRAME_PATTERN % 1), cv2.IMREAD_COLOR)
    previous_grey = cv2.cvtColor(previous, cv2.COLOR_BGR2GRAY)
    height, width = previous_grey.shape
    for index in range(1, count):
        frame = cv2.imread(os.path.join(frames_dir, FRAME_PATTERN % (index + 1)), cv2.IMREAD_COLOR)
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        forward = dis.calc(previous_grey, grey, None)
        backward = dis.calc(grey, previous_grey, None)
        if (index - 1) % settings.seed_every == 0:
            for box in seed_boxes(rng, previous, forward, settings):
                active.append({"start": index - 1, "boxes": [box]})
        still: List[Dict] = []
        for track in active:
            box = step_box(track["boxes"][-1], forward, backward, settings)
            ended = (
                box is None
                or min(box[2], box[3]) < 0.5 * settings.min_side
                or _inside_fraction(box, width, height) < 0.7
            )
            if not ended:
                track["boxes"].append(box)
            if ended or len(track["boxes"]) >= settings.max_length:
                if len(track["boxes"]) >= settings.min_length:
                    tracks.append(track)
            else:
                still.append(track)
        active = still
        previous, previous_grey = frame, grey
    tracks += [t for t in active if len(t["boxes"]) >= settings.min_length]
    for track in tracks:
        track["boxes"] = [[round(v, 2) for v in box] for box in track["boxes"]]
    return tracks


def build_flow_tracks(
    root: str, settings: Optional[FlowSettings] = None, progress: bool = True
) -> Dict[str, int]:
    """Tracks for every clip of the media cache at ``root``; returns tracks per clip."""
    from tqdm import tqdm

    settings = settings or FlowSettings()
    manifest = Manifest.load(root)
    if not manifest.videos:
        raise FileNotFoundError(f"no clips in the media cache {root}: build it first")
    os.makedirs(os.path.join(root, "flow"), exist_ok=True)
    counts: Dict[str, int] = {}
    for video in tqdm(manifest.videos, desc="flow tracks", disable=not progress, file=sys.stderr):
        clip = os.path.splitext(os.path.basename(video["path"]))[0]
        clip = f"{video['source']}-{clip}"
        out = os.path.join(root, "flow", clip + ".json")
        if os.path.isfile(out):
            with open(out, encoding="utf-8") as handle:
                counts[clip] = len(json.load(handle)["tracks"])
            continue
        frames_dir = os.path.join(root, "clips", clip, "img")
        count = decode_clip(os.path.join(root, video["path"]), frames_dir, settings)
        tracks = track_clip(frames_dir, count, settings) if count > 1 else []
        data = {
            "clip": clip,
            "video": video["path"],
            "frames": os.path.relpath(os.path.join(frames_dir, FRAME_PATTERN), root),
            "count": count,
            "settings": asdict(settings),
            "tracks": tracks,
        }
        with open(out + ".partial", "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(out + ".partial", out)
        counts[clip] = len(tracks)
        LOGGER.info("%s: %d frames, %d tracks", clip, count, len(tracks))
    return counts


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.data.flow_tracks", description=__doc__
    )
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--root", default="build/media", help="media cache folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = build_flow_tracks(args.root)
    for clip, tracks in sorted(counts.items()):
        print(f"{clip:40s} {tracks:5d} tracks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
