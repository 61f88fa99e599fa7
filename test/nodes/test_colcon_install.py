"""The colcon-workspace install of README "On a robot": `colcon build --base-paths <repo>
<repo>/interfaces` into a temporary workspace over this environment (the venv's ROS 2 wheels
stand in for /opt/ros/<distro>), then what the install holds and that it runs from there, not
from the checkout: ament index, share files, executables, the interfaces' generated module and
libraries, `ros-tracker models` finding the shipped weights in the install's share directory,
and, where build/ros2cli exists, `ros2 pkg prefix` / `ros2 run` resolving to the install and
real `ros2 launch` of the installed launch file tracking a target and stopping on Ctrl-C."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid

import pytest
from launch_helpers import assert_nodes_ended_cleanly, ros2_launch, track_then_interrupt
from ros_harness import fresh_domain_id

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTERFACES = os.path.join(REPO, "interfaces")
ROS2CLI_ENV = os.path.join(REPO, "build", "ros2cli", "env.sh")
COLCON = os.path.join(os.path.dirname(sys.executable), "colcon")
COLCON_MODULES = ("colcon_core", "colcon_ros", "colcon_cmake", "colcon_python_setup_py")
EXECUTABLES = ("tracker_node", "video_source_node", "ros-tracker")
BUILD_TIMEOUT = 1200  # about 15-60 s on an idle machine; generous for a loaded one
RUN_TIMEOUT = 600


def _missing_tools() -> str:
    missing = [m for m in COLCON_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"colcon is not installed in this environment ({', '.join(missing)} missing)"
    if not os.access(COLCON, os.X_OK):
        return f"no colcon executable next to {sys.executable}"
    if shutil.which("cmake") is None:
        return "cmake is not installed (the interfaces package is ament_cmake)"
    return ""


pytestmark = pytest.mark.skipif(bool(_missing_tools()), reason=_missing_tools() or "-")


def _ros2_for_this_python() -> bool:
    """build/ros2cli built over the venv these tests run in (as in test_launch.py)."""
    if not os.path.isfile(ROS2CLI_ENV):
        return False
    with open(ROS2CLI_ENV) as handle:
        return sys.prefix in handle.read()


def _underlay_environment(tmp) -> dict:
    """This venv as the only underlay, as a sourced /opt/ros/<distro> would be on a robot."""
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("COLCON_") or name in (
            "PYTHONPATH",
            "AMENT_PREFIX_PATH",
            "CMAKE_PREFIX_PATH",
            "AMENT_CURRENT_PREFIX",
        ):
            del env[name]
    venv_bin = os.path.dirname(sys.executable)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    env["AMENT_PREFIX_PATH"] = sys.prefix
    env["CMAKE_PREFIX_PATH"] = sys.prefix
    env["COLCON_HOME"] = str(tmp / "colcon_home")  # no user defaults or mixins
    env["MAKEFLAGS"] = "-j1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("ROS_LOG_DIR", str(tmp / "ros_log"))
    return env


# What a build pointed at the checkout would leave there: colcon's workspace folders, setuptools'
# build folders (build/lib, build/scripts-3.11, ...) and CMake in-source builds. Only these names
# count in build/ and at the top, where other work (training, evaluation) writes meanwhile.
BUILD_OUTPUTS = ("build", "install", "log", "COLCON_IGNORE", "ros_tracker", "lib", "dist")
BUILD_OUTPUT_PREFIXES = ("ros_tracker_interfaces", "scripts-", "bdist.", "temp.", "CMake")


def _build_outputs(path: str, any_name: bool = False) -> set:
    names = set(os.listdir(path)) if os.path.isdir(path) else set()
    if any_name:
        return names
    return {n for n in names if n in BUILD_OUTPUTS or n.startswith(BUILD_OUTPUT_PREFIXES)}


def _repo_listings() -> dict:
    """The build outputs in the checkout (any new entry at all in the interfaces package)."""
    return {
        REPO: _build_outputs(REPO),
        os.path.join(REPO, "build"): _build_outputs(os.path.join(REPO, "build")),
        INTERFACES: _build_outputs(INTERFACES, any_name=True),
        os.path.join(INTERFACES, "ros_tracker_interfaces"): _build_outputs(
            os.path.join(INTERFACES, "ros_tracker_interfaces"), any_name=True
        ),
    }


def _report(process: subprocess.CompletedProcess) -> str:
    return (
        f"exit {process.returncode}\n--- stdout\n{process.stdout[-8000:]}\n"
        f"--- stderr\n{process.stderr[-8000:]}"
    )


class Workspace:
    def __init__(self, root, env, build) -> None:
        self.root = root
        self.env = env
        self.build = build
        self.install = root / "install"

    def check_built(self) -> None:
        assert self.build.returncode == 0, "colcon build failed: " + _report(self.build)

    def run(self, command: str, ros2cli: bool = False) -> subprocess.CompletedProcess:
        """`command` in bash after sourcing the install (over build/ros2cli if asked)."""
        script = ""
        if ros2cli:
            script += f". {shlex.quote(ROS2CLI_ENV)} && "
        script += f". {shlex.quote(str(self.install / 'setup.bash'))} && {command}"
        return subprocess.run(
            ["bash", "-c", script],
            cwd=str(self.root),  # not the checkout: nothing may import from the cwd
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    root = tmp_path_factory.mktemp("colcon_ws")
    env = _underlay_environment(root)
    before = _repo_listings()
    command = [
        COLCON,
        "--log-base",
        str(root / "log"),
        "build",
        "--base-paths",
        REPO,
        INTERFACES,
        "--build-base",
        str(root / "build"),
        "--install-base",
        str(root / "install"),
        "--executor",
        "sequential",
        "--cmake-args",
        "-DPython3_EXECUTABLE=" + sys.executable,
        "-DBUILD_TESTING=OFF",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    build = subprocess.run(
        command, cwd=str(root), env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    after = _repo_listings()
    # setup.py may leave ros_tracker.egg-info (gitignored) in the checkout, nothing else.
    written = {
        os.path.relpath(os.path.join(path, name), REPO)
        for path in after
        for name in after[path] - before[path]
    }
    assert not written, f"colcon wrote into the checkout: {sorted(written)}\n{_report(build)}"
    return Workspace(root, env, build)


def test_colcon_builds_both_packages(workspace):
    workspace.check_built()
    output = workspace.build.stdout
    assert "Finished <<< ros_tracker_interfaces" in output, _report(workspace.build)
    assert "Finished <<< ros_tracker " in output, _report(workspace.build)
    assert "2 packages finished" in output, _report(workspace.build)


def test_install_holds_what_a_ros_package_needs(workspace):
    workspace.check_built()
    prefix = workspace.install / "ros_tracker"
    expected = [
        "share/ament_index/resource_index/packages/ros_tracker",
        "share/ros_tracker/package.xml",
        "share/ros_tracker/launch/track.launch.py",
        "share/ros_tracker/config/tracker.yaml",
        "share/ros_tracker/config/fastdds_large_images.xml",
        "share/ros_tracker/models/hcat_mobilenetv2.safetensors",
        "share/ros_tracker/models/hcat_mobilenetv2/template.onnx",
        "share/ros_tracker/models/hcat_mobilenetv2/search.onnx",
    ]
    missing = [path for path in expected if not (prefix / path).is_file()]
    # Real files, not links into the checkout (that is the venv's development install).
    linked = [path for path in expected if (prefix / path).is_symlink()]
    assert not missing and not linked, f"missing {missing}, links {linked}"
    for name in EXECUTABLES:
        executable = prefix / "lib" / "ros_tracker" / name
        assert executable.is_file() and os.access(executable, os.X_OK), executable
    sites = list(prefix.glob("lib/python3*/site-packages/ros_tracker/__init__.py"))
    assert sites, f"no ros_tracker module under {prefix}/lib"
    interfaces = workspace.install / "ros_tracker_interfaces"
    assert (
        interfaces / "share/ament_index/resource_index/packages/ros_tracker_interfaces"
    ).is_file()
    for module in ("srv/__init__.py", "msg/__init__.py"):
        found = list(interfaces.glob("lib/python3*/site-packages/ros_tracker_interfaces/" + module))
        assert found, f"no ros_tracker_interfaces/{module} under {interfaces}/lib"
    assert (workspace.install / "setup.bash").is_file()


PROBE = """
import inspect, json, os
import ros_tracker
from ros_tracker.runtime.model_files import models_dirs
from ros_tracker_interfaces.msg import TrackerStatus
from ros_tracker_interfaces.srv import SetTarget
type(SetTarget.Request).__import_type_support__()
type(TrackerStatus).__import_type_support__()
with open("/proc/self/maps") as maps:
    libraries = sorted({line.split()[-1] for line in maps if "ros_tracker_interfaces" in line})
