"""HiT: cards, shapes, gradients, dual-image bias, counts vs the paper, checkpoints, timm
LeViT loading, ONNX."""

from __future__ import annotations

from typing import Dict

import pytest
import torch
from torch import nn

from ros_tracker.zoo import create_model, get_card
from ros_tracker.zoo.checkpoints import CheckpointMismatch, load_weights, save_weights
from ros_tracker.zoo.counting import count_params
from ros_tracker.zoo.hit import LEVIT_SPECS, TINY_TEST_OVERRIDES, paper_complexity
from ros_tracker.zoo.hit_pretrained import load_timm_levit, timm_key_to_hit
from ros_tracker.zoo.levit import JointLayout, LeViTSpec, fold_batchnorm

FULL = ("hit_base", "hit_small", "hit_tiny")
PAPER_TABLE_1 = {"hit_base": (42.14, 4.34), "hit_small": (11.03, 1.13), "hit_tiny": (9.59, 0.99)}


def tiny(seed: int = 0, **extra) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("hit_tiny", **dict(TINY_TEST_OVERRIDES, **extra))


def randomize_batchnorm(net: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN scales and statistics, so that every residual branch contributes
    (LeViT zero-initialises the last BN scale of each branch)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                module.bias.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))


def test_cards_follow_the_paper_and_the_authors_tracker():
    for name, levit in zip(FULL, ("LeViT-384", "LeViT-128", "LeViT-128S")):
        card = get_card(name)
        assert card.family == "hit" and card.backbone == levit and card.head == "corner"
        assert (card.template_size, card.search_size, card.feature_size) == (128, 256, 16)
        assert (card.template_factor, card.search_factor) == (2.0, 4.0)
        assert not card.hann_window and not card.online_template
        assert card.template_update_interval == 0
        assert card.output_names == ("corner_logits",)
        assert card.template_state_names == ("template_tokens",)
        assert (card.reference_params, card.reference_macs) == PAPER_TABLE_1[name]
        assert "10 px" in card.postprocess and "softmax" in card.postprocess
        assert card.per_frame and card.counting_note


@pytest.mark.parametrize("name", FULL)
def test_full_configs_shapes_and_counts_match_table_1(name):
    torch.manual_seed(0)
    net = create_model(name).eval()
    spec = LEVIT_SPECS[net.card.backbone]
    inputs = net.example_inputs()
    with torch.no_grad():
        (template_tokens,) = net.encode_template(inputs["template"])
        (logits,) = net.track_search(template_tokens, inputs["search"])
    assert template_tokens.shape == (1, 64, spec.embed_dims[0])
    assert logits.shape == (1, 2, 16, 16)
    params, macs = paper_complexity(net)
    ref_params, ref_macs = PAPER_TABLE_1[name]
    assert abs(params / 1e6 - ref_params) / ref_params < 0.03, params
    assert abs(macs / 1e9 - ref_macs) / ref_macs < 0.03, macs
    # The shipped (unfolded) network is within the same margin.
    assert abs(count_params(net) / 1e6 - ref_params) / ref_params < 0.03


def test_tiny_override_updates_the_card_and_rejects_typos():
    net = tiny()
    assert (net.card.template_size, net.card.search_size, net.card.feature_size) == (64, 128, 8)
    assert net.config.backbone.embed_dims == (16, 24, 32)
    with pytest.raises(TypeError, match="num_heads"):
        create_model("hit_tiny", num_head=(1, 1, 1))


def test_forward_backward_reaches_every_parameter():
    net = tiny().train()
    randomize_batchnorm(net)
    inputs = net.example_inputs(batch=2)
    out = net(inputs["template"], inputs["search"])
    assert out["corner_logits"].shape == (2, 2, 8, 8)
    target = torch.randn_like(out["corner_logits"])
    loss = (out["corner_logits"] * target).mean()
    loss.backward()
    # A bias right before a train-mode BatchNorm is cancelled by the mean subtraction.
    before_bn = {"bridge.up_min.deconv.bias", "bridge.up_mid.deconv.bias"}
    before_bn |= {n for n, _ in net.named_parameters() if n.startswith("head.") and ".0.bias" in n}
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        if name not in before_bn:
            assert parameter.grad.abs().sum() > 0, name


