"""Tracker runtime: crops, inference backends and decoding. Knows nothing of ROS."""
