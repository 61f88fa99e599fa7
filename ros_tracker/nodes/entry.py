"""Console entry points of the node executables: a missing dependency is one clear line.

Importing a node module imports rclpy, the message packages, numpy and OpenCV; where one of
them is missing, Python would print a traceback before ``main`` runs. These wrappers import
the node late and name the missing module and where it comes from instead.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

# Where each import comes from on a robot (ROS 2 distribution) or in a venv.
WHERE = {
    "rclpy": "source the ROS 2 setup file (source /opt/ros/$ROS_DISTRO/setup.bash)",
    "rcl_interfaces": "source the ROS 2 setup file",
    "std_msgs": "source the ROS 2 setup file",
    "sensor_msgs": "rosdep install (ros-$ROS_DISTRO-sensor-msgs)",
    "geometry_msgs": "rosdep install (ros-$ROS_DISTRO-geometry-msgs)",
    "diagnostic_msgs": "rosdep install (ros-$ROS_DISTRO-diagnostic-msgs)",
    "vision_msgs": "rosdep install (ros-$ROS_DISTRO-vision-msgs)",
    "ros_tracker_interfaces": "colcon build --base-paths src src/ros_tracker/interfaces, then "
    "source install/setup.bash",
    "numpy": "rosdep install (python3-numpy)",
    "cv2": "rosdep install (python3-opencv)",
    "yaml": "rosdep install (python3-yaml)",
    "onnx": "pip install -r requirements-robot.txt (see README, On a robot)",
    "onnxruntime": "pip install -r requirements-robot.txt (on a Jetson: NVIDIA's onnxruntime-gpu)",
    "safetensors": "pip install -r requirements-robot.txt (see README, On a robot)",
}


def _run(module: str, node: str) -> int:
    try:
        main = importlib.import_module(module).main
    except ModuleNotFoundError as error:
        missing = (error.name or str(error)).split(".")[0]
        where = WHERE.get(missing, "install it")
        print(f"[FATAL] [{node}]: missing Python module {missing!r}: {where}", file=sys.stderr)
        return 1
    return main()


def tracker(args: Optional[list] = None) -> int:
    return _run("ros_tracker.nodes.tracker_node", "tracker")


def video_source(args: Optional[list] = None) -> int:
    return _run("ros_tracker.nodes.video_source_node", "video_source")
