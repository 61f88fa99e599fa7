"""Where TensorRT engines are kept, when one can be reused, and how it is written safely.

A serialized engine only loads on the TensorRT version and the GPU it was built for, and it
is only right for the ONNX graph and precision it came from. Every engine is therefore keyed
by (graph, ONNX sha256, precision, TensorRT version, GPU compute capability); the key is in
the file name and, in full, in a JSON sidecar next to the engine, which also records the
engine's own sha256 so that a truncated or overwritten file is detected before TensorRT is
asked to deserialize it. Files are written to a temporary name and renamed into place, so a
build interrupted half way (power loss on a robot) never leaves a file that looks valid.

This module does not import TensorRT: the policy is testable anywhere, the builder is given
as a function (see ros_tracker.export.tensorrt).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence

LOGGER = logging.getLogger("ros_tracker.runtime.tensorrt")

SIDECAR_FORMAT = 1
ENGINE_SUFFIX = ".engine"
SIDECAR_SUFFIX = ".engine.json"


def default_cache_dir() -> str:
    """``$ROS_TRACKER_ENGINE_CACHE`` or ``~/.cache/ros_tracker/engines``."""
    configured = os.environ.get("ROS_TRACKER_ENGINE_CACHE")
    if configured:
        return configured
    return os.path.join(os.path.expanduser("~"), ".cache", "ros_tracker", "engines")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; two engines with equal keys are interchangeable."""

    model: str  # card name
    graph: str  # "template" or "search"
    onnx_sha256: str
    precision: str  # "fp32" or "fp16"
    tensorrt_version: str
    compute_capability: str  # e.g. "8.7" (Orin), "7.2" (Xavier)

    def fingerprint(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return sha256_bytes(text.encode("utf-8"))[:16]

    def file_stem(self) -> str:
        sm = self.compute_capability.replace(".", "")
        return (
            f"{self.model}.{self.graph}-{self.precision}-sm{sm}-trt{self.tensorrt_version}-"
            f"{self.fingerprint()}"
        )

    def differences(self, other: Dict[str, Any]) -> Dict[str, Any]:
        """Fields whose value differs from ``other`` (a sidecar's key): name -> (cached, ours)."""
        ours = dataclasses.asdict(self)
        return {k: (other.get(k), v) for k, v in ours.items() if other.get(k) != v}


@dataclass
class CacheDecision:
    """Whether a usable engine is cached, and why (or why not) in words for the log."""

    reuse: bool
    reason: str
    engine_path: str


class EngineCache:
    """A folder of ``<stem>.engine`` files with their ``<stem>.engine.json`` sidecars."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(os.path.expanduser(directory))

    def engine_path(self, key: EngineKey) -> str:
        return os.path.join(self.directory, key.file_stem() + ENGINE_SUFFIX)

    def sidecar_path(self, key: EngineKey) -> str:
        return os.path.join(self.directory, key.file_stem() + SIDECAR_SUFFIX)

    def _read_sidecar(self, path: str) -> Optional[Dict[str, Any]]:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _stale_reason(self, key: EngineKey) -> str:
        """Explain which cached engine of the same model, graph and precision no longer fits."""
        if not os.path.isdir(self.directory):
            return "no cached engine"
        prefix = f"{key.model}.{key.graph}-{key.precision}-"
        for name in sorted(os.listdir(self.directory)):
            if not (name.startswith(prefix) and name.endswith(SIDECAR_SUFFIX)):
                continue
            sidecar = self._read_sidecar(os.path.join(self.directory, name))
            cached_key = (sidecar or {}).get("key")
            if not isinstance(cached_key, dict):
                continue
            changed = key.differences(cached_key)
            if changed and not {"model", "graph", "precision"} & set(changed):
                parts = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(changed.items()))
                return f"cached engine {name[: -len(SIDECAR_SUFFIX)]} does not fit ({parts})"
        return "no cached engine"

    def check(self, key: EngineKey) -> CacheDecision:
        """Decide between reusing the cached engine and building a new one."""
        engine_path = self.engine_path(key)
        if not os.path.isfile(engine_path):
            return CacheDecision(False, self._stale_reason(key), engine_path)
        sidecar = self._read_sidecar(self.sidecar_path(key))
        if sidecar is None:
            return CacheDecision(False, "engine sidecar missing or unreadable", engine_path)
        cached_key = sidecar.get("key")
        if not isinstance(cached_key, dict) or key.differences(cached_key):
            changed = key.differences(cached_key if isinstance(cached_key, dict) else {})
            return CacheDecision(
                False, f"engine sidecar key mismatch ({', '.join(sorted(changed))})", engine_path
            )
        size = os.path.getsize(engine_path)
        if size != sidecar.get("engine_bytes"):
            return CacheDecision(
                False,
                f"engine file corrupt ({size} bytes, sidecar says {sidecar.get('engine_bytes')})",
                engine_path,
            )
        if sha256_file(engine_path) != sidecar.get("engine_sha256"):
            return CacheDecision(False, "engine file corrupt (sha256 mismatch)", engine_path)
        return CacheDecision(True, "cached engine matches", engine_path)

    def store(self, key: EngineKey, engine: bytes, info: Optional[Dict[str, Any]] = None) -> str:
        """Write the engine, then its sidecar (the sidecar's presence marks a complete pair)."""
        sidecar = {
            "format": SIDECAR_FORMAT,
            "key": dataclasses.asdict(key),
            "engine_bytes": len(engine),
            "engine_sha256": sha256_bytes(engine),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        sidecar.update(info or {})
        engine_path = self.engine_path(key)
        atomic_write_bytes(engine_path, engine)
        text = json.dumps(sidecar, indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(self.sidecar_path(key), text.encode("utf-8"))
        return engine_path

    def timing_cache_path(self, key: EngineKey) -> str:
        """One timing cache per GPU and TensorRT version, shared by every graph (speeds builds)."""
        sm = key.compute_capability.replace(".", "")
        return os.path.join(self.directory, f"timing-sm{sm}-trt{key.tensorrt_version}.cache")


def get_or_build(
    key: EngineKey,
    build: Callable[[], bytes],
    cache: EngineCache,
    read_only_dirs: Sequence[str] = (),
    describe: str = "",
    info: Optional[Dict[str, Any]] = None,
) -> str:
    """Path of a valid engine for ``key``: reused from ``read_only_dirs`` or ``cache``, else built.

    ``read_only_dirs`` are searched first (e.g. the folder of an export made with
    ``--format engine``); a new engine is always written into ``cache``.
    """
    what = describe or key.graph
    for directory in read_only_dirs:
        decision = EngineCache(directory).check(key)
        if decision.reuse:
            LOGGER.info("TensorRT engine for %s: reusing %s", what, decision.engine_path)
            return decision.engine_path
    decision = cache.check(key)
    if decision.reuse:
        LOGGER.info("TensorRT engine for %s: reusing %s", what, decision.engine_path)
        return decision.engine_path
    LOGGER.warning(
        "building the TensorRT %s engine for %s (%s); this may take minutes, more on Jetson. "
        "It is cached in %s and reused on the next start.",
        key.precision,
        what,
        decision.reason,
        cache.directory,
    )
    start = time.monotonic()
    engine = build()
    seconds = time.monotonic() - start
    details = dict(info or {})
    details["build_seconds"] = round(seconds, 3)
    path = cache.store(key, engine, details)
    LOGGER.warning("built the TensorRT engine for %s in %.1f s: %s", what, seconds, path)
    return path


def discard(path: str) -> None:
    """Remove an engine and its sidecar (after TensorRT refused to deserialize it)."""
    for candidate in (path, path[: -len(ENGINE_SUFFIX)] + SIDECAR_SUFFIX):
        if os.path.exists(candidate):
            os.unlink(candidate)
