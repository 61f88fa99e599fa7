"""ros_tracker: single-object tracking for ROS 2 with efficient transformer trackers."""

__version__ = "0.1.0"