print(json.dumps({
    "ros_tracker": os.path.realpath(ros_tracker.__file__),
    "interfaces": os.path.realpath(inspect.getfile(SetTarget)),
    "models_dirs": models_dirs(),
    "libraries": [os.path.realpath(path) for path in libraries],
}))
"""


def test_the_install_runs_from_the_install_prefix(workspace):
    workspace.check_built()
    install = os.path.realpath(str(workspace.install))
    probe = workspace.run("python -c " + shlex.quote(PROBE))
    assert probe.returncode == 0, _report(probe)
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    inside = os.path.join(install, "")
    assert found["ros_tracker"].startswith(inside), found
    assert found["interfaces"].startswith(inside), found
    assert found["models_dirs"], found
    assert found["models_dirs"][0].startswith(inside), found  # weights from share/, first
    assert found["libraries"] and all(p.startswith(inside) for p in found["libraries"]), found

    ros_tracker = os.path.join(install, "ros_tracker", "lib", "ros_tracker", "ros-tracker")
    models = workspace.run(shlex.quote(ros_tracker) + " models")
    assert models.returncode == 0, _report(models)
    shipped = [line for line in models.stdout.splitlines() if line.startswith("hcat_mobilenetv2 ")]
    assert len(shipped) == 1 and shipped[0].rstrip().endswith("trained"), _report(models)


needs_ros2 = pytest.mark.skipif(
    not _ros2_for_this_python(),
    reason="no ros2 command for this Python (no build/ros2cli; make launch-tools builds one)",
)


@needs_ros2
def test_ros2_finds_the_workspace_over_the_venv(workspace):
    workspace.check_built()
    install = os.path.realpath(str(workspace.install))
    prefix = workspace.run("ros2 pkg prefix ros_tracker", ros2cli=True)
    assert prefix.returncode == 0, _report(prefix)
    assert os.path.realpath(prefix.stdout.strip()) == os.path.join(install, "ros_tracker"), _report(
        prefix
    )
    executables = workspace.run("ros2 pkg executables --full-path ros_tracker", ros2cli=True)
    assert executables.returncode == 0, _report(executables)
    paths = sorted(executables.stdout.split())
    expected = sorted(
        os.path.join(install, "ros_tracker", "lib", "ros_tracker", e) for e in EXECUTABLES
    )
    assert [os.path.realpath(p) for p in paths] == expected, _report(executables)
    helped = workspace.run("ros2 run ros_tracker ros-tracker --help", ros2cli=True)
    assert helped.returncode == 0, _report(helped)
    assert "usage: ros-tracker" in helped.stdout and "models" in helped.stdout, _report(helped)


FAST_DDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")


def _descendants(pid: int) -> dict:
    """argv, environment and mapped files of every live descendant of ``pid``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child in [c for c, p in parents.items() if p == parent]:
            frontier.append(child)
            try:
                with open(f"/proc/{child}/cmdline", "rb") as handle:
                    argv = [a.decode() for a in handle.read().split(b"\0") if a]
                with open(f"/proc/{child}/environ", "rb") as handle:
                    environ = dict(
                        a.decode().partition("=")[::2] for a in handle.read().split(b"\0") if a
                    )
                with open(f"/proc/{child}/maps") as handle:
                    maps = {line.split()[-1] for line in handle if "/" in line}
            except OSError:
                continue
            found[child] = {"argv": argv, "environ": environ, "maps": maps}
    return found


