"""Camera-rate images from another process: how many reach the tracker node, how many it tracks.

    python bench/image_rates.py [--seconds 30] [--sizes 640x480,1280x720]
                                [--model M] [--out bench/IMAGE_RATES.md]

For each size and configuration this starts ``tracker_node`` as its own process and, in a
second process, a publisher of synthetic bgr8 frames at 30 Hz (this script, run again with
``--publish``: it stands for a camera driver, so it gets no Fast DDS profile unless the
configuration says so). The publisher sets a target through ``~/set_target``, then counts:

* published: frames it published within the window;
* received: frames the node got (``frames_processed + frames_dropped`` of its statuses:
  every received frame is either tracked or replaced by a newer one while tracking);
* processed: frames the node tracked.

The window runs from the first status after a warm-up to the last one before the end; both
ends are the statuses' image stamps, so the counts need no clock agreement. Configurations
(publisher QoS, the node's ``image_qos``, who has the package's Fast DDS profile
``config/fastdds_large_images.xml``):

* ``before``: best-effort publisher, ``image_qos: sensor_data``, no profile (the old defaults);
* ``before-reliable-camera``: reliable publisher (REP-2003 drivers), ``sensor_data``;
* ``after``: reliable publisher without the profile, ``image_qos: auto``, profile in the node
  (what ``track.launch.py`` does with a camera driver in its own process);
* ``after-best-effort-camera``: best-effort publisher without the profile, ``auto``;
* ``after-best-effort-profiled``: best-effort publisher with the profile (``video_source``
  started by the launch file), ``auto``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
PROFILE = os.path.join(REPO, "config", "fastdds_large_images.xml")
RATE_HZ = 30.0

from bench_machine import cpu_model  # noqa: E402

CONFIGS: Dict[str, Dict[str, object]] = {
    "before": {"publisher": "best_effort", "image_qos": "sensor_data", "profile": ()},
    "before-reliable-camera": {
        "publisher": "reliable",
        "image_qos": "sensor_data",
        "profile": (),
    },
    "after": {"publisher": "reliable", "image_qos": "auto", "profile": ("node",)},
    "after-best-effort-camera": {
        "publisher": "best_effort",
        "image_qos": "auto",
        "profile": ("node",),
    },
    "after-best-effort-profiled": {
        "publisher": "best_effort",
        "image_qos": "auto",
        "profile": ("node", "publisher"),
    },
}


def base_environment(domain: int) -> Dict[str, str]:
    env = dict(os.environ)
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    env.update(
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RCUTILS_COLORIZED_OUTPUT="0",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("ROS_LOG_DIR", os.path.join(REPO, "build", "ros_log"))
    env.setdefault("AMENT_PREFIX_PATH", os.path.dirname(os.path.dirname(sys.executable)))
    return env


# ---------------------------------------------------------------------------- publisher side
def publish(args: argparse.Namespace) -> int:
    """The camera stand-in: publish, set a target, report counts as one JSON line."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from ros_tracker_interfaces.msg import TrackerStatus
    from ros_tracker_interfaces.srv import SetTarget
    from sensor_msgs.msg import Image

    from ros_tracker.nodes.image_conversion import bgr_to_image_msg
    from ros_tracker.sources.synthetic import SyntheticScene

    width, height = (int(v) for v in args.size.split("x"))
    frames = list(SyntheticScene(width=width, height=height, frames=60, seed=0))
    messages = [bgr_to_image_msg(frame.image) for frame in frames]
    rclpy.init()
    node = Node("bench_camera")
    reliability = (
        ReliabilityPolicy.RELIABLE if args.qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=reliability)
    images = node.create_publisher(Image, "image", qos)
    statuses: List = []
    node.create_subscription(
        TrackerStatus,
        "tracker/status",
        statuses.append,
        QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100),
    )
    client = node.create_client(SetTarget, "tracker/set_target")
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    published: Dict[int, int] = {}  # stamp (ns) -> frames published up to and with it
    count = 0
    deadline = time.monotonic() + 60.0
    while images.get_subscription_count() == 0 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    start = time.monotonic()
    target_set = False
    pending = None
    window_start: Optional[float] = None
    end_at = None
    while True:
        now = time.monotonic()
        index = count % len(messages)
        msg = messages[index]
        stamp = node.get_clock().now()
        msg.header.stamp = stamp.to_msg()
        msg.header.frame_id = "camera"
        images.publish(msg)
        count += 1
        published[stamp.nanoseconds] = count
        if not target_set and now - start > 2.0:
            if pending is None and client.service_is_ready():
                request = SetTarget.Request()
                x, y, w, h = frames[index].box
                request.bbox.center.position.x = x + w / 2.0
                request.bbox.center.position.y = y + h / 2.0
                request.bbox.size_x, request.bbox.size_y = w, h
                pending = client.call_async(request)
            elif pending is not None and pending.done():
                target_set = bool(pending.result() and pending.result().success)
                pending = None
                if target_set:
                    window_start = now + args.warmup
                    end_at = window_start + args.seconds
        if end_at is not None and now > end_at:
            break
        if now - start > args.seconds + args.warmup + 60.0:
            break
        next_time = start + count / RATE_HZ
        while True:
            remaining = next_time - time.monotonic()
            if remaining <= 0:
                break
            executor.spin_once(timeout_sec=min(remaining, 0.01))
    settle = time.monotonic() + 1.0
    while time.monotonic() < settle:
        executor.spin_once(timeout_sec=0.05)
    result = {"published_total": count, "target_set": target_set}
    if window_start is not None:
        tracked = [
            s
            for s in statuses
            if s.state != 0 and (s.header.stamp.sec * 10**9 + s.header.stamp.nanosec) in published
        ]
        stamps = [s.header.stamp.sec * 10**9 + s.header.stamp.nanosec for s in tracked]
        first_ns = node.get_clock().now().nanoseconds - int((time.monotonic() - window_start) * 1e9)
        inside = [(ns, s) for ns, s in zip(stamps, tracked) if ns >= first_ns]
        if len(inside) >= 2:
            (a_ns, a), (b_ns, b) = inside[0], inside[-1]
            span = (b_ns - a_ns) / 1e9
            result.update(
                window_s=span,
                published=published[b_ns] - published[a_ns],
                received=(b.frames_processed + b.frames_dropped)
                - (a.frames_processed + a.frames_dropped),
                processed=b.frames_processed - a.frames_processed,
                latency_ms=b.latency_ms,
                backend=b.backend,
            )
    print(json.dumps(result), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ---------------------------------------------------------------------------- orchestration
def run_one(config: str, size: str, args: argparse.Namespace, domain: int) -> dict:
    spec = CONFIGS[config]
    env = base_environment(domain)
    node_env = dict(env)
    publisher_env = dict(env)
    if "node" in spec["profile"]:
        node_env["FASTDDS_DEFAULT_PROFILES_FILE"] = PROFILE
    if "publisher" in spec["profile"]:
        publisher_env["FASTDDS_DEFAULT_PROFILES_FILE"] = PROFILE
    tracker = subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "tracker_node"),
            "--ros-args",
            "-p",
            f"model:={args.model}",
            "-p",
            f"image_qos:={spec['image_qos']}",
            "-p",
            f"engine_cache_dir:={args.engine_cache_dir}",
            "-p",
            "lost_threshold:=0.0",
            "-p",
            "publish_debug_image:=false",
        ],
        env=node_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: List[str] = []
    try:
        for line in tracker.stdout:  # wait for "ready:"
            lines.append(line.rstrip())
            if "ready:" in line:
                break
        load_before = os.getloadavg()[0]
        result = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--publish"]
            + ["--size", size, "--qos", str(spec["publisher"])]
            + ["--seconds", str(args.seconds), "--warmup", str(args.warmup)],
            env=publisher_env,
            capture_output=True,
            text=True,
            timeout=args.seconds + args.warmup + 180,
        )
        load_after = os.getloadavg()[0]
        if result.returncode != 0:
            raise RuntimeError(f"publisher failed: {result.stderr[-2000:]}")
        row = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        tracker.send_signal(2)
        try:
            tracker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            tracker.kill()
    row.update(config=config, size=size, load_before=load_before, load_after=load_after)
    row.update(spec={k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()})
    return row


