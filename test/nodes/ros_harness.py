"""Drive ros_tracker nodes from a test: real rclpy in this process, nodes in child processes.

Every harness gets its own DDS domain and stays on loopback, so tests never hear each other
or the network.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

VENV_BIN = os.path.dirname(sys.executable)
SERVICE_TIMEOUT_S = 20.0


def ros_environment(domain_id: int) -> Dict[str, str]:
    """Environment for a child node: loopback only, its own domain, logs under build/."""
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        FASTDDS_BUILTIN_TRANSPORTS="LARGE_DATA",
        RCUTILS_COLORIZED_OUTPUT="0",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("ROS_LOG_DIR", os.path.join(os.getcwd(), "build", "ros_log"))
    env.setdefault("AMENT_PREFIX_PATH", os.path.dirname(VENV_BIN))
    return env


def with_python_path(env: Dict[str, str], folder: Any) -> Dict[str, str]:
    """``env`` with ``folder`` first on PYTHONPATH: its modules (a package that shadows an
    installed one, a sitecustomize.py that Python runs at start-up) win in the child."""
    env = dict(env)
    env["PYTHONPATH"] = str(folder) + os.pathsep + env.get("PYTHONPATH", "")
    return env


_TAKEN_DOMAINS: Set[int] = set()


def fresh_domain_id() -> int:
    """A domain no other node of this test run has had: a module's shared node runs beside
    the tests' own, and one that shares its domain hears the other's topics."""
    # 101..230: clear of the domains `make` picks (1..100) and within Fast DDS's port range.
    free = [d for d in range(101, 231) if d not in _TAKEN_DOMAINS]
    if not free:
        raise RuntimeError("all 130 test domains are taken: split the test run")
    domain = random.choice(free)
    _TAKEN_DOMAINS.add(domain)
    return domain


class NodeProcess:
    """A node executable running as a child process, its output collected."""

    @staticmethod
    def executable_path(executable: str) -> str:
        """A console script of the environment the tests run in."""
        return os.path.join(VENV_BIN, executable)

    def __init__(self, executable: str, args: Sequence[str], env: Dict[str, str]) -> None:
        self.command = [self.executable_path(executable), *args]
        self.process = subprocess.Popen(
            self.command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_output(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return True
            if self.process.poll() is not None:
                self._reader.join(timeout=2.0)
                return text in self.output
            time.sleep(0.05)
        return False

    def stop(self, interrupts: int = 1) -> int:
        """SIGINT (``interrupts`` times: Ctrl-C under ros2 launch sends two), then wait."""
        if self.process.poll() is None:
            for _ in range(interrupts):
                self.process.send_signal(2)  # SIGINT: the nodes' normal shutdown path
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=2.0)
        return self.process.returncode


class Collector:
    """Messages of one topic, in arrival order, with waiting helpers."""

    def __init__(self) -> None:
        self.messages: List[Any] = []
        self._lock = threading.Lock()

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self.messages.append(msg)

    def snapshot(self) -> List[Any]:
        with self._lock:
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def wait_for(self, predicate: Callable[[List[Any]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.02)
        return predicate(self.snapshot())


class Driver:
    """A test-side rclpy node in its own context, spun in a background thread."""

    def __init__(self, domain_id: int, name: str = "test_driver") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down while spinning
                if self.context.ok():
                    raise

    def publisher(self, msg_type: Any, topic: str, reliable: bool = True, depth: int = 5) -> Any:
        return self.node.create_publisher(msg_type, topic, self._qos(reliable, depth))

    def collect(
        self, msg_type: Any, topic: str, depth: int = 50, reliable: bool = True
    ) -> Collector:
        collector = Collector()
        self.node.create_subscription(msg_type, topic, collector, self._qos(reliable, depth))
        return collector

    @staticmethod
    def _qos(reliable: bool, depth: int) -> QoSProfile:
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = SERVICE_TIMEOUT_S):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available")
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _: done.set())
            if not done.wait(timeout):
                raise TimeoutError(f"service {name} did not answer within {timeout} s")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def wait_for_subscriber(self, publisher: Any, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if publisher.get_subscription_count() > 0:
                return True
            time.sleep(0.05)
        return False

    def now(self) -> Any:
        return self.node.get_clock().now()

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)


def parameter_args(params: Optional[Dict[str, Any]]) -> List[str]:
    """``--ros-args -p name:=value ...`` for a node executable."""
    args = ["--ros-args"]
    for name, value in (params or {}).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            text = "[" + ",".join(str(v) for v in value) + "]"
        else:
            text = str(value)
        args += ["-p", f"{name}:={text}"]
    return args
