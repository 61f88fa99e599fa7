"""Real ``ros2 launch ros_tracker track.launch.py`` driven from a test: started in its own
process group, given a target over ROS until detections arrive, stopped with Ctrl-C, and
checked that every node it started ended cleanly and none outlived it."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

from ros_harness import Driver
from ros_tracker_interfaces.msg import TrackerStatus
from ros_tracker_interfaces.srv import SetTarget
from vision_msgs.msg import Detection2D

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROS2CLI_ENV = os.path.join(REPO, "build", "ros2cli", "env.sh")
# Runs argv[1:] with SIGINT's default action, as in a terminal. A test run started in the
# background of a non-interactive shell (`make test &`) ignores SIGINT, every child inherits
# that, and a shell cannot undo it: the stand-in rviz2's trap and launch's Ctrl-C never fire.
WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def ros2_launch(
    arguments: Sequence[str],
    env: dict,
    setup_scripts: Sequence[str] = (),
    cwd: Optional[str] = None,
) -> subprocess.Popen:
    """``ros2 launch ros_tracker track.launch.py ...`` in its own process group, after
    build/ros2cli's env.sh (where it exists) and then ``setup_scripts`` are sourced."""
    command = "exec ros2 launch ros_tracker track.launch.py " + " ".join(arguments)
    for script in reversed(setup_scripts):
        command = f". {shlex.quote(script)} && " + command
    if os.path.isfile(ROS2CLI_ENV):
        command = f". {ROS2CLI_ENV} && " + command
    return subprocess.Popen(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, "bash", "-c", command],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a terminal's process group: Ctrl-C signals all of it
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def drain(process) -> str:
    if process.poll() is None:
        return "(still running)"
    return process.stdout.read()


def interrupt(launch: subprocess.Popen) -> str:
    """Ctrl-C in the launch's terminal (SIGINT to its process group); its whole output."""
    os.killpg(launch.pid, signal.SIGINT)
    try:
        output, _ = launch.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        output, _ = launch.communicate()
    return output


def track_then_interrupt(
    launch: subprocess.Popen,
    domain: int,
    namespace: str,
    while_tracking: Optional[Callable[[], None]] = None,
) -> str:
    """Wait for the tracker's status, set a target, wait for its detections (then call
    ``while_tracking``), and always stop the launch with Ctrl-C; its output as text."""
    driver = Driver(domain)
    try:
        statuses = driver.collect(TrackerStatus, f"/{namespace}/tracker/status")
        detections = driver.collect(Detection2D, f"/{namespace}/tracker/detection")
        assert statuses.wait_for(lambda msgs: len(msgs) >= 1, timeout=120.0), drain(launch)
        request = SetTarget.Request()
        request.bbox.center.position.x, request.bbox.center.position.y = 320.0, 240.0
        request.bbox.size_x, request.bbox.size_y = 80.0, 60.0
        answer = driver.call(SetTarget, f"/{namespace}/tracker/set_target", request)
        assert answer.success, answer.message
        assert detections.wait_for(lambda msgs: len(msgs) >= 5, timeout=60.0)
        assert {m.id for m in detections.snapshot()} == {answer.target_id}
        if while_tracking is not None:
            while_tracking()
    finally:
        driver.close()
        output = interrupt(launch)
    return "\n".join(output.splitlines())


def assert_nodes_ended_cleanly(text: str, count: int) -> None:
    """The launch started ``count`` processes; each finished cleanly and none outlived it."""
    pids = [int(p) for p in re.findall(r"process started with pid \[(\d+)\]", text)]
    assert len(pids) == count, text
    assert text.count("process has finished cleanly") == len(pids), text
    assert "Traceback" not in text and "has died" not in text, text
    deadline = time.monotonic() + 10.0
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), "a node outlived the launch"
