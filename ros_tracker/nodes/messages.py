"""Building the node's outgoing messages from tracker results."""

from __future__ import annotations

from typing import Dict, Sequence

from ros_tracker_interfaces.msg import TrackerStatus
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, ObjectHypothesisWithPose


def detection_message(
    header: Header, box: Sequence[float], score: float, target_id: str, label: str
) -> Detection2D:
    """Detection2D for one frame: the source image's header, box centre and size in pixels."""
    x, y, w, h = (float(v) for v in box)
    detection = Detection2D()
    detection.header = header
    detection.bbox.center.position.x = x + w / 2.0
    detection.bbox.center.position.y = y + h / 2.0
    detection.bbox.center.theta = 0.0
    detection.bbox.size_x = w
    detection.bbox.size_y = h
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = label
    hypothesis.hypothesis.score = float(score)
    detection.results.append(hypothesis)
    detection.id = target_id
    return detection


def status_message(header: Header, fields: Dict[str, object]) -> TrackerStatus:
    """TrackerStatus from a dict of its field values (names as in the message)."""
    status = TrackerStatus()
    status.header = header
    status.state = int(fields["state"])
    status.target_id = str(fields["target_id"])
    status.score = float(fields["score"])
    status.fps = float(fields["fps"])
    status.latency_ms = float(fields["latency_ms"])
    status.frames_processed = int(fields["frames_processed"])
    status.frames_dropped = int(fields["frames_dropped"])
    status.backend = str(fields["backend"])
    status.model = str(fields["model"])
    return status
