"""ABTrack's per-block graphs: exported next to the pair, run with the bypass decided between
blocks, and equal to the eager network, which skips the same blocks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from ros_tracker.export.onnx import export_onnx, find_export, verify_export
from ros_tracker.export.stages import MANIFEST, STAGES_DIR
from ros_tracker.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from ros_tracker.runtime.backends.torch_backend import TorchBackend
from ros_tracker.zoo.registry import create_model

from .zoo_configs import tiny_overrides


@pytest.fixture(scope="module")
def abtrack():
    torch.manual_seed(0)
    network = create_model("abtrack_vit_tiny", **tiny_overrides("abtrack")).eval()
    # Decision 0 bypasses its block (p ~ 1), decision 1 runs it (p ~ 0), decision 2 stays
    # at the initial p = 0.5, which is not above the threshold: runs.
    with torch.no_grad():
        network.decisions[0].linear.bias.fill_(8.0)
        network.decisions[1].linear.bias.fill_(-8.0)
    return network


@pytest.fixture(scope="module")
def export(abtrack, tmp_path_factory):
    return export_onnx(abtrack, str(tmp_path_factory.mktemp("abtrack") / "ab"))


def test_per_block_graphs_are_exported(abtrack, export):
    folder = os.path.join(export.folder, STAGES_DIR)
    assert os.path.isfile(os.path.join(folder, MANIFEST))
    gated = len(abtrack.decisions)
    assert len(export.stages["gated"]) == gated == 3
    names = sorted(os.listdir(folder))
    assert "stem.onnx" in names and "head.onnx" in names and f"block_{gated - 1}.onnx" in names
    assert find_export(export.folder).stages == export.stages


def test_staged_backend_bypasses_blocks_and_matches_eager(abtrack, export):
    staged = OnnxRuntimeBackend(abtrack.card, export, device="cpu", threads=1)
    reference = TorchBackend(abtrack.card, abtrack, device="cpu")
    rng = np.random.default_rng(0)
    size = abtrack.card.template_size
    template = {"template": rng.standard_normal((1, 3, size, size), np.float32)}
    staged.set_template(template)
    reference.set_template(template)
    size = abtrack.card.search_size
    search = rng.standard_normal((1, 3, size, size), np.float32)
    got, want = staged.run_search(search), reference.run_search(search)
    assert staged.last_bypassed == [True, False, False]
    for name in abtrack.card.output_names:
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0)


def test_verify_covers_the_staged_path(abtrack, export):
    report = verify_export(abtrack, export, trials=1)
    assert {"stages:score_map", "stages:offset_map", "stages:size_map"} <= set(report.errors)
    assert report.ok, report.summary()


def test_re_export_without_stages_removes_old_ones(abtrack, tmp_path, tiny_network):
    folder = str(tmp_path / "same")
    export_onnx(abtrack, folder)
    export = export_onnx(tiny_network, folder)
    assert export.stages is None
    assert not os.path.exists(os.path.join(folder, STAGES_DIR))
