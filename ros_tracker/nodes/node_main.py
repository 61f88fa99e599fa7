"""The shared ``main`` of the node executables: init, spin, a clean exit code, shutdown.

Ctrl-C in a terminal signals the whole process group, so under ``ros2 launch`` a node gets
SIGINT twice: once from the terminal and once from launch itself. rclpy's own handler shuts
the context down (which ends the spin) and then calls the Python handler that was installed
before ``rclpy.init``; Python's default one raises KeyboardInterrupt wherever the main thread
happens to be, the second time inside the clean-up. So a handler that only records the signal
is installed first: every SIGINT or SIGTERM ends the node through the same quiet path.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable, List, Optional, Tuple, Type

import rclpy
from rclpy.executors import ExternalShutdownException


class ShutdownSignals:
    """Records SIGINT / SIGTERM instead of raising; rclpy does the shutting down."""

    def __init__(self) -> None:
        self.received: List[int] = []
        self.requested = threading.Event()

    def __call__(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        self.requested.set()

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self)


def run_node(
    name: str,
    make_node: Callable[[], Any],
    spin: Callable[[Any], None],
    startup_errors: Tuple[Type[BaseException], ...],
    args: Optional[List[str]] = None,
) -> int:
    """Run one node until shutdown; 1 with a single fatal log line if it cannot start."""
    signals = ShutdownSignals()
    signals.install()
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = make_node()
        spin(node)
    except startup_errors as error:
        if not signals.requested.is_set():
            rclpy.logging.get_logger(name).fatal(str(error))
            code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if not signals.requested.is_set():
            raise
        # Stopped while starting: what failed, failed because the context is already gone.
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        # ros2 launch forwards its own SIGINT after the terminal's, late on a loaded machine:
        # while Python finalises, it gives signals that have a Python handler their default
        # action back (a late SIGINT then kills the node, "exit code -2"), but leaves ignored
        # ones ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    return code
