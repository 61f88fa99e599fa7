"""Forward the runtime's Python logging (logger "ros_tracker") to a node's rclpy logger, so
backend fallbacks and model warnings show up in the node's log with its name and level."""

from __future__ import annotations

import logging
from typing import Any


class RclpyHandler(logging.Handler):
    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            self._ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._ros_logger.warning(text)
        elif record.levelno >= logging.INFO:
            self._ros_logger.info(text)
        else:
            self._ros_logger.debug(text)


def forward_runtime_logs(ros_logger: Any) -> RclpyHandler:
    """Attach a handler to the "ros_tracker" logger; returns it so it can be removed."""
    handler = RclpyHandler(ros_logger)
    package_logger = logging.getLogger("ros_tracker")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False
    return handler
