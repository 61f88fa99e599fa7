"""Model zoo: the four papers' tracker networks behind one registry and factory.

``ModelCard`` imports without PyTorch (a robot that runs exported ONNX graphs needs the card,
not the networks); the other names load torch and the networks on first use.
"""

from typing import Any

from ros_tracker.zoo.card import ModelCard

__all__ = [
    "ModelCard",
    "TrackerNetwork",
    "create_model",
    "get_card",
    "list_models",
    "register_model",
]


def __getattr__(name: str) -> Any:
    if name == "TrackerNetwork":
        from ros_tracker.zoo.base import TrackerNetwork

        return TrackerNetwork
    if name in ("create_model", "get_card", "list_models", "register_model"):
        from ros_tracker.zoo import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'ros_tracker.zoo' has no attribute {name!r}")
