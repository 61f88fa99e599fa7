"""Fixtures of the deployment tests: a small test network, independent of the zoo families.

``TinyTestTracker`` exists only for these tests. It has the pieces that matter for export
(convolution + BatchNorm, LayerNorm, attention with softmax, two template inputs optional) and
follows the HiT output convention, so the runtime can decode it.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch import nn

from ros_tracker.zoo.base import TrackerNetwork
from ros_tracker.zoo.card import ModelCard

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_card(name: str = "tiny_test_tracker", templates: int = 1) -> ModelCard:
    inputs = ("template",) if templates == 1 else ("template", "online_template")
    return ModelCard(
        name=name,
        family="hit",
        paper="test network",
        backbone="two-layer test transformer",
        template_size=32,
        search_size=64,
        template_factor=2.0,
        search_factor=4.0,
        head="corner",
        output_names=("corner_logits",),
        template_input_names=inputs,
        template_state_names=("template",),
        feature_size=8,
        postprocess="softmax per corner map, expectation over cell centres",
    )


class TinyTestTracker(TrackerNetwork):
    """Patch embedding, one attention block over template + search tokens, a corner head."""

    def __init__(self, card: ModelCard, dim: int = 16) -> None:
        super().__init__(card)
        self.embed = nn.Sequential(nn.Conv2d(3, dim, 8, stride=8), nn.BatchNorm2d(dim))
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.head = nn.Conv2d(dim, 2, 1)
        # Non-trivial BatchNorm statistics, so folding it into the graph is exercised.
        with torch.no_grad():
            self.embed[1].running_mean.uniform_(-0.5, 0.5)
            self.embed[1].running_var.uniform_(0.5, 2.0)

    def _tokens(self, image: torch.Tensor) -> torch.Tensor:
        return self.embed(image).flatten(2).transpose(1, 2)

    def encode_template(self, *templates: torch.Tensor):
        tokens = torch.cat([self._tokens(t) for t in templates], dim=1)
        return (self.norm(tokens),)

    def track_search(self, template: torch.Tensor, search: torch.Tensor):
        search_tokens = self._tokens(search)
        tokens = self.norm(torch.cat([template, search_tokens], dim=1))
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        attention = (q @ k.transpose(1, 2) / q.shape[-1] ** 0.5).softmax(-1)
        tokens = tokens + self.proj(attention @ v)
        side = self.card.feature_size
        grid = tokens[:, -side * side :].transpose(1, 2).reshape(-1, tokens.shape[-1], side, side)
        return (self.head(grid),)


@pytest.fixture
def tiny_network() -> TinyTestTracker:
    torch.manual_seed(0)
    return TinyTestTracker(tiny_card()).eval()


@pytest.fixture
def tiny_network_two_templates() -> TinyTestTracker:
    torch.manual_seed(1)
    return TinyTestTracker(tiny_card("tiny_two_templates", templates=2)).eval()


@pytest.fixture
def subprocess_env():
    """Environment for running the command line from the source tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHON"] = sys.executable
    return env


@pytest.fixture
def cli_env(subprocess_env, tmp_path):
    """Environment of a ros-tracker subprocess: its own home and engine cache."""
    env = dict(subprocess_env)
    env["HOME"] = str(tmp_path / "home")
    env["ROS_TRACKER_ENGINE_CACHE"] = str(tmp_path / "engines")
    return env


@pytest.fixture
def tiny_checkpoint(tmp_path):
    from .cli_helpers import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path)
