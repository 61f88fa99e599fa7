"""ament_python package ros_tracker: nodes, tracker runtime, networks, export and CLI."""

import glob
import os

from setuptools import find_packages, setup

PACKAGE = "ros_tracker"


def share_files(pattern):
    return [path for path in sorted(glob.glob(pattern)) if os.path.isfile(path)]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    package_data={PACKAGE: ["sources/assets/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", share_files("launch/*.py")),
        ("share/" + PACKAGE + "/config", share_files("config/*")),
        ("share/" + PACKAGE + "/models", share_files("models/*")),
    ]
    + [
        # exported ONNX folders of the shipped models (models/<name>/template.onnx, search.onnx)
        ("share/" + PACKAGE + "/" + folder, share_files(folder + "/*"))
        for folder in sorted(p.rstrip("/") for p in glob.glob("models/*/"))
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="ros_tracker developers",
    maintainer_email="dev@ros-tracker.invalid",
    description="Single-object tracking for ROS 2 with efficient transformer trackers.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "tracker_node = ros_tracker.nodes.entry:tracker",
            "video_source_node = ros_tracker.nodes.entry:video_source",
            "ros-tracker = ros_tracker.cli:main",
        ],
    },
)
