"""``ros-tracker run``: video_source and tracker as real rclpy nodes in one process.

The pipeline works where ``ros2 launch`` is not installed, and its topics are visible to any
other ROS 2 process on the same domain. The target is set through the tracker's own
SetTarget service on the first frame (the source's ground truth, or ``--box``); with
``--record`` the processed frames are written to a video with the boxes drawn, and where the
source has ground truth the run is scored against it.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import traceback
from typing import List, Optional

import numpy as np

from ros_tracker.cli.common import add_inference_arguments, parse_box
from ros_tracker.nodes.parameters import DEFAULT_MODEL

# A pipeline stops once the source has finished and no status came for this long.
QUIET_AFTER_SOURCE_S = 3.0
FIRST_IMAGE_TIMEOUT_S = 30.0
DISCOVERY_TIMEOUT_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default="synthetic",
        help="synthetic | a video file | an image folder | camera:N (default synthetic)",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"default {DEFAULT_MODEL}")
    parser.add_argument("--record", metavar="FILE", help="write the annotated video (.mp4)")
    parser.add_argument(
        "--frames", type=int, default=300, help="frames to publish (0: until the source ends)"
    )
    parser.add_argument("--box", help="initial box x,y,w,h (default: the source's ground truth)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="publish rate in Hz (0: the source's own)"
    )
    parser.add_argument(
        "--lost-threshold", type=float, default=None, help="override lost_threshold"
    )
    add_inference_arguments(parser, engine_cache_default=os.path.expanduser("~/.cache/ros_tracker"))


def _parameters(values: dict) -> List:
    from rclpy.parameter import Parameter

    return [Parameter(name, value=value) for name, value in values.items()]


def run(args: argparse.Namespace) -> int:
    # Large images over best-effort UDP lose fragments; this Fast DDS preset avoids it.
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from ros_tracker.nodes.run_monitor import RunMonitor
    from ros_tracker.nodes.tracker_node import StartupError, TrackerNode
    from ros_tracker.nodes.video_source_node import VideoSourceNode

    box = parse_box(args.box) if args.box else None
    rclpy.init()
    nodes = []
    executor = MultiThreadedExecutor(num_threads=4)
    failures: List[BaseException] = []
    spinner = threading.Thread(target=_spin, args=(executor, failures), daemon=True)
    try:
        source_params = {"source": args.source, "loop": False, "rate": float(args.rate)}
        if args.frames:
            source_params["max_frames"] = int(args.frames)
            if args.source.strip().lower() == "synthetic":
                source_params["frames"] = int(args.frames)
        tracker_params = {
            "model": args.model,
            "backend": args.backend,
            "device": args.device,
            "precision": args.precision,
            "threads": args.threads or 0,
            "engine_cache_dir": args.engine_cache_dir,
            "box_policy": args.box_policy,
            # The source here publishes reliably (REP-2003): subscribe so from the start
            # rather than re-subscribe once it is discovered (image_qos auto), which replaced
            # a subscription under the spinning executor.
            "image_qos": "reliable",
        }
        if args.lost_threshold is not None:
            tracker_params["lost_threshold"] = float(args.lost_threshold)
        print(f"loading {args.model} ...", file=sys.stderr)
        tracker = TrackerNode(parameter_overrides=_parameters(tracker_params))
        nodes.append(tracker)
        source = VideoSourceNode(parameter_overrides=_parameters(source_params))
        nodes.append(source)
        monitor = RunMonitor(record_path=args.record, record_fps=args.rate or source.source.fps)
        nodes.append(monitor)
        executor.add_node(tracker)
        executor.add_node(monitor)
        spinner.start()
        # The source spins last, once the tracker and the monitor hear it.
        deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
        while source.subscriber_count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the ground-truth topic is matched right after the images
        executor.add_node(source)
        return _drive(monitor, source, box, args, spinner, failures)
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def _spin(executor, failures: List[BaseException]) -> None:
    """executor.spin(), keeping what ended it: a callback that raised stops every node's
    callbacks, and the run must end then rather than wait for frames that never come."""
    try:
        executor.spin()
    except Exception as error:  # reported by _drive with the traceback
        traceback.print_exc()
        failures.append(error)


def _drive(monitor, source, box, args, spinner, failures) -> int:
    from ros_tracker_interfaces.srv import SetTarget

    deadline = time.monotonic() + FIRST_IMAGE_TIMEOUT_S
    while monitor.first_image is None:
        if time.monotonic() > deadline:
            print("error: no image from the source", file=sys.stderr)
            return 1
        time.sleep(0.02)
    first = monitor.first_image
    if box is None:
        time.sleep(0.2)  # ground truth is published right after its image
        box = monitor.truth_for(first.header)
        if box is None:
            print("error: the source has no ground truth; give --box x,y,w,h", file=sys.stderr)
            return 1
    request = SetTarget.Request()
    request.header = first.header
    request.bbox.center.position.x = box[0] + box[2] / 2.0
    request.bbox.center.position.y = box[1] + box[3] / 2.0
    request.bbox.size_x, request.bbox.size_y = float(box[2]), float(box[3])
    client = monitor.create_client(SetTarget, "tracker/set_target")
    if not client.wait_for_service(timeout_sec=10.0):
        print("error: tracker/set_target is not available", file=sys.stderr)
        return 1
    response = _call(client, request)
    if response is None or not response.success:
        reason = response.message if response is not None else "no answer"
        print(f"error: set_target failed: {reason}", file=sys.stderr)
        return 1
    print(f"set_target: {response.message}", file=sys.stderr)
    if not _wait_until_done(monitor, source, spinner):
        reason = f"{type(failures[0]).__name__}: {failures[0]}" if failures else "it stopped"
        print(f"error: the nodes stopped before the source finished ({reason})", file=sys.stderr)
        return 1
    monitor.flush()
    _report(args, monitor, source)
    return 0


def _call(client, request, timeout: float = 30.0):
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return future.result() if done.wait(timeout) else None


def _wait_until_done(monitor, source, spinner: threading.Thread) -> bool:
    """Until the source has finished and the tracker has gone quiet (True), or the executor
    that runs the nodes has stopped (False)."""
    last_count, last_change = -1, time.monotonic()
    while True:
        time.sleep(0.1)
        if not spinner.is_alive():
            return False
        status = monitor.latest_status
        count = status.frames_processed if status is not None else 0
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if source.finished and time.monotonic() - last_change > QUIET_AFTER_SOURCE_S:
            return True


def _report(args, monitor, source) -> None:
    status = monitor.latest_status
    processed = status.frames_processed if status else 0
    dropped = status.frames_dropped if status else 0
    lines = [
        f"model {args.model} on {status.backend if status else '?'}",
        f"frames published {source.published}, processed {processed}, dropped {dropped}",
        f"tracker rate {status.fps if status else 0:.1f} fps, "
        f"latency median {status.latency_ms if status else 0:.1f} ms",
    ]
    predicted, truth = monitor.predictions_and_truth()
    valid = ~np.any(np.isnan(truth), axis=1)
    if valid.any():
        from ros_tracker.evaluation.metrics import PROTOCOLS, overlaps, score_sequence, summarize

        protocol = PROTOCOLS["uav123"]  # frames without ground truth (out of view) left out
        score = score_sequence("run", predicted, truth, protocol)
        summary = summarize([score], protocol)
        mean_iou = float(overlaps(predicted[valid], truth[valid]).mean())
        lines.append(
            f"accuracy against the source's ground truth over {int(valid.sum())} processed "
            f"frames: success AUC {summary.auc:.3f}, precision@20px {summary.precision:.3f}, "
            f"mean IoU {mean_iou:.3f}"
        )
    if args.record:
        lines.append(f"annotated video: {args.record} ({monitor.frames_written} frames)")
    print("\n".join(lines))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ros-tracker run")
    add_arguments(parser)
    return run(parser.parse_args(argv))
