"""One registry and one factory for every network of the zoo."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, List, Tuple

from ros_tracker.zoo.card import ModelCard

# name -> (card, builder); the builder takes the card and keyword overrides of the config.
_REGISTRY: Dict[str, Tuple[ModelCard, Callable[..., Any]]] = {}


def register_model(card: ModelCard) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``builder(card, **overrides) -> TrackerNetwork`` under card.name."""

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if card.name in _REGISTRY:
            raise ValueError(f"model {card.name!r} registered twice")
        _REGISTRY[card.name] = (card, builder)
        return builder

    return wrap


def _ensure_loaded() -> None:
    # Importing the family modules runs their @register_model decorators.
    from ros_tracker.zoo import families  # noqa: F401


def _lookup(name: str) -> Tuple[ModelCard, Callable[..., Any]]:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown model {name!r}.{hint} Known models: {known}")
    return _REGISTRY[name]


def list_models() -> List[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_card(name: str) -> ModelCard:
    return _lookup(name)[0]


def create_model(name: str, **overrides: Any) -> Any:
    """Build the network ``name`` with random weights (load weights with zoo.checkpoints)."""
    card, builder = _lookup(name)
    return builder(card, **overrides)
