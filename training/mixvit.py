"""The dense corner-head teachers of MixFormerV2's dense-to-sparse distillation.

MixFormerV2 (Sec. 3.2.1, Sec. 4.1) distils a MixViT, whose dense convolutional corner head
predicts top-left and bottom-right corner maps, into the token-based student: by default a
MixViT-L with the pyramidal corner head for MixFormerV2-B ("we use MixViT-L as teacher for
training MixFormerV2-B by default"), and "a customized MixViT-B of plain corner head" for the
small model. The zoo has no such network (it is a training instrument, never deployed), so
it lives here: the same ViT as MixFormerV2 (patch embedding, sine-cosine initialised position
embeddings, pre-norm blocks with the asymmetric mixed attention of
``ros_tracker.zoo.mixformerv2.Block``) without prediction tokens, followed by a final
LayerNorm and a corner head on the search tokens laid out as a map:

* ``mixvit_teacher`` (MixViT-B, 12 layers, width 768): the plain head, two STARK corner
  towers (HiT's) at stride 16;
* ``mixvit_l_teacher`` (MixViT-L, 24 layers, width 1024, 16 heads): the pyramidal corner head
  (the authors' ``CORNER_UP``, head width 384), which upsamples twice with lateral paths from
  the ViT map to corner maps at stride 4 (72 x 72 on a 288 px search crop).

Parameter names of the backbone equal MixFormerV2's (``patch_embed``, ``pos_embed_*``,
``blocks.N``), so a student is initialised from the teacher by name, and the ViT/MAE loader
fills it. Its output follows the zoo's ``hit`` convention (corner logits, expectation over
cell centres), so the runtime's corner decoder tracks with it for validation.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ros_tracker.zoo.base import TrackerNetwork
from ros_tracker.zoo.card import ModelCard
from ros_tracker.zoo.hit import CornerTower
from ros_tracker.zoo.mixformerv2 import (
    Block,
    MixFormerV2Config,
    PatchEmbed,
    sincos_position_embedding,
)
from ros_tracker.zoo.registry import get_card

TEACHER_NAME = "mixvit_teacher"
LARGE_TEACHER_NAME = "mixvit_l_teacher"
HEADS = ("plain", "pyramid")


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def _upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="nearest")


class PyramidCornerTower(nn.Module):
    """One corner of MixViT's pyramidal corner head: a logit map at 4x the input resolution.

    Conv-BN-ReLU layers of widths C, C/2 at the ViT's stride 16; nearest 2x upsampling plus a
    lateral Conv-BN-ReLU of the input (to C/2), then C/4 at stride 8; again 2x plus a lateral
    (to C/4), then C/8 at stride 4 and a 1x1 logit. Two side outputs (the stride-16 and
    stride-8 features reduced to one channel by Conv-BN-ReLU stacks, upsampled 4x and 2x)
    are added to the logit.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        c = channels
        self.conv1 = _conv_bn_relu(in_channels, c)
        self.conv2 = _conv_bn_relu(c, c // 2)
        self.lateral8 = _conv_bn_relu(in_channels, c // 2)
        self.conv3 = _conv_bn_relu(c // 2, c // 4)
        self.lateral4 = _conv_bn_relu(in_channels, c // 4)
        self.conv4 = _conv_bn_relu(c // 4, c // 8)
        self.score = nn.Conv2d(c // 8, 1, 1)
        self.side16 = nn.Sequential(
            _conv_bn_relu(c // 2, c // 4), _conv_bn_relu(c // 4, c // 8), _conv_bn_relu(c // 8, 1)
        )
        self.side8 = nn.Sequential(_conv_bn_relu(c // 4, c // 8), _conv_bn_relu(c // 8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride16 = self.conv2(self.conv1(x))
        stride8 = self.conv3(_upsample(self.lateral8(x), 2) + _upsample(stride16, 2))
        stride4 = self.conv4(_upsample(self.lateral4(x), 4) + _upsample(stride8, 2))
        return (
            self.score(stride4)
            + _upsample(self.side16(stride16), 4)
            + _upsample(self.side8(stride8), 2)
        )


class MixViTCornerTeacher(TrackerNetwork):
    """encode_template(template) -> (template,); track_search(template, search) -> corners."""

    def __init__(
        self, card: ModelCard, config: MixFormerV2Config, head_channels: int, head: str = "plain"
    ) -> None:
        super().__init__(card)
        if head not in HEADS:
            raise ValueError(f"teacher head must be one of {HEADS}, got {head!r}")
        self.config = config
        self.head = head
        dim = config.embed_dim
        self.patch_embed = PatchEmbed(config.patch_size, dim)
        self.pos_embed_template = nn.Parameter(
            sincos_position_embedding(config.template_grid, dim)[None]
        )
        self.pos_embed_search = nn.Parameter(
            sincos_position_embedding(config.search_grid, dim)[None]
        )
        steps = max(config.depth - 1, 1)
        rates = [config.drop_path_rate * i / steps for i in range(config.depth)]
        self.blocks = nn.ModuleList([Block(config, rate) for rate in rates])
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        tower: Callable[[int, int], nn.Module] = (
            PyramidCornerTower if head == "pyramid" else CornerTower
        )
        self.top_left = tower(dim, head_channels)
        self.bottom_right = tower(dim, head_channels)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def vit_position_grids(self) -> Dict[str, Tuple[int, int]]:
        t, s = self.config.template_grid, self.config.search_grid
        return {"pos_embed_template": (t, t), "pos_embed_search": (s, s)}

    def forward_joint(
        self,
        template: torch.Tensor,
        online_template: torch.Tensor,
        search: torch.Tensor,
        return_layers: bool = False,
    ) -> Dict[str, Any]:
        templates = torch.cat(
            [self.patch_embed(t) + self.pos_embed_template for t in (template, online_template)],
            dim=1,
        )
        x = torch.cat([templates, self.patch_embed(search) + self.pos_embed_search], dim=1)
        layers = []
        for block in self.blocks:
            x = block.joint_step(x, templates.shape[1])
            layers.append(x)
        grid = self.config.search_grid
        tokens = self.norm(x[:, templates.shape[1] :])
        feature = tokens.transpose(1, 2).reshape(x.shape[0], -1, grid, grid)
        corners = torch.cat([self.top_left(feature), self.bottom_right(feature)], dim=1)
        outputs: Dict[str, Any] = {"corner_logits": corners}
        if return_layers:
            outputs["layer_tokens"] = layers
        return outputs

    def encode_template(self, *templates: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return (templates[0],)

    def track_search(self, *state_and_search: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        template, search = state_and_search
        return (self.forward_joint(template, template, search)["corner_logits"],)


# name -> (zoo card the ViT sizes start from, config changes, head, head width)
TEACHERS: Dict[str, Tuple[str, Dict[str, Any], str, int]] = {
    TEACHER_NAME: ("mixformerv2_teacher", {}, "plain", 256),
    # ViT-L/16 as the authors' large_patch16 (drop path 0.1); at the students' crop sizes
    # (128 / 288 px), so the frozen teacher sees the student's crops as they are.
    LARGE_TEACHER_NAME: (
        "mixformerv2_teacher",
        {"embed_dim": 1024, "depth": 24, "num_heads": 16, "drop_path_rate": 0.1},
        "pyramid",
        384,
    ),
}


def build_mixvit_teacher(name: str = TEACHER_NAME, **overrides: Any) -> MixViTCornerTeacher:
    """A teacher of ``TEACHERS`` with its sizes updated by overrides.

    ``head_channels`` sets the corner head's first width (256 plain, 384 pyramidal by
    default); every other key is a MixFormerV2Config field.
    """
    if name not in TEACHERS:
        raise KeyError(f"unknown teacher {name!r}; known: {', '.join(TEACHERS)}")
    base_name, changes, head, default_channels = TEACHERS[name]
    head_channels = int(overrides.pop("head_channels", default_channels))
    base = get_card(base_name)
    config = MixFormerV2Config(**dict(base.extra["config"], **dict(changes, **overrides)))
    upsampling = 4 if head == "pyramid" else 1
    card = base.replace(
        name=name,
        family="hit",  # corner-map outputs: decoded like HiT's
        head="corner" if head == "plain" else "pyramid_corner",
        backbone=f"ViT/16 ({config.depth} layers, width {config.embed_dim})",
        output_names=("corner_logits",),
        template_input_names=("template",),
        template_state_names=("template",),
        template_size=config.template_size,
        search_size=config.search_size,
        feature_size=config.search_grid * upsampling,
        online_template=False,
        template_update_interval=0,
        postprocess="corner_logits as in the hit family (soft-argmax over cell centres)",
        per_frame="the whole joint forward (a training instrument, not deployed)",
        weights=None,
        extra={"config": asdict(replace(config)), "head_channels": head_channels, "head": head},
    )
    return MixViTCornerTeacher(card, config, head_channels, head)
