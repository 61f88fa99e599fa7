"""Start the tracker (and optionally a frame source and rviz2).

    ros2 launch ros_tracker track.launch.py image_topic:=/camera/image_raw
    ros2 launch ros_tracker track.launch.py source:=synthetic rviz:=true

Written against the launch / launch_ros API common to Humble, Jazzy and Kilted.
"""

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "ros_tracker"


def _arguments():
    share = get_package_share_directory(PACKAGE)
    return [
        DeclareLaunchArgument(
            "image_topic", default_value="/camera/image_raw", description="camera image topic"
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "tracker.yaml"),
            description="tracker parameters file",
        ),
        DeclareLaunchArgument(
            "model", default_value="", description="override the params file's model"
        ),
        DeclareLaunchArgument(
            "backend",
            default_value="",
            description="override the params file's backend: auto | tensorrt | onnxruntime | torch",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the nodes"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="use the /clock topic"
        ),
        DeclareLaunchArgument(
            "log_level", default_value="info", description="debug | info | warn | error"
        ),
        DeclareLaunchArgument(
            "source",
            default_value="none",
            description="also start video_source: none | synthetic | a video or folder path",
        ),
        DeclareLaunchArgument(
            "rviz", default_value="false", description="start rviz2 showing ~/debug_image"
        ),
    ]


def _rviz_config(debug_topic):
    """The packaged rviz config with the debug image topic of this launch's namespace."""
    share = get_package_share_directory(PACKAGE)
    with open(os.path.join(share, "config", "tracker.rviz")) as handle:
        text = handle.read().replace("/tracker/debug_image", debug_topic)
    handle = tempfile.NamedTemporaryFile("w", prefix="ros_tracker_", suffix=".rviz", delete=False)
    with handle:
        handle.write(text)
    return handle.name


def _nodes(context):
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    namespace = value("namespace").strip("/")
    image_topic = value("image_topic")
    use_sim_time = value("use_sim_time").lower() in ("true", "1", "yes")
    log_args = ["--ros-args", "--log-level", value("log_level")]

    overrides = {"use_sim_time": use_sim_time}
    for name in ("model", "backend"):
        if value(name):
            overrides[name] = value(name)
    actions = [
        Node(
            package=PACKAGE,
            executable="tracker_node",
            name="tracker",
            namespace=namespace,
            parameters=[value("params_file"), overrides],
            remappings=[("image", image_topic), ("image/compressed", image_topic + "/compressed")],
            arguments=log_args,
            output="screen",
        )
    ]
    source = value("source")
    if source.lower() != "none":
        actions.append(
            Node(
                package=PACKAGE,
                executable="video_source_node",
                name="video_source",
                namespace=namespace,
                parameters=[{"source": source, "use_sim_time": use_sim_time}],
                remappings=[("image", image_topic)],
                arguments=log_args,
                output="screen",
            )
        )
    if value("rviz").lower() in ("true", "1", "yes"):
        debug_topic = "/" + "/".join(p for p in (namespace, "tracker", "debug_image") if p)
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                namespace=namespace,
                arguments=["-d", _rviz_config(debug_topic)],
                parameters=[{"use_sim_time": use_sim_time}],
                output="screen",
            )
        )
    return actions


def generate_launch_description():
    return LaunchDescription(_arguments() + [OpaqueFunction(function=_nodes)])
