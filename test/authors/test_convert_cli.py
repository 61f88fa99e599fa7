"""``ros-tracker convert`` on release files written by the tests, and the converted weights
running where zoo weights run: export --verify, track, eval, bench (real subprocesses)."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ros_tracker.zoo.checkpoints import read_metadata

from . import parity_fixtures as fx
from .release_files import RunsCommand, write_hostile, write_release

REPO = fx.REPO


def ros_tracker(args, env, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "ros_tracker.cli"] + [str(a) for a in args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    values = dict(os.environ)
    values["PYTHONPATH"] = REPO + os.pathsep + values.get("PYTHONPATH", "")
    values["HOME"] = str(home)
    values["ROS_TRACKER_ENGINE_CACHE"] = str(home / "engines")
    values.setdefault("OMP_NUM_THREADS", "2")
    return values


@pytest.fixture(scope="module")
def converted(tmp_path_factory, env):
    """model -> weights converted by the command line from a test-written release file."""
    made = {}

    def get(model: str, trainer: str) -> str:
        if model not in made:
            folder = tmp_path_factory.mktemp("convert_" + model)
            release = write_release(str(folder / "release.pth"), fx.authors_state(model), trainer)
            out = folder / f"{model}.safetensors"
            result = ros_tracker(["convert", model, release, "--out", out], env)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == str(out)  # stdout: the path alone
            assert "inert placeholders" in result.stderr and "licence:" in result.stderr
            made[model] = str(out)
        return made[model]

    return get


def test_convert_writes_weights_with_the_converted_card(converted):
    path = converted("hcat", "pytracking")
    metadata = read_metadata(path)
    card = json.loads(metadata["card"])
    assert card["name"] == "hcat" and card["window_influence"] == 0.42
    assert card["crop_style"] == "siamfc" and card["reported_score"] == "windowed"
    assert "GPL-3.0" in card["weights_license"] and "doubled" in card["extra"]["forms"]
    assert json.loads(metadata["overrides"]) == {"sparse_residual": "doubled"}
    assert metadata["converted_from"] == "release.pth"


def test_converted_weights_pass_export_verify(converted, env, tmp_path):
    path = converted("mixformerv2_s", "stark")
    out = tmp_path / "exported"
    result = ros_tracker(["export", path, "--format", "onnx", "--out", out, "--verify"], env)
    assert result.returncode == 0, result.stderr
    assert " ok" in result.stderr


def otb_sequence(root, frames: int = 4):
    """One OTB-layout sequence: a textured patch moving over a smooth background."""
    rng = np.random.default_rng(3)
    background = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (9, 9), 3)
    patch = rng.integers(0, 255, (30, 24, 3), dtype=np.uint8)
    images = root / "Seq0" / "img"
    images.mkdir(parents=True)
    lines = []
    for i in range(frames):
        image = background.copy()
        x, y = 40 + 4 * i, 30 + 2 * i
        image[y : y + 30, x : x + 24] = patch
        cv2.imwrite(str(images / f"{i + 1:04d}.jpg"), image)
        lines.append(f"{x}\t{y}\t24\t30")
    (root / "Seq0" / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return root


def test_converted_weights_track_eval_and_bench(converted, env, tmp_path):
    path = converted("hcat", "pytracking")
    boxes = tmp_path / "boxes.txt"
    result = ros_tracker(
        ["track", path, "--synthetic", "--frames", 4, "--out", boxes, "--backend", "torch"], env
    )
    assert result.returncode == 0, result.stderr
    lines = boxes.read_text().split()
    assert len(lines) == 4 and all(len(line.split(",")) == 4 for line in lines)
    dataset = otb_sequence(tmp_path / "otb")
    results = tmp_path / "results"
    result = ros_tracker(
        ["eval", path, "--dataset", dataset, "--format", "otb", "--out", results, "--json"], env
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "hcat" and report["sequences"] == 1
    assert 0.0 <= report["metrics"]["auc"] <= 1.0
    assert len((results / "Seq0.txt").read_text().split()) == 4  # one box per frame
    result = ros_tracker(["bench", path, "--frames", 2, "--warmup", 1, "--json"], env)
    assert result.returncode == 0, result.stderr
    bench = json.loads(result.stdout)
    assert bench["model"] == "hcat" and bench["frames"] == 2


def test_an_incomplete_checkpoint_is_refused_naming_every_missing_key(env, tmp_path):
    out = tmp_path / "hcat.safetensors"
    sample = fx.format_sample("hcat")  # the release pickle format with 3 tensors of net
    result = ros_tracker(["convert", "hcat", sample, "--out", out], env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    keys = [row[0] for row in fx.manifest("hcat")["state_dict"]["keys"]]
    present = fx.manifest("hcat")["release_checkpoint"]["format_sample"]["net_keys"]
    # Every tensor but the sample's three; BatchNorm batch counters are optional.
    expected = [k for k in keys if k not in present and not k.endswith("num_batches_tracked")]
    assert f"missing from the checkpoint ({len(expected)})" in result.stderr
    for key in (
        "featurefusion_network.decoder.norm.weight",
        "backbone.0.body.layer3.1.conv2.weight",
        "class_embed.layers.2.bias",
    ):
        assert key in result.stderr
    assert not out.exists()


def test_a_checkpoint_of_another_variant_names_its_unused_keys(env, tmp_path):
    """An N = 2 release given as hcat_n1: the second layer's tensors have no place."""
    release = write_release(str(tmp_path / "n2.pth"), fx.authors_state("hcat"), "pytracking")
    result = ros_tracker(["convert", "hcat_n1", release, "--out", tmp_path / "n1.safetensors"], env)
    assert result.returncode == 1
    assert "in the checkpoint but unused (24)" in result.stderr
    assert "featurefusion_network.encoder.layers.1.multihead_attn1.in_proj_weight" in result.stderr


