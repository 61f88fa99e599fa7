"""The launch file: always checked for syntax and contract arguments; where the ROS 2 launch
system is installed (a ROS distribution, or build/ros2cli made by ../shared/ros2cli), its
description is built and real ``ros2 launch`` runs it end to end and stops it with Ctrl-C."""

from __future__ import annotations

import ast
import glob
import importlib.util
import os
import re
import sys

import pytest
from launch_helpers import assert_nodes_ended_cleanly, ros2_launch, track_then_interrupt
from ros_harness import fresh_domain_id, ros_environment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH_FILE = os.path.join(REPO, "launch", "track.launch.py")
ROS2CLI_ENV = os.path.join(REPO, "build", "ros2cli", "env.sh")
CONTRACT_ARGUMENTS = {
    "image_topic",
    "params_file",
    "model",
    "backend",
    "namespace",
    "use_sim_time",
    "log_level",
    "source",
    "rviz",
}


def read_launch_file() -> str:
    with open(LAUNCH_FILE) as handle:
        return handle.read()


def _launch_system_importable() -> bool:
    """launch_ros from a distribution, or from build/ros2cli (put on sys.path here)."""
    if importlib.util.find_spec("launch_ros") is not None:
        return True
    pattern = os.path.join(REPO, "build", "ros2cli", "install", "lib", "python3*", "site-packages")
    for site in glob.glob(pattern):
        sys.path.append(site)
    return importlib.util.find_spec("launch_ros") is not None


needs_launch = pytest.mark.skipif(
    not _launch_system_importable(),
    reason="the ROS 2 launch system is not installed (no distribution; make launch-tools)",
)


def _ros2_for_this_python() -> bool:
    """A ROS distribution, or build/ros2cli built over the venv these tests run in."""
    if os.environ.get("ROS_DISTRO") and not os.path.isfile(ROS2CLI_ENV):
        return True
    if not os.path.isfile(ROS2CLI_ENV):
        return False
    with open(ROS2CLI_ENV) as handle:
        return sys.prefix in handle.read()


needs_ros2 = pytest.mark.skipif(
    not _ros2_for_this_python(),
    reason="no ros2 command for this Python (no distribution; make launch-tools builds one)",
)


def test_launch_file_declares_the_contract_arguments():
    tree = ast.parse(read_launch_file())
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert declared == CONTRACT_ARGUMENTS


def test_launch_file_parses_as_python_3_8():
    ast.parse(read_launch_file(), LAUNCH_FILE, feature_version=(3, 8))


def _describe(monkeypatch, **arguments):
    from launch import LaunchContext
    from launch.actions import OpaqueFunction

    spec = importlib.util.spec_from_file_location("track_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    context = LaunchContext()
    for entity in description.entities:
        if not isinstance(entity, OpaqueFunction):
            entity.visit(context)
    context.launch_configurations.update(arguments)
    opaque = [e for e in description.entities if isinstance(e, OpaqueFunction)][0]
    return opaque.execute(context)


@needs_launch
def test_launch_description_builds_the_nodes(monkeypatch):
    from launch.actions import LogInfo, SetEnvironmentVariable
    from launch_ros.actions import Node

    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("FASTRTPS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("RMW_IMPLEMENTATION", raising=False)
    actions = _describe(monkeypatch, source="synthetic", rviz="true", namespace="drone1")
    nodes = [a for a in actions if isinstance(a, Node)]
    executables = sorted(node.node_executable for node in nodes)
    rviz = importlib.util.find_spec("rviz2") is not None  # never on PyPI
    assert executables == (["rviz2"] if rviz else []) + ["tracker_node", "video_source_node"]
    if not rviz:
        assert any(isinstance(a, LogInfo) for a in actions)
    profile = [a for a in actions if isinstance(a, SetEnvironmentVariable)]
    assert len(profile) == 1 and actions.index(profile[0]) < actions.index(nodes[0])
    # A profile of the user's own is left alone.
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/my_profile.xml")
    actions = _describe(monkeypatch, source="none", rviz="false", namespace="")
    assert not [a for a in actions if isinstance(a, SetEnvironmentVariable)]
    assert [a.node_executable for a in actions if isinstance(a, Node)] == ["tracker_node"]


VIEWER = """#!/bin/sh
# Stands in for rviz2 (a GUI, not installable here): keeps the config it was given, then
# waits for the launch to stop it, and takes a moment to close as rviz2 does (one that exits
# the instant Ctrl-C arrives can be reaped while launch is still signalling it, and launch
# then reports it died with 255).
previous=""
for argument in "$@"; do
    [ "$previous" = "-d" ] && cp "$argument" "$0.seen"
    previous="$argument"
done
trap 'sleep 0.5; exit 0' INT TERM
while :; do sleep 0.2; done
"""


def _viewer_prefix(root) -> str:
    """An install prefix with a package named rviz2 whose executable is VIEWER."""
    (root / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (root / "share" / "ament_index" / "resource_index" / "packages" / "rviz2").write_text("")
    (root / "share" / "rviz2").mkdir(parents=True)
    executable = root / "lib" / "rviz2" / "rviz2"
    executable.parent.mkdir(parents=True)
    executable.write_text(VIEWER)
    executable.chmod(0o755)
    return str(executable)


@needs_ros2
def test_ros2_launch_tracks_in_a_namespace_and_stops_on_ctrl_c(tmp_path):
    domain = fresh_domain_id()
    env = ros_environment(domain)
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)  # the launch file's own profile applies
    env["TMPDIR"] = str(tmp_path)  # where the temporary rviz config goes
    viewer = _viewer_prefix(tmp_path / "viewer")
    env["AMENT_PREFIX_PATH"] = str(tmp_path / "viewer") + os.pathsep + env["AMENT_PREFIX_PATH"]
    launch = ros2_launch(
        [
            "source:=synthetic",
            "namespace:=drone1",
            "rviz:=true",
            f"params_file:={_params(tmp_path)}",
        ],
        env,
    )
    text = track_then_interrupt(launch, domain, "drone1")
    assert launch.returncode == 0, text
    with open(viewer + ".seen") as handle:  # rviz2 got this launch's namespaced debug image
        assert "/drone1/tracker/debug_image" in handle.read()
    assert_nodes_ended_cleanly(text, 3)  # tracker, video_source, rviz2
    assert not glob.glob(str(tmp_path / "ros_tracker_*.rviz")), "temporary rviz config left"


def _params(tmp_path) -> str:
    """The package's parameters file with the shipped model and lost_threshold 0."""
    with open(os.path.join(REPO, "config", "tracker.yaml")) as handle:
        text = handle.read()
    text = re.sub(r"lost_threshold: [0-9.]+", "lost_threshold: 0.0", text)
    path = tmp_path / "tracker.yaml"
    path.write_text(text)
    return str(path)
