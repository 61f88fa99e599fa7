"""Imports every family module so that their models register themselves."""

from ros_tracker.zoo import abtrack, hcat, hit, mixformerv2  # noqa: F401
