"""Tiny builder overrides of each zoo family, looked up in the family modules themselves."""

from __future__ import annotations

import importlib
from typing import Any, Dict

# Each family module names its small test configuration a little differently.
_TINY_ATTRIBUTES = ("TINY_TEST_OVERRIDES", "TINY_OVERRIDES", "TINY_TEST_CONFIG")


def tiny_overrides(family: str) -> Dict[str, Any]:
    module = importlib.import_module("ros_tracker.zoo." + family)
    for attribute in _TINY_ATTRIBUTES:
        if hasattr(module, attribute):
            return dict(getattr(module, attribute))
    raise LookupError(f"ros_tracker.zoo.{family} defines no tiny test configuration")
