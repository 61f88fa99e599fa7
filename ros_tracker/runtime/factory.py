"""One call from a model string to a ready tracker: resolve, pick a backend, wrap."""

from __future__ import annotations

from typing import Optional

from ros_tracker.runtime.backends.select import create_backend
from ros_tracker.runtime.box_policy import parse_box_policy
from ros_tracker.runtime.model_files import ModelSource, resolve_model


def build_tracker(
    model: str,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    engine_cache_dir: Optional[str] = None,
    threads: Optional[int] = None,
    source: Optional[ModelSource] = None,
    box_policy: str = "card",
):
    """A ros_tracker.runtime.tracker.Tracker for ``model`` (zoo name, .safetensors, ONNX).

    ``source`` skips resolving ``model`` again when the caller already holds it;
    ``box_policy`` picks the box settings (runtime.box_policy: card, paper or key=value).
    """
    from ros_tracker.runtime.tracker import Tracker

    policy_card_changes = parse_box_policy(box_policy)  # a bad policy fails before loading
    resolved = source if source is not None else resolve_model(model)
    inference = create_backend(
        resolved.card,
        resolved,
        backend=backend,
        device=device,
        precision=precision,
        engine_cache_dir=engine_cache_dir,
        threads=threads,
    )
    return Tracker(resolved.card.replace(**policy_card_changes), inference)
