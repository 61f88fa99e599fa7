"""``image_qos: auto`` re-subscribes under the spinning executor while images stream in.

The node replaces its image subscription (best effort <-> reliable) from a timer of its
MultiThreadedExecutor whenever the publishers' reliability changes: the subscription being
destroyed may be in another thread's wait set or callback at that moment. A robot's camera
that appears, restarts or changes QoS after the node started takes exactly this path, so it
is driven here many times over, at camera rate, and the node must keep tracking.
"""

from __future__ import annotations

import threading

from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from test_tracker_node import (
    TrackerUnderTest,
    subscription_reliability,
    wait_until,
)
from vision_msgs.msg import Detection2D

from ros_tracker.nodes.image_conversion import bgr_to_image_msg
from ros_tracker.sources.synthetic import SyntheticScene

SWITCHES = 8


def test_node_survives_repeated_resubscription_at_camera_rate(tmp_path):
    scene = list(SyntheticScene(width=320, height=240, frames=40, seed=5))
    under_test = TrackerUnderTest({"image_qos": "auto"}, tmp_path / "engine_cache")
    stop = threading.Event()
    try:
        under_test.wait_ready()
        driver = under_test.driver

        def stream():
            index = 0
            while not stop.is_set():
                msg = bgr_to_image_msg(scene[index % len(scene)].image)
                under_test.publish_msg(msg)
                index += 1
                stop.wait(1.0 / 30.0)

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()

        def reliability():
            return subscription_reliability(driver, "/image")

        for _ in range(SWITCHES):
            best_effort = driver.publisher(Image, "/image", reliable=False)
            try:
                assert wait_until(lambda: reliability() == {ReliabilityPolicy.BEST_EFFORT}, 20.0), (
                    under_test.process.output
                )
            finally:
                driver.node.destroy_publisher(best_effort)
            assert wait_until(lambda: reliability() == {ReliabilityPolicy.RELIABLE}, 20.0), (
                under_test.process.output
            )
            assert under_test.process.process.poll() is None, under_test.process.output

        # Still serving and tracking after all the switches.
        detections = driver.collect(Detection2D, "/tracker/detection")
        frame = scene[0]
        assert under_test.set_target(frame.box).success, under_test.process.output
        assert detections.wait_for(lambda got: len(got) >= 10, 30.0), under_test.process.output
    finally:
        stop.set()
        code = under_test.close(interrupts=2)
    assert code == 0, under_test.process.output
    assert "Traceback" not in under_test.process.output, under_test.process.output
    assert under_test.process.output.count("image subscription on /image now") >= 2 * SWITCHES
    # auto follows the publishers: no incompatible-QoS event handlers on its subscription
    assert "incompatible QoS" not in under_test.process.output