def test_a_checkpoint_that_runs_code_is_refused_by_the_command(env, tmp_path):
    marker = tmp_path / "executed"
    evil = write_hostile(str(tmp_path / "evil.pth.tar"), RunsCommand(f"touch {marker}"), {})
    out = tmp_path / "evil.safetensors"
    result = ros_tracker(["convert", "hit_tiny", evil, "--out", out], env)
    assert result.returncode == 1
    assert "refused" in result.stderr and "system" in result.stderr
    assert not marker.exists() and not out.exists()


def test_convert_arguments_are_checked(env, tmp_path):
    result = ros_tracker(["convert", "hit_tinny", "x.pth"], env)
    assert result.returncode == 2 and "did you mean 'hit_tiny'" in result.stderr
    result = ros_tracker(["convert", "abtrack_vit_tiny", "x.pth"], env)
    assert result.returncode == 2 and "hit_base" in result.stderr
    release = write_release(str(tmp_path / "r.pth"), {}, "stark")
    result = ros_tracker(["convert", "hit_tiny", release, "--out", tmp_path / "w.pt"], env)
    assert result.returncode == 1 and "must name a .safetensors file" in result.stderr


def test_converted_weights_run_in_the_tracker_node(converted, env, tmp_path):
    """``model:=<converted>.safetensors`` in the real tracker node (``ros-tracker run`` starts
    it and video_source as rclpy nodes, over loopback in a domain of its own)."""
    path = converted("hcat", "pytracking")
    ros_env = dict(env)
    ros_env.update(
        ROS_DOMAIN_ID=str(random.randint(101, 230)),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        ROS_LOG_DIR=str(tmp_path / "ros_log"),
    )
    ros_env.setdefault("AMENT_PREFIX_PATH", os.path.dirname(os.path.dirname(sys.executable)))
    result = ros_tracker(
        ["run", "--model", path, "--frames", 12, "--backend", "torch", "--rate", 10], ros_env
    )
    assert result.returncode == 0, result.stderr
    assert f"model {path} on torch-cpu" in result.stdout
    processed = int(re.search(r"processed (\d+)", result.stdout).group(1))
    assert processed > 0
