"""A bare rclpy publisher/subscriber pair in two processes: how many images arrive.

    python bench/dds_pair.py [--size 640x480] [--qos best_effort|reliable]
                             [--profile-in none|publisher|subscriber|both] [--seconds 8]

No tracker involved: this isolates the transport. ``--profile-in`` gives the package's Fast
DDS profile (config/fastdds_large_images.xml, a 16 MB shared-memory segment) to neither, one
or both processes; everything else is Fast DDS's default configuration, on loopback.
"""

from __future__ import annotations

import argparse
import array
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILE = os.path.join(REPO, "config", "fastdds_large_images.xml")


def side(role: str, qos_name: str, width: int, height: int, seconds: float) -> None:
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    reliability = (
        ReliabilityPolicy.RELIABLE if qos_name == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=2, reliability=reliability)
    rclpy.init()
    node = Node("dds_pair_" + role)
    if role == "pub":
        publisher = node.create_publisher(Image, "image", qos)
        msg = Image(width=width, height=height, encoding="bgr8", step=width * 3)
        msg.data = array.array("B", bytes(width * height * 3))
        deadline = time.time() + 20.0
        while publisher.get_subscription_count() == 0 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        count = int(seconds * 30)
        start = time.monotonic()
        for index in range(count):
            msg.header.stamp = node.get_clock().now().to_msg()
            publisher.publish(msg)
            time.sleep(max(0.0, start + (index + 1) / 30.0 - time.monotonic()))
        print(count, flush=True)
        time.sleep(1.0)
    else:
        received = [0]

        def count_one(_msg) -> None:
            received[0] += 1

        node.create_subscription(Image, "image", count_one, qos)
        end = time.time() + seconds + 6.0
        while time.time() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        print(received[0], flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("pub", "sub"), help=argparse.SUPPRESS)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--qos", default="best_effort", choices=("best_effort", "reliable"))
    parser.add_argument(
        "--profile-in", default="none", choices=("none", "publisher", "subscriber", "both")
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--domain", type=int, default=77)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if args.role:
        side(args.role, args.qos, width, height, args.seconds)
        return 0
    env = dict(
        os.environ, ROS_DOMAIN_ID=str(args.domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"
    )
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    with_profile = dict(env, FASTDDS_DEFAULT_PROFILES_FILE=PROFILE)
    sub_env = with_profile if args.profile_in in ("subscriber", "both") else env
    pub_env = with_profile if args.profile_in in ("publisher", "both") else env
    common = ["--size", args.size, "--qos", args.qos, "--seconds", str(args.seconds)]
    me = [sys.executable, os.path.abspath(__file__)]
    subscriber = subprocess.Popen(
        me + ["--role", "sub"] + common, env=sub_env, stdout=subprocess.PIPE, text=True
    )
    published = subprocess.run(
        me + ["--role", "pub"] + common, env=pub_env, capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    received = subscriber.communicate(timeout=60)[0].split()[-1]
    print(
        f"{args.size} {args.qos}, profile in {args.profile_in}: "
        f"{received} of {published} images received"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