@needs_ros2
def test_ros2_launch_from_the_install_tracks_and_stops_on_ctrl_c(workspace, tmp_path):
    workspace.check_built()
    install = os.path.realpath(str(workspace.install))
    prefix = os.path.join(install, "ros_tracker")
    share = os.path.join(prefix, "share", "ros_tracker")
    domain = fresh_domain_id()
    namespace = "colcon_" + uuid.uuid4().hex[:8]
    env = dict(workspace.env)
    env.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RCUTILS_COLORIZED_OUTPUT="0",
        PYTHONUNBUFFERED="1",
    )
    for name in (
        "FASTDDS_BUILTIN_TRANSPORTS",
        "FASTDDS_DEFAULT_PROFILES_FILE",
        "FASTRTPS_DEFAULT_PROFILES_FILE",
    ):
        env.pop(name, None)  # the installed launch file's own profile applies
    setup = str(workspace.install / "setup.bash")

    # ros2 launch finds the package's launch file as `ros2 pkg prefix` finds the package.
    found = subprocess.run(
        [
            "bash",
            "-c",
            f". {shlex.quote(ROS2CLI_ENV)} && . {shlex.quote(setup)} && "
            "ros2 pkg prefix ros_tracker",
        ],
        cwd=str(workspace.root),
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert found.returncode == 0, _report(found)
    assert os.path.realpath(found.stdout.strip()) == prefix, _report(found)
    launch_file = os.path.join(share, "launch", "track.launch.py")
    assert os.path.isfile(launch_file) and not os.path.islink(launch_file), launch_file

    # The installed tracker.yaml with lost_threshold 0, as test_launch.py does with the
    # checkout's: the target is never declared lost on the synthetic source.
    with open(os.path.join(share, "config", "tracker.yaml")) as handle:
        params = re.sub(r"lost_threshold: [0-9.]+", "lost_threshold: 0.0", handle.read())
    (tmp_path / "tracker.yaml").write_text(params)

    nodes = {}

    def record_nodes() -> None:
        nodes.update(_descendants(launch.pid))

    launch = ros2_launch(
        [
            "source:=synthetic",
            f"namespace:={namespace}",
            f"params_file:={tmp_path / 'tracker.yaml'}",
        ],
        env,
        setup_scripts=[setup],
        cwd=str(workspace.root),  # not the checkout
    )
    text = track_then_interrupt(launch, domain, namespace, while_tracking=record_nodes)
    assert launch.returncode == 0, text
    assert_nodes_ended_cleanly(text, 2)  # tracker, video_source

    # The nodes ran the install's executables, with the installed launch file's profile and
    # the install's interface libraries; nothing came from the checkout's sources.
    inside = os.path.join(install, "")
    checkout = [
        os.path.join(REPO, d, "") for d in ("ros_tracker", "launch", "interfaces", "config")
    ]
    for executable in ("tracker_node", "video_source_node"):
        path = os.path.join(prefix, "lib", "ros_tracker", executable)
        running = [
            n for n in nodes.values() if any(os.path.realpath(a) == path for a in n["argv"][:2])
        ]
        assert len(running) == 1, (executable, nodes, text)
        node = running[0]
        assert any(namespace in a for a in node["argv"]), node["argv"]  # this launch's
        if env.get("RMW_IMPLEMENTATION", "") in FAST_DDS_RMWS:
            profile = node["environ"].get("FASTDDS_DEFAULT_PROFILES_FILE", "")
            assert os.path.realpath(profile) == os.path.join(
                share, "config", "fastdds_large_images.xml"
            ), node["environ"]
        libraries = {os.path.realpath(m) for m in node["maps"] if "ros_tracker_interfaces" in m}
        assert all(m.startswith(inside) for m in libraries), libraries
        if executable == "tracker_node":  # serves SetTarget, publishes TrackerStatus
            assert libraries, sorted(node["maps"])
        from_checkout = [
            a for a in node["argv"] + sorted(node["maps"]) if a.startswith(tuple(checkout))
        ]
        assert not from_checkout, from_checkout
