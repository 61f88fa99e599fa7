"""Which box policy a tracker runs: its card's, the paper's, or chosen values.

A card carries the runtime settings that turn a network's raw estimate into the box a robot
follows (``window_influence``, and runtime.motion_prior's ``scale_penalty``, ``size_lr``,
``redetect_after``, ``redetect_threshold``; runtime.appearance_check's ``appearance_weight``
in the confidence, ``appearance_rerank`` and ``distractor_weight`` in the choice of candidate;
runtime.size_calibration's ``size_calibration``; runtime.box_refinement's
``box_refinement`` and ``match_weight`` in the confidence; and ``min_box_side``, the floor
of a tracked box's sides). The node's ``box_policy`` parameter and the command line's
``--box-policy`` pick among them:

* ``card`` (default): the card's settings, measured on real footage for the shipped model;
* ``paper``: the papers' trackers as their authors run them (no change penalty, sizes taken
  as estimated, no search for a lost target, the network's own pick and confidence);
* ``key=value,...``, optionally after ``card,`` or ``paper,``: chosen values, e.g.
  ``paper,scale_penalty=0.1`` or ``size_lr=0.4,redetect_after=10``.
"""

from __future__ import annotations

from typing import Any, Dict

from ros_tracker.zoo.card import ModelCard

# field -> type; the paper's value of the motion-prior fields is the card dataclass default
POLICY_FIELDS: Dict[str, type] = {
    "window_influence": float,
    "scale_penalty": float,
    "size_lr": float,
    "redetect_after": int,
    "redetect_threshold": float,
    "appearance_weight": float,
    "appearance_rerank": float,
    "size_calibration": float,
    "distractor_weight": float,
    "box_refinement": float,
    "match_weight": float,
    "min_box_side": float,
}
_PAPER = {
    "scale_penalty": 0.0,
    "size_lr": 0.0,
    "redetect_after": 0,
    "appearance_weight": 0.0,
    "appearance_rerank": 0.0,
    "size_calibration": 0.0,
    "distractor_weight": 0.0,
    "box_refinement": 0.0,
    "match_weight": 0.0,
    "min_box_side": 10.0,
}
_RANGES = {
    "window_influence": (0.0, 1.0),
    "scale_penalty": (0.0, 10.0),
    "size_lr": (0.0, 1.0),
    "redetect_after": (0, 100000),
    "redetect_threshold": (0.0, 1.0),
    "appearance_weight": (0.0, 1.0),
    "appearance_rerank": (0.0, 1.0),
    "size_calibration": (0.0, 1.0),
    "distractor_weight": (0.0, 10.0),
    "box_refinement": (0.0, 1.0),
    "match_weight": (0.0, 1.0),
    "min_box_side": (1.0, 100.0),
}


def parse_box_policy(text: str) -> Dict[str, Any]:
    """The card fields a policy string sets (``{}`` for ``card``); ValueError says why not."""
    changes: Dict[str, Any] = {}
    for index, part in enumerate(p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if "=" not in part:
            if index == 0 and part in ("card", "paper"):
                changes.update(_PAPER if part == "paper" else {})
                continue
            raise ValueError(
                f"box policy {text!r}: {part!r} is neither 'card', 'paper' (first) nor key=value"
            )
        key, _, value = (s.strip() for s in part.partition("="))
        if key not in POLICY_FIELDS:
            raise ValueError(
                f"box policy {text!r}: unknown setting {key!r}; known: {', '.join(POLICY_FIELDS)}"
            )
        try:
            number = POLICY_FIELDS[key](value)
        except ValueError:
            raise ValueError(
                f"box policy {text!r}: {key} needs a {POLICY_FIELDS[key].__name__}, got {value!r}"
            ) from None
        low, high = _RANGES[key]
        if not low <= number <= high:
            raise ValueError(f"box policy {text!r}: {key} must be in [{low}, {high}], got {value}")
        changes[key] = number
    return changes


def apply_box_policy(card: ModelCard, policy: str = "card") -> ModelCard:
    """``card`` with the settings of ``policy`` (see the module docstring)."""
    changes = parse_box_policy(policy)
    return card.replace(**changes) if changes else card
