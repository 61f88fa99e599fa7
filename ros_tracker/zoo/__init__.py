"""Model zoo: the four papers' tracker networks behind one registry and factory."""

from ros_tracker.zoo.base import TrackerNetwork
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.registry import create_model, get_card, list_models, register_model

__all__ = [
    "ModelCard",
    "TrackerNetwork",
    "create_model",
    "get_card",
    "list_models",
    "register_model",
]
