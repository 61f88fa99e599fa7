"""The shared ``main`` of the node executables: init, spin, a clean exit code, shutdown."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Type

import rclpy
from rclpy.executors import ExternalShutdownException


def run_node(
    name: str,
    make_node: Callable[[], Any],
    spin: Callable[[Any], None],
    startup_errors: Tuple[Type[BaseException], ...],
    args: Optional[List[str]] = None,
) -> int:
    """Run one node until shutdown; 1 with a single fatal log line if it cannot start."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        spin(node)
    except startup_errors as error:
        rclpy.logging.get_logger(name).fatal(str(error))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