def table(rows: List[dict]) -> str:
    out = [
        "| size | configuration | publisher | node image_qos | profile in | window s "
        "| published | received | received % | received Hz | processed Hz | load |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        spec = row["spec"]
        if "window_s" not in row:
            out.append(
                f"| {row['size']} | {row['config']} | {spec['publisher']} | {spec['image_qos']} "
                f"| {', '.join(spec['profile']) or '-'} | - | {row['published_total']} | "
                f"no target could be set (no frame arrived) | - | - | - | "
                f"{row['load_before']:.1f}/{row['load_after']:.1f} |"
            )
            continue
        span = row["window_s"]
        out.append(
            f"| {row['size']} | {row['config']} | {spec['publisher']} | {spec['image_qos']} "
            f"| {', '.join(spec['profile']) or '-'} | {span:.1f} | {row['published']} "
            f"| {row['received']} | {100.0 * row['received'] / max(1, row['published']):.1f} "
            f"| {row['received'] / span:.1f} | {row['processed'] / span:.1f} "
            f"| {row['load_before']:.1f}/{row['load_after']:.1f} |"
        )
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="640x480", help=argparse.SUPPRESS)
    parser.add_argument("--qos", default="best_effort", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per row")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--model", default="hcat_mobilenetv2")
    parser.add_argument(
        "--engine-cache-dir", default=os.path.join(tempfile.gettempdir(), "ros_tracker_bench")
    )
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    args = parser.parse_args(argv)
    if args.publish:
        return publish(args)
    rows = []
    for size in args.sizes.split(","):
        for offset, config in enumerate(args.configs.split(",")):
            domain = 150 + (len(rows) + offset) % 60
            row = run_one(config, size, args, domain)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    text = table(rows)
    header = (
        f"{cpu_model()}, {os.cpu_count()} cores; model {args.model}; {args.seconds:g} s window "
        f"per row at {RATE_HZ:g} Hz; load = 1-minute load average before/after the row\n\n"
    )
    print(header + text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(header + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
