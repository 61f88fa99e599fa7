"""The dense corner-head teacher of MixFormerV2's dense-to-sparse distillation.

MixFormerV2 (Sec. 3.2.1) distils a MixViT, whose dense convolutional corner head predicts
top-left and bottom-right corner maps, into the token-based student; the paper uses a "MixViT
with plain corner head" for the small model. The zoo has no such network (it is a training
instrument, never deployed), so it lives here: the same ViT as MixFormerV2 (patch embedding,
sine-cosine initialised position embeddings, pre-norm blocks with the asymmetric mixed
attention of ``ros_tracker.zoo.mixformerv2.Block``) without prediction tokens, followed by a
final LayerNorm and two STARK-style corner towers (the conv towers of HiT's corner head) on
the search tokens laid out as a map.

Parameter names of the backbone equal MixFormerV2's (``patch_embed``, ``pos_embed_*``,
``blocks.N``), so a student is initialised from the teacher by name, and the ViT/MAE loader
fills it. Its output follows the zoo's ``hit`` convention (corner logits, expectation over
cell centres), so the runtime's corner decoder tracks with it for validation.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, Dict, Tuple

import torch
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


class MixViTCornerTeacher(TrackerNetwork):
    """encode_template(template) -> (template,); track_search(template, search) -> corners."""

    def __init__(self, card: ModelCard, config: MixFormerV2Config, head_channels: int) -> None:
        super().__init__(card)
        self.config = config
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
        self.top_left = CornerTower(dim, head_channels)
        self.bottom_right = CornerTower(dim, head_channels)
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


def build_mixvit_teacher(**overrides: Any) -> MixViTCornerTeacher:
    """The teacher with MixFormerV2-teacher sizes (12 layers) updated by overrides.

    ``head_channels`` (default 256) sets the corner towers' first width; every other key is a
    MixFormerV2Config field.
    """
    head_channels = int(overrides.pop("head_channels", 256))
    base = get_card("mixformerv2_teacher")
    config = MixFormerV2Config(**dict(base.extra["config"], **overrides))
    card = base.replace(
        name=TEACHER_NAME,
        family="hit",  # corner-map outputs: decoded like HiT's
        head="corner",
        output_names=("corner_logits",),
        template_input_names=("template",),
        template_state_names=("template",),
        template_size=config.template_size,
        search_size=config.search_size,
        feature_size=config.search_grid,
        online_template=False,
        template_update_interval=0,
        postprocess="corner_logits as in the hit family (soft-argmax over cell centres)",
        per_frame="the whole joint forward (a training instrument, not deployed)",
        weights=None,
        extra={"config": asdict(replace(config)), "head_channels": head_channels},
    )
    return MixViTCornerTeacher(card, config, head_channels)
