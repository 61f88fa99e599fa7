"""Soak run of the tracker node: 30 Hz camera stream, set_target / reset every few seconds and
malformed frames mixed in, for a long time. Not a test: it reports figures.

    python bench/soak.py [--minutes 30] [--size 640x480] [--out bench/SOAK.md]

``tracker_node`` (the shipped default model, default parameters) runs in its own process;
this process stands for the camera driver and the operator: it publishes synthetic bgr8
frames at 30 Hz (reliable, as REP-2003 drivers do), one malformed frame in 100 (a wrong
encoding or a truncated buffer, alternately), calls ``~/set_target`` every 5 s (newest
image, the scene's true box) and ``~/reset`` every 13 s, and samples every 10 s: the node's
resident memory (/proc), its status (latency, fps, processed and dropped frames) and its
diagnostics (received and malformed frames). At the end it sends SIGINT twice, as Ctrl-C under
``ros2 launch`` does, and records how the node ended.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
RATE_HZ = 30.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--model", default="hcat_mobilenetv2")
    parser.add_argument("--domain", type=int, default=211)
    parser.add_argument("--out", help="write the summary (markdown) here")
    parser.add_argument("--samples", help="write every sample (JSON lines) here")
    args = parser.parse_args(argv)

    env = dict(
        os.environ, ROS_DOMAIN_ID=str(args.domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"
    )
    env.setdefault("ROS_LOG_DIR", os.path.join(REPO, "build", "ros_log"))
    env.setdefault(
        "FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(REPO, "config", "fastdds_large_images.xml")
    )
    os.environ.update(ROS_DOMAIN_ID=str(args.domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    node_log = tempfile.NamedTemporaryFile("w+", prefix="soak_node_", suffix=".log", delete=False)
    tracker = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "tracker_node"),
            "--ros-args",
            "-p",
            f"model:={args.model}",
            "-p",
            f"engine_cache_dir:={os.path.join(tempfile.gettempdir(), 'ros_tracker_bench')}",
        ],
        env=env,
        stdout=node_log,
        stderr=subprocess.STDOUT,
    )

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from ros_tracker_interfaces.msg import TrackerStatus
    from ros_tracker_interfaces.srv import SetTarget
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger

    from ros_tracker.nodes.image_conversion import bgr_to_image_msg
    from ros_tracker.sources.synthetic import SyntheticScene

    width, height = (int(v) for v in args.size.split("x"))
    frames = list(SyntheticScene(width=width, height=height, frames=300, seed=0))
    messages = [bgr_to_image_msg(frame.image) for frame in frames]
    rclpy.init()
    node = Node("soak_driver")
    reliable = QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE
    )
    images = node.create_publisher(Image, "image", reliable)
    latest: Dict[str, object] = {}
    node.create_subscription(
        TrackerStatus, "tracker/status", lambda m: latest.__setitem__("status", m), 10
    )
    node.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: latest.__setitem__("diagnostics", m), 10
    )
    set_target = node.create_client(SetTarget, "tracker/set_target")
    reset = node.create_client(Trigger, "tracker/reset")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    calls: Dict[str, List[float]] = {"set_target": [], "reset": []}
    failures: Dict[str, int] = {"set_target": 0, "reset": 0}
    lock = threading.Lock()

    def call(name: str, client, request) -> None:
        started = time.monotonic()
        future = client.call_async(request)

        def done(result) -> None:
            answer = result.result()
            with lock:
                if answer is not None and answer.success:
                    calls[name].append((time.monotonic() - started) * 1e3)
                elif name == "set_target":
                    failures[name] += 1  # e.g. superseded, or the newest frame was malformed

        future.add_done_callback(done)

    deadline = time.monotonic() + 120.0
    while not set_target.service_is_ready() and time.monotonic() < deadline:
        time.sleep(0.1)
    samples: List[dict] = []
    start = time.monotonic()
    end = start + args.minutes * 60.0
    published = malformed_sent = 0
    next_target, next_reset, next_sample = start + 2.0, start + 13.0, start + 10.0
    while time.monotonic() < end:
        now = time.monotonic()
        index = published % len(messages)
        msg = messages[index]
        if published % 100 == 99:  # one malformed frame in 100
            bad = bgr_to_image_msg(frames[index].image)
            if malformed_sent % 2:
                bad.encoding = "yuv9000"
            else:
                bad.data = bad.data[: len(bad.data) // 2]
            msg = bad
            malformed_sent += 1
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = "camera"
        images.publish(msg)
        published += 1
        if now >= next_target:
            request = SetTarget.Request()
            x, y, w, h = frames[index].box
            request.bbox.center.position.x, request.bbox.center.position.y = x + w / 2, y + h / 2
            request.bbox.size_x, request.bbox.size_y = w, h
            call("set_target", set_target, request)
            next_target += 5.0
        if now >= next_reset:
            call("reset", reset, Trigger.Request())
            next_reset += 13.0
        if now >= next_sample:
            status = latest.get("status")
            diagnostics = latest.get("diagnostics")
            values = {}
            if diagnostics is not None:
                for entry in diagnostics.status:
                    values.update({kv.key: kv.value for kv in entry.values})
            sample = {
                "t_s": round(now - start, 1),
                "rss_mb": round(rss_mb(tracker.pid), 1),
                "published": published,
                "latency_ms": getattr(status, "latency_ms", None),
                "fps": getattr(status, "fps", None),
                "processed": getattr(status, "frames_processed", None),
                "dropped": getattr(status, "frames_dropped", None),
                "received": int(values.get("frames_received", 0)),
                "malformed": int(values.get("frames_malformed", 0)),
                "load": round(os.getloadavg()[0], 2),
            }
            samples.append(sample)
            print(json.dumps(sample), file=sys.stderr, flush=True)
            next_sample += 10.0
        pause = start + published / RATE_HZ - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    time.sleep(2.0)  # the last answers
    executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    rclpy.try_shutdown()

    tracker.send_signal(2)
    tracker.send_signal(2)  # Ctrl-C under ros2 launch: the terminal's and launch's own
    try:
        exit_code: Optional[int] = tracker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        tracker.kill()
        exit_code = None
    node_log.seek(0)
    output = node_log.read()
    summary = summarise(samples, calls, failures, malformed_sent, exit_code, output, args)
    print(summary)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(summary + "\n")
    if args.samples:
        with open(args.samples, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(s) + "\n" for s in samples)
    return 0


def window(samples: List[dict], first: float, last: float) -> dict:
    """Figures over the samples with first <= t < last (rates from the counters' deltas)."""
    chosen = [s for s in samples if first <= s["t_s"] < last and s["processed"] is not None]
    if len(chosen) < 2:
        return {}
    a, b = chosen[0], chosen[-1]
    span = b["t_s"] - a["t_s"]
    latencies = [s["latency_ms"] for s in chosen if s["latency_ms"]]
    return {
        "rss_mb": (min(s["rss_mb"] for s in chosen), max(s["rss_mb"] for s in chosen)),
        "latency_ms": statistics.median(latencies) if latencies else float("nan"),
        "published_hz": (b["published"] - a["published"]) / span,
        "received_hz": (b["received"] - a["received"]) / span,
        "processed_hz": (b["processed"] - a["processed"]) / span,
        "dropped_hz": (b["dropped"] - a["dropped"]) / span,
        "malformed": b["malformed"] - a["malformed"],
        "load": statistics.median(s["load"] for s in chosen),
    }


def summarise(samples, calls, failures, malformed_sent, exit_code, output, args) -> str:
    total = samples[-1]["t_s"] if samples else 0.0
    rows = []
    for label, first, last in (
        ("first 5 min", 0.0, 300.0),
        ("last 5 min", total - 300.0, total + 1.0),
    ):
        figures = window(samples, first, last)
        if not figures:
            continue
        rows.append(
            f"| {label} | {figures['rss_mb'][0]:.0f} - {figures['rss_mb'][1]:.0f} "
            f"| {figures['latency_ms']:.0f} | {figures['published_hz']:.1f} "
            f"| {figures['received_hz']:.1f} | {figures['processed_hz']:.1f} "
            f"| {figures['dropped_hz']:.1f} | {figures['malformed']} | {figures['load']:.1f} |"
        )
    answered = {name: len(values) for name, values in calls.items()}
    medians = {
        name: statistics.median(values) if values else float("nan")
        for name, values in calls.items()
    }
    tracebacks = output.count("Traceback")
    lines = [
        f"{args.minutes:g} minutes, {args.size} bgr8 at {RATE_HZ:g} Hz, model {args.model}; "
        f"{len(samples)} samples, one every 10 s",
        "",
        "| window | node RSS MB (min - max) | latency median ms | published Hz | received Hz "
        "| processed Hz | dropped Hz | malformed counted | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"- set_target: {answered['set_target']} answered with success (median "
        f"{medians['set_target']:.0f} ms), {failures['set_target']} refused or superseded; "
        f"reset: {answered['reset']} answered (median {medians['reset']:.0f} ms)",
        f"- malformed frames sent: {malformed_sent}; counted by the node: "
        f"{samples[-1]['malformed'] if samples else 0}",
        f"- end: two SIGINTs; exit code {exit_code}; tracebacks in the node's output: "
        f"{tracebacks}; worker errors: {output.count('worker error')}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
