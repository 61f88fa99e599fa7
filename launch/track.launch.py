"""Start the tracker (and optionally a frame source and rviz2).

    ros2 launch ros_tracker track.launch.py image_topic:=/camera/image_raw
    ros2 launch ros_tracker track.launch.py source:=synthetic rviz:=true
    ros2 launch ros_tracker track.launch.py namespace:=drone1     # /drone1/camera/image_raw

Topic names are relative by default, so ``namespace`` isolates several trackers. The
tracker hears ``camera_info`` beside the image topic (image_transport's convention), e.g.
``/camera/camera_info`` for ``/camera/image_raw``.

Unless FASTDDS_DEFAULT_PROFILES_FILE (or the older FASTRTPS_DEFAULT_PROFILES_FILE) is set,
or another RMW than Fast DDS is chosen, the nodes get the package's Fast DDS profile
``config/fastdds_large_images.xml`` (a shared-memory segment large enough for camera
images; see that file).

Written against the launch / launch_ros API common to Humble, Jazzy and Kilted.
"""

import os
import posixpath
import tempfile

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "ros_tracker"
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
FAST_DDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")


def _arguments():
    share = get_package_share_directory(PACKAGE)
    return [
        DeclareLaunchArgument(
            "image_topic",
            default_value="camera/image_raw",
            description="camera image topic (relative names resolve in the namespace)",
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
            "use_sim_time",
            default_value="false",
            description="use the /clock topic (rosbag replay: ros2 bag play --clock)",
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


def _is_true(text):
    return text.strip().lower() in ("true", "1", "yes", "on")


def _dds_profile():
    """Actions that point Fast DDS at the package's profile, unless the user chose one."""
    if any(os.environ.get(name) for name in PROFILE_VARIABLES):
        return []
    if os.environ.get("RMW_IMPLEMENTATION", "") not in FAST_DDS_RMWS:
        return []
    profile = os.path.join(
        get_package_share_directory(PACKAGE), "config", "fastdds_large_images.xml"
    )
    return [SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile)]


def _camera_info_topic(image_topic):
    """``camera_info`` in the image topic's namespace (image_transport's convention)."""
    return posixpath.join(posixpath.dirname(image_topic), "camera_info")


def _rviz(namespace, use_sim_time):
    """rviz2 showing this launch's debug image, or one message saying why not."""
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        return [
            LogInfo(
                msg="rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                "starting without it"
            )
        ]
    debug_topic = "/" + "/".join(p for p in (namespace, "tracker", "debug_image") if p)
    share = get_package_share_directory(PACKAGE)
    with open(os.path.join(share, "config", "tracker.rviz")) as handle:
        text = handle.read().replace("/tracker/debug_image", debug_topic)
    handle = tempfile.NamedTemporaryFile("w", prefix="ros_tracker_", suffix=".rviz", delete=False)
    with handle:
        handle.write(text)
    config = handle.name

    def remove_config(event, context):
        if os.path.exists(config):
            os.remove(config)

    return [
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            namespace=namespace,
            arguments=["-d", config],
            parameters=[{"use_sim_time": use_sim_time}],
            output="screen",
        ),
        RegisterEventHandler(OnShutdown(on_shutdown=remove_config)),
    ]


def _nodes(context):
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    namespace = value("namespace").strip("/")
    image_topic = value("image_topic")
    camera_info = _camera_info_topic(image_topic)
    use_sim_time = _is_true(value("use_sim_time"))
    log_args = ["--ros-args", "--log-level", value("log_level")]

    overrides = {"use_sim_time": use_sim_time}
    for name in ("model", "backend"):
        if value(name):
            overrides[name] = value(name)
    actions = _dds_profile()
    actions.append(
        Node(
            package=PACKAGE,
            executable="tracker_node",
            name="tracker",
            namespace=namespace,
            parameters=[value("params_file"), overrides],
            remappings=[
                ("image", image_topic),
                ("image/compressed", image_topic + "/compressed"),
                ("camera_info", camera_info),
            ],
            arguments=log_args,
            output="screen",
        )
    )
    source = value("source")
    if source.lower() != "none":
        actions.append(
            Node(
                package=PACKAGE,
                executable="video_source_node",
                name="video_source",
                namespace=namespace,
                parameters=[{"source": source, "use_sim_time": use_sim_time}],
                remappings=[("image", image_topic), ("camera_info", camera_info)],
                arguments=log_args,
                output="screen",
            )
        )
    if _is_true(value("rviz")):
        actions.extend(_rviz(namespace, use_sim_time))
    return actions


def generate_launch_description():
    return LaunchDescription(_arguments() + [OpaqueFunction(function=_nodes)])
