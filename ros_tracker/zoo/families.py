"""Imports every family module so that their models register themselves."""

# Each import is guarded so that one family under construction never hides the others.
import importlib
import logging

_FAMILY_MODULES = ("hit", "hcat", "mixformerv2", "abtrack")

for _module in _FAMILY_MODULES:
    try:
        importlib.import_module("ros_tracker.zoo." + _module)
    except ModuleNotFoundError as error:  # family not written yet
        if error.name != "ros_tracker.zoo." + _module:
            raise
        logging.getLogger(__name__).debug("zoo family %s not available", _module)