def test_split_equals_forward_and_template_acts_in_every_frame():
    net = tiny().eval()
    randomize_batchnorm(net)
    generator = torch.Generator().manual_seed(1)
    template = torch.randn(2, 3, 64, 64, generator=generator)
    other_template = torch.randn(2, 3, 64, 64, generator=generator)
    search = torch.randn(2, 3, 128, 128, generator=generator)
    with torch.no_grad():
        joint = net(template, search)["corner_logits"]
        (state,) = net.encode_template(template)
        (split,) = net.track_search(state, search)
        stem_only = net.backbone.stem(template)
        search_tokens = net.backbone.stem(search)
        features = net.backbone(torch.cat([search_tokens, state], dim=1))
        other_state = net.encode_template(other_template)[0]
        other_features = net.backbone(torch.cat([search_tokens, other_state], dim=1))
    assert torch.allclose(joint, split)
    assert torch.equal(state, stem_only)  # the template half is the patch embedding only
    # One-stream: the search features of every stage depend on the template, every frame
    # (a network that kept the images apart would give exactly the same search features).
    for layout, mine, theirs in zip(net.backbone.layouts, features, other_features):
        count = layout.sides[0] ** 2
        assert (mine[:, :count] - theirs[:, :count]).abs().max() > 1e-5


def test_dual_image_layout_is_diagonal_and_bias_reads_abs_offsets():
    layout = JointLayout((4, 2))
    positions = layout.plane_positions()
    assert positions.shape == (20, 2)
    assert positions[0].tolist() == [0, 0] and positions[15].tolist() == [3, 3]
    assert positions[16].tolist() == [4, 4] and positions[19].tolist() == [5, 5]
    search_rows = set(positions[:16, 0].tolist())
    template_rows = set(positions[16:, 0].tolist())
    assert not search_rows & template_rows  # unique rows (and columns) per image

    shrunk, kept = layout.shrink(2)
    assert shrunk.sides == (2, 1)
    assert kept.tolist() == [0, 2, 8, 10, 16]

    net = tiny()
    attn = net.backbone.stages[0].blocks[0].attn
    with torch.no_grad():
        attn.bias.table.copy_(torch.arange(attn.bias.table.numel()).view_as(attn.bias.table))
    bias = attn.bias()
    extent = 8 + 4  # search side 8, template side 4 in the tiny config
    assert attn.bias.table.shape[1:] == (extent, extent)
    # search token (row 1, col 2) vs template token (0, 3) at plane position (8, 11)
    query, key = 1 * 8 + 2, 64 + 0 * 4 + 3
    dy, dx = abs(1 - 8), abs(2 - 11)
    for head in range(bias.shape[0]):
        assert bias[head, query, key] == attn.bias.table[head, dy, dx]
        assert bias[head, key, query] == attn.bias.table[head, dy, dx]

    shrink = net.backbone.stages[1].shrink.attn
    # First search query sits at plane (0, 0); the template's first query at (8, 8).
    first_template_query = 16
    assert shrink.query_index[first_template_query].item() == 64
    assert torch.equal(shrink.bias.index[first_template_query, 64], torch.tensor(0))


def test_fold_batchnorm_keeps_outputs():
    net = tiny().eval()
    randomize_batchnorm(net)
    inputs = net.example_inputs()
    with torch.no_grad():
        before = net(inputs["template"], inputs["search"])["corner_logits"]
        fold_batchnorm(net.backbone)
        after = net(inputs["template"], inputs["search"])["corner_logits"]
    assert not any(isinstance(m, nn.BatchNorm1d) for m in net.backbone.modules())
    assert torch.allclose(before, after, atol=1e-5)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    source = tiny(seed=0).eval()
    randomize_batchnorm(source)
    path = str(tmp_path / "hit.safetensors")
    save_weights(source, path)
    fresh = tiny(seed=1).eval()
    inputs = source.example_inputs()
    with torch.no_grad():
        expected = source(inputs["template"], inputs["search"])["corner_logits"]
        assert not torch.allclose(
            fresh(inputs["template"], inputs["search"])["corner_logits"], expected
        )
    load_weights(fresh, path)
    with torch.no_grad():
        got = fresh(inputs["template"], inputs["search"])["corner_logits"]
    assert torch.equal(got, expected)

    wider_head = tiny(head_channels=32)
    with pytest.raises(CheckpointMismatch) as caught:
        load_weights(wider_head, path)
    assert "head.top_left.layers.0.0.weight" in str(caught.value)
    assert any("head.top_left.layers.0.0.weight" in s for s in caught.value.shapes)

    deeper = tiny(depths=(2, 1, 1))
    with pytest.raises(CheckpointMismatch) as caught:
        load_weights(deeper, path)
    assert "backbone.stages.0.blocks.1.attn.qkv.linear.weight" in caught.value.missing


