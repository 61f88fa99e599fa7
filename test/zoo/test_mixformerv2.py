"""MixFormerV2: cards, shapes, gradients, the asymmetric attention and the template/search
split, checkpoints, the MAE/timm ViT loader and ONNX export."""

from __future__ import annotations

from typing import Dict

import pytest
import torch

from ros_tracker.zoo import create_model, get_card
from ros_tracker.zoo.checkpoints import CheckpointMismatch, load_weights, save_weights
from ros_tracker.zoo.counting import count_params
from ros_tracker.zoo.mixformerv2 import TINY_OVERRIDES, decode_box_logits
from ros_tracker.zoo.vit_pretrained import interpolate_position_embedding, load_vit_pretrained

NAMES = ("mixformerv2_b", "mixformerv2_s", "mixformerv2_teacher")
TEMPLATE_TOKENS = 2 * (32 // 16) ** 2  # tiny config: two 2x2 template grids


def tiny(seed: int = 0, **extra):
    torch.manual_seed(seed)
    return create_model("mixformerv2_b", **dict(TINY_OVERRIDES, **extra))


def inputs(net, batch: int = 2, seed: int = 1) -> Dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return net.example_inputs(batch)


def joint(net, x: Dict[str, torch.Tensor], **kwargs):
    return net.forward_joint(x["template"], x["online_template"], x["search"], **kwargs)


# -- cards and full configurations ------------------------------------------------------------


def test_cards_follow_the_paper_and_the_authors_tracker():
    sizes = {"mixformerv2_b": (128, 288), "mixformerv2_s": (112, 224)}
    sizes["mixformerv2_teacher"] = (128, 288)
    for name in NAMES:
        card = get_card(name)
        assert card.family == "mixformerv2"
        assert (card.template_size, card.search_size) == sizes[name]
        assert (card.template_factor, card.search_factor) == (2.0, 4.5)
        assert not card.hann_window and card.online_template
        assert 10 <= card.template_update_interval <= 200
        assert card.template_update_threshold == 0.5
        assert card.template_input_names == ("template", "online_template")
        assert card.template_state_names == ("template_keys", "template_values")
        assert card.output_names == ("box_logits", "score_logit")
        assert card.extra["bins"] == 96 and "(i + 0.5) / bins" in card.postprocess
        assert card.per_frame and card.counting_note
    assert get_card("mixformerv2_b").reference_macs == 22.5
    assert get_card("mixformerv2_s").extra["config"]["mlp_ratio"] == 1.0


@pytest.mark.parametrize(
    "name,depth,params",
    [("mixformerv2_b", 8, 58_852_129), ("mixformerv2_s", 4, 16_225_825)]
    + [("mixformerv2_teacher", 12, 87_203_617)],
)
def test_full_config_shapes_and_parameter_counts(name, depth, params):
    # Built on the meta device: shapes and counts without allocating or computing anything.
    with torch.device("meta"):
        net = create_model(name).eval()
        x = net.example_inputs(1)
        keys, values = net.encode_template(x["template"], x["online_template"])
        box_logits, score_logit = net.track_search(keys, values, x["search"])
    tokens = 2 * (net.card.template_size // 16) ** 2
    assert len(net.blocks) == depth
    assert keys.shape == values.shape == (1, depth, tokens, 768)
    assert box_logits.shape == (1, 4, 96) and score_logit.shape == (1, 1)
    assert count_params(net) == params


def test_small_full_config_runs_for_real():
    torch.manual_seed(0)
    net = create_model("mixformerv2_s").eval()
    x = net.example_inputs(1)
    with torch.no_grad():
        box_logits, score_logit = net(*x.values()).values()
    assert box_logits.shape == (1, 4, 96) and score_logit.shape == (1, 1)
    assert torch.isfinite(box_logits).all() and torch.isfinite(score_logit).all()


def test_tiny_override_updates_the_card():
    net = tiny()
    assert (net.card.template_size, net.card.search_size, net.card.feature_size) == (32, 64, 4)
    assert net.card.extra["bins"] == 16 and net.card.extra["config"]["embed_dim"] == 32
    assert net.card.weights is None
    assert get_card("mixformerv2_b").template_size == 128  # registry card untouched
    with pytest.raises(TypeError, match="num_heads"):
        create_model("mixformerv2_b", num_head=2)


# -- behaviour -------------------------------------------------------------------------------


def test_forward_backward_reaches_every_parameter():
    net = tiny().train()
    out = joint(net, inputs(net))
    assert out["box_logits"].shape == (2, 4, 16) and out["score_logit"].shape == (2, 1)
    loss = out["box_logits"].logsumexp(-1).sum() + out["score_logit"].sum()
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_split_halves_equal_the_joint_forward():
    net = tiny().eval()
    x = inputs(net)
    with torch.no_grad():
        reference = joint(net, x)
        keys, values = net.encode_template(x["template"], x["online_template"])
        box_logits, score_logit = net.track_search(keys, values, x["search"])
        by_name = net(x["template"], x["online_template"], x["search"])
    assert keys.shape == values.shape == (2, 2, TEMPLATE_TOKENS, 32)
    assert torch.allclose(box_logits, reference["box_logits"], atol=1e-5, rtol=0)
    assert torch.allclose(score_logit, reference["score_logit"], atol=1e-5, rtol=0)
    assert torch.equal(by_name["box_logits"], box_logits)


def test_template_tokens_never_see_the_search_region():
    net = tiny().eval()
    x = inputs(net)
    other = dict(x, search=torch.randn_like(x["search"]))
    with torch.no_grad():
        first = joint(net, x, return_layers=True)
        second = joint(net, other, return_layers=True)
    for a, b in zip(first["layer_tokens"], second["layer_tokens"]):
        assert torch.allclose(a[:, :TEMPLATE_TOKENS], b[:, :TEMPLATE_TOKENS], atol=1e-6, rtol=0)
        assert not torch.allclose(a[:, TEMPLATE_TOKENS:], b[:, TEMPLATE_TOKENS:], atol=1e-3)
    assert not torch.allclose(first["box_logits"], second["box_logits"], atol=1e-3)


@pytest.mark.parametrize("changed", ["template", "online_template"])
def test_search_and_prediction_tokens_see_both_templates(changed):
    net = tiny().eval()
    x = inputs(net)
    other = dict(x, **{changed: torch.randn_like(x[changed])})
    with torch.no_grad():
        first = joint(net, x, return_layers=True)
        second = joint(net, other, return_layers=True)
    last_a, last_b = first["layer_tokens"][-1], second["layer_tokens"][-1]
    assert not torch.allclose(last_a[:, TEMPLATE_TOKENS:], last_b[:, TEMPLATE_TOKENS:], atol=1e-3)
    assert not torch.allclose(first["box_logits"], second["box_logits"], atol=1e-3)
    # The freshly initialised score head gives tiny logits: compare relatively.
    assert not torch.allclose(first["score_logit"], second["score_logit"], rtol=1e-2, atol=0)


def test_residual_decay_turns_a_layer_into_identity_and_keeps_the_split_exact():
    net = tiny(depth=3).eval()
    x = inputs(net)
    net.blocks[1].residual_decay = 0.0
    net.blocks[2].residual_decay = 0.5
    with torch.no_grad():
        out = joint(net, x, return_layers=True)
        state = net.encode_template(x["template"], x["online_template"])
        box_logits, score_logit = net.track_search(*state, x["search"])
    layers = out["layer_tokens"]
    assert torch.equal(layers[1], layers[0])
    assert not torch.allclose(layers[2], layers[1], atol=1e-3)
    assert torch.allclose(box_logits, out["box_logits"], atol=1e-5, rtol=0)
    assert torch.allclose(score_logit, out["score_logit"], atol=1e-5, rtol=0)


def test_box_decoding_uses_bin_centres():
    logits = torch.full((1, 4, 16), -1e4)
    for row, index in enumerate((0, 3, 8, 15)):
        logits[0, row, index] = 1e4
    expected = torch.tensor([[0.5, 3.5, 8.5, 15.5]]) / 16
    assert torch.allclose(decode_box_logits(logits), expected)
    uniform = decode_box_logits(torch.zeros(1, 4, 16))
    assert torch.allclose(uniform, torch.full((1, 4), 0.5))


# -- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_round_trip_and_mismatch_report(tmp_path):
    net = tiny(seed=0).eval()
    path = str(tmp_path / "mixformerv2_tiny.safetensors")
    save_weights(net, path)
    restored = tiny(seed=5).eval()
    x = inputs(net)
    with torch.no_grad():
        assert not torch.allclose(
            net(*x.values())["box_logits"], restored(*x.values())["box_logits"]
        )
    load_weights(restored, path)
    with torch.no_grad():
        for name, value in net(*x.values()).items():
            assert torch.equal(value, restored(*x.values())[name]), name

    deeper = tiny(depth=3)
    with pytest.raises(CheckpointMismatch) as info:
        load_weights(deeper, path)
    assert info.value.missing and all(key.startswith("blocks.2.") for key in info.value.missing)
    other_bins = tiny(bins=24)
    with pytest.raises(CheckpointMismatch) as info:
        load_weights(other_bins, path)
    assert any(entry.startswith("box_head.layers.3.weight") for entry in info.value.shapes)


# -- MAE / timm ViT checkpoints ---------------------------------------------------------------


def vit_checkpoint(dim: int = 32, blocks: int = 3, hidden: int = 128, grid: int = 4, seed: int = 3):
    """A state dict in the timm/MAE ViT layout, every tensor distinct."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    state = {
        "cls_token": rand(1, 1, dim),
        "pos_embed": rand(1, 1 + grid * grid, dim),
        "patch_embed.proj.weight": rand(dim, 3, 16, 16),
        "patch_embed.proj.bias": rand(dim),
        "norm.weight": rand(dim),
        "norm.bias": rand(dim),
    }
    for index in range(blocks):
        prefix = f"blocks.{index}."
        for norm in ("norm1", "norm2"):
            state[prefix + norm + ".weight"] = rand(dim)
            state[prefix + norm + ".bias"] = rand(dim)
        state[prefix + "attn.qkv.weight"] = rand(3 * dim, dim)
        state[prefix + "attn.qkv.bias"] = rand(3 * dim)
        state[prefix + "attn.proj.weight"] = rand(dim, dim)
        state[prefix + "attn.proj.bias"] = rand(dim)
        state[prefix + "mlp.fc1.weight"] = rand(hidden, dim)
        state[prefix + "mlp.fc1.bias"] = rand(hidden)
        state[prefix + "mlp.fc2.weight"] = rand(dim, hidden)
        state[prefix + "mlp.fc2.bias"] = rand(dim)
    return state


def test_vit_loader_puts_every_tensor_in_place():
    # Network: 2 blocks, MLP hidden 64, template grid 2x2, search grid 4x4.
    net = tiny()
    ckpt = vit_checkpoint()
    ckpt["head.weight"] = torch.zeros(10, 32)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = load_vit_pretrained(net, ckpt, layer_map=[2, 0])
    own = net.state_dict()

    assert torch.equal(own["patch_embed.proj.weight"], ckpt["patch_embed.proj.weight"])
    assert torch.equal(own["patch_embed.proj.bias"], ckpt["patch_embed.proj.bias"])
    for index, source in enumerate((2, 0)):
        dst, src = f"blocks.{index}.", f"blocks.{source}."
        for name in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"):
            assert torch.equal(own[dst + name], ckpt[src + name]), dst + name
        for name in ("attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias"):
            assert torch.equal(own[dst + name], ckpt[src + name]), dst + name
        # MLP reduction: hidden 128 -> 64 keeps the leading units (w' = w[:d1', :d2']).
        assert torch.equal(own[dst + "mlp.fc1.weight"], ckpt[src + "mlp.fc1.weight"][:64])
        assert torch.equal(own[dst + "mlp.fc1.bias"], ckpt[src + "mlp.fc1.bias"][:64])
        assert torch.equal(own[dst + "mlp.fc2.weight"], ckpt[src + "mlp.fc2.weight"][:, :64])
        assert torch.equal(own[dst + "mlp.fc2.bias"], ckpt[src + "mlp.fc2.bias"])

    # Position embeddings: class row dropped; 4x4 search grid copied, 2x2 template resized.
    assert own["pos_embed_search"].shape == (1, 16, 32)
    assert torch.equal(own["pos_embed_search"][0], ckpt["pos_embed"][0, 1:])
    assert own["pos_embed_template"].shape == (1, 4, 32)
    expected = interpolate_position_embedding(ckpt["pos_embed"], (2, 2))
    assert torch.equal(own["pos_embed_template"], expected)

    # Tensors without a counterpart keep their initial values; unused keys are named.
    for key in report.missing:
        assert torch.equal(own[key], before[key]), key
    assert "prediction_tokens" in report.missing
    assert any(key.startswith("box_head.") for key in report.missing)
    assert any(key.startswith("score_head.") for key in report.missing)
    assert not any(
        key.startswith(("blocks.", "patch_embed.", "pos_embed")) for key in report.missing
    )
    assert {"cls_token", "norm.weight", "norm.bias", "head.weight"} <= set(report.unused)
    assert any(key.startswith("blocks.1.") for key in report.unused)  # block 1 not mapped
    assert any("sliced" in line for line in report.adapted)
    assert "prediction_tokens" in report.summary()


def test_position_embedding_interpolation():
    table = torch.randn(1, 1 + 14 * 14, 8)
    assert interpolate_position_embedding(table, (8, 8)).shape == (1, 64, 8)
    assert interpolate_position_embedding(table, (18, 18)).shape == (1, 324, 8)
    assert torch.equal(interpolate_position_embedding(table, (14, 14))[0], table[0, 1:])
    # Bicubic weights sum to one: a constant code stays constant (cls row ignored).
    constant = torch.full((1, 1 + 14 * 14, 8), 0.25)
    constant[0, 0] = 100.0
    resized = interpolate_position_embedding(constant, (18, 18))
    assert torch.allclose(resized, torch.full_like(resized, 0.25), atol=1e-6)
    with pytest.raises(ValueError):
        interpolate_position_embedding(table, (8, 8), source_grid=(15, 15))


def test_vit_loader_reads_mae_layout_from_safetensors(tmp_path):
    from safetensors.torch import save_file

    net = tiny()
    ckpt = {"model." + k: v for k, v in vit_checkpoint(blocks=2, hidden=64).items()}
    ckpt["model.mask_token"] = torch.zeros(1, 1, 32)
    ckpt["model.decoder_embed.weight"] = torch.zeros(16, 32)
    path = str(tmp_path / "mae_tiny.safetensors")
    save_file(ckpt, path)
    report = load_vit_pretrained(net, path)
    assert torch.equal(
        net.state_dict()["blocks.1.mlp.fc1.weight"], ckpt["model.blocks.1.mlp.fc1.weight"]
    )
    assert {"mask_token", "decoder_embed.weight"} <= set(report.unused)
    assert not report.adapted or all("pos_embed" in line for line in report.adapted)


def test_vit_loader_rejects_incompatible_checkpoints():
    net = tiny()
    with pytest.raises(CheckpointMismatch) as info:
        load_vit_pretrained(net, vit_checkpoint(dim=48))
    assert any("patch_embed.proj.weight" in entry for entry in info.value.shapes)
    with pytest.raises(CheckpointMismatch) as info:
        load_vit_pretrained(net, vit_checkpoint(), slice_mlp=False)
    assert any("mlp.fc1.weight" in entry for entry in info.value.shapes)
    with pytest.raises(ValueError, match="layer_map"):
        load_vit_pretrained(net, vit_checkpoint(), layer_map=[0])


# -- ONNX ------------------------------------------------------------------------------------


def test_onnx_export_static_shapes_and_parity(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from ros_tracker.export.onnx import export_onnx, graph_opset, list_inputs, verify_export

    net = tiny().eval()
    export = export_onnx(net, str(tmp_path / "mixformerv2_tiny"))
    assert graph_opset(export.template_path) == 17 == graph_opset(export.search_path)
    assert list_inputs(export.template_path) == ["template", "online_template"]
    assert list_inputs(export.search_path) == ["template_keys", "template_values", "search"]
    for path in (export.template_path, export.search_path):
        graph = onnx.load(path).graph
        for value in list(graph.input) + list(graph.output):
            dims = value.type.tensor_type.shape.dim
            assert dims and all(d.HasField("dim_value") for d in dims), (path, value.name)
    report = verify_export(net, export, trials=2, tolerance=1e-4)
    assert set(report.errors) == {"template_keys", "template_values", "box_logits", "score_logit"}
    assert report.ok, report.summary()


def test_macs_counted_like_the_paper_match_table_1():
    """MixFormerV2-B: 22.5 G in the paper's Table 1 (thop-style, one joint pass)."""
    from ros_tracker.zoo.registry import create_model

    network = create_model("mixformerv2_b").eval()
    params, macs = network.paper_complexity()
    assert params is None  # the paper gives no parameter count
    reference = get_card("mixformerv2_b").reference_macs * 1e9
    assert abs(macs - reference) / reference < 0.03, macs / 1e9