# -- timm LeViT checkpoints ----------------------------------------------------------------


def timm_levit_state(spec: LeViTSpec, image_side: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A LeViT state dict with timm's key names and shapes (random values, distinct tensors)."""
    generator = torch.Generator().manual_seed(seed)
    state: Dict[str, torch.Tensor] = {}

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    def batchnorm(prefix: str, n: int) -> None:
        state[prefix + ".weight"] = rand(n)
        state[prefix + ".bias"] = rand(n)
        state[prefix + ".running_mean"] = rand(n)
        state[prefix + ".running_var"] = rand(n).abs() + 0.5
        state[prefix + ".num_batches_tracked"] = torch.tensor(7)

    def linear_norm(prefix: str, fan_in: int, fan_out: int) -> None:
        state[prefix + ".linear.weight"] = rand(fan_out, fan_in)
        batchnorm(prefix + ".bn", fan_out)

    dims, kd = spec.embed_dims, spec.key_dim
    widths = [3, dims[0] // 8, dims[0] // 4, dims[0] // 2, dims[0]]
    for i in range(1, 5):
        state[f"stem.conv{i}.linear.weight"] = rand(widths[i], widths[i - 1], 3, 3)
        batchnorm(f"stem.conv{i}.bn", widths[i])
    side = image_side // 16
    for i in range(3):
        if i > 0:
            prefix = f"stages.{i}.downsample."
            heads, value = dims[i - 1] // kd, 4 * kd
            linear_norm(prefix + "attn_downsample.kv", dims[i - 1], heads * (kd + value))
            linear_norm(prefix + "attn_downsample.q.ln", dims[i - 1], heads * kd)
            linear_norm(prefix + "attn_downsample.proj.ln", heads * value, dims[i])
            state[prefix + "attn_downsample.attention_biases"] = rand(heads, side * side)
            linear_norm(prefix + "mlp.ln1", dims[i], 2 * dims[i])
            linear_norm(prefix + "mlp.ln2", 2 * dims[i], dims[i])
            side = (side - 1) // 2 + 1
        for j in range(spec.depths[i]):
            prefix = f"stages.{i}.blocks.{j}."
            heads = spec.num_heads[i]
            linear_norm(prefix + "attn.qkv", dims[i], heads * 4 * kd)
            linear_norm(prefix + "attn.proj.ln", heads * 2 * kd, dims[i])
            state[prefix + "attn.attention_biases"] = rand(heads, side * side)
            state[prefix + "attn.attention_bias_idxs"] = torch.zeros(
                side * side, side * side
            ).long()
            linear_norm(prefix + "mlp.ln1", dims[i], 2 * dims[i])
            linear_norm(prefix + "mlp.ln2", 2 * dims[i], dims[i])
    for head in ("head", "head_dist"):
        batchnorm(head + ".bn", dims[2])
        state[head + ".linear.weight"] = rand(10, dims[2])
        state[head + ".linear.bias"] = rand(10)
    return state


def test_timm_levit_loader_places_every_backbone_tensor():
    net = tiny()
    spec = net.config.backbone
    checkpoint = timm_levit_state(spec, image_side=112)  # LeViT grids 7, 4, 2
    head_before = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("head.")}
    report = load_timm_levit(net, checkpoint)

    stem, stages = net.backbone.stem, net.backbone.stages
    shrink1, shrink2 = stages[1].shrink, stages[2].shrink
    block00, block20 = stages[0].blocks[0], stages[2].blocks[0]
    # Hand-written placements, one per kind of tensor.
    down1, down2 = "stages.1.downsample.", "stages.2.downsample."
    expected_places = {
        "stem.conv1.linear.weight": stem.conv1.conv.weight,
        "stem.conv4.bn.running_var": stem.conv4.bn.running_var,
        down1 + "attn_downsample.kv.linear.weight": shrink1.attn.kv.linear.weight,
        down1 + "attn_downsample.q.ln.linear.weight": shrink1.attn.q.linear.weight,
        down2 + "attn_downsample.proj.ln.bn.bias": shrink2.attn.proj.bn.bias,
        down2 + "mlp.ln2.linear.weight": shrink2.mlp.ln2.linear.weight,
        "stages.0.blocks.0.attn.qkv.linear.weight": block00.attn.qkv.linear.weight,
        "stages.0.blocks.0.attn.proj.ln.bn.weight": block00.attn.proj.bn.weight,
        "stages.2.blocks.0.mlp.ln1.bn.running_mean": block20.mlp.ln1.bn.running_mean,
    }
    for key, tensor in expected_places.items():
        assert torch.equal(tensor, checkpoint[key]), key

    own = net.state_dict()
    mapped = set()
    for key, value in checkpoint.items():
        ours = timm_key_to_hit(key)
        if not ours or ours.endswith("bias.table"):
            continue
        assert torch.equal(own[ours], value), key
        mapped.add(ours)
    backbone_keys = {k for k in own if k.startswith("backbone.") and not k.endswith("bias.table")}
    assert mapped == backbone_keys == set(report.loaded)
    # The authors' choice: dual-image bias tables start from zero, classifiers are dropped.
    assert all(not own[k].any() for k in report.bias_tables)
    assert len(report.bias_tables) == sum(k.endswith("bias.table") for k in own)
    assert "head.linear.weight" in report.dropped and "head_dist.bn.weight" in report.dropped
    for key, value in head_before.items():
        assert torch.equal(own[key], value), key  # the tracking head is untouched


def test_timm_levit_loader_can_copy_overlapping_bias_offsets():
    net = tiny()
    checkpoint = timm_levit_state(net.config.backbone, image_side=112)
    report = load_timm_levit(net, checkpoint, attention_biases="overlap")
    assert not report.bias_tables
    table = net.backbone.stages[0].blocks[0].attn.bias.table  # plane 12x12, LeViT grid 7x7
    source = checkpoint["stages.0.blocks.0.attn.attention_biases"].view(-1, 7, 7)
    assert torch.equal(table[:, :7, :7], source)
    assert not table[:, 7:, :].any() and not table[:, :, 7:].any()
    shrink_table = net.backbone.stages[1].shrink.attn.bias.table
    shrink_source = checkpoint["stages.1.downsample.attn_downsample.attention_biases"]
    assert torch.equal(shrink_table[:, :7, :7], shrink_source.view(-1, 7, 7))


def test_timm_levit_loader_rejects_what_does_not_fit(tmp_path):
    net = tiny()
    good = timm_levit_state(net.config.backbone, image_side=112)

    unknown = dict(good, **{"stages.0.blocks.0.attn.extra.weight": torch.zeros(1)})
    with pytest.raises(CheckpointMismatch) as caught:
        load_timm_levit(net, unknown)
    assert "stages.0.blocks.0.attn.extra.weight" in caught.value.unexpected

    incomplete = {k: v for k, v in good.items() if not k.startswith("stages.2.blocks.0.mlp.ln2")}
    with pytest.raises(CheckpointMismatch) as caught:
        load_timm_levit(net, incomplete)
    assert "backbone.stages.2.blocks.0.mlp.ln2.linear.weight" in caught.value.missing

    wider = timm_levit_state(LeViTSpec((32, 24, 32), 4, (2, 3, 4), (1, 1, 1)), image_side=112)
    with pytest.raises(CheckpointMismatch) as caught:
        load_timm_levit(net, wider)
    assert any("stem.conv4.linear.weight" in s for s in caught.value.shapes)

    from safetensors.torch import save_file

    path = str(tmp_path / "levit.safetensors")
    save_file(good, path)
    assert load_timm_levit(tiny(seed=3), path).loaded


# -- ONNX ----------------------------------------------------------------------------------


def test_onnx_export_both_halves_match_pytorch(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from ros_tracker.export.onnx import export_onnx, graph_opset, list_inputs, verify_export

    net = tiny().eval()
    randomize_batchnorm(net)
    export = export_onnx(net, str(tmp_path / "hit"))
    assert graph_opset(export.template_path) == 17 == graph_opset(export.search_path)
    assert list_inputs(export.template_path) == ["template"]
    assert list_inputs(export.search_path) == ["template_tokens", "search"]
    report = verify_export(net, export, trials=2, tolerance=1e-4)
    assert report.ok, report.summary()


def test_onnx_export_of_a_full_size_entry(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnx

    from ros_tracker.export.onnx import export_onnx

    torch.manual_seed(0)
    export = export_onnx(create_model("hit_tiny"), str(tmp_path / "hit_tiny"))
    graph = onnx.load(export.search_path).graph
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["search"] == [1, 3, 256, 256] and dims["template_tokens"] == [1, 64, 128]
    (output,) = graph.output
    assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [1, 2, 16, 16]
