"""HCAT: shapes, gradients, the template/search split, checkpoints, ResNet loading, ONNX."""

from __future__ import annotations

import math
from typing import Dict, Tuple

import pytest
import torch
import torch.nn.functional as F

from ros_tracker.zoo import create_model, get_card
from ros_tracker.zoo.checkpoints import CheckpointMismatch, load_weights, save_weights
from ros_tracker.zoo.hcat import TINY_OVERRIDES, sine_position_encoding
from ros_tracker.zoo.hcat_pretrained import load_resnet18_trunk
from ros_tracker.zoo.resnet import ResNetTrunk


def tiny(name: str = "hcat", seed: int = 0, **extra):
    torch.manual_seed(seed)
    return create_model(name, **dict(TINY_OVERRIDES, **extra))


def test_cards_follow_the_paper_and_the_authors_tracker():
    for name, layers in (("hcat", 2), ("hcat_n1", 1)):
        card = get_card(name)
        assert card.family == "hcat"
        assert (card.template_size, card.search_size, card.feature_size) == (128, 256, 16)
        assert (card.template_factor, card.search_factor) == (2.0, 4.0)
        assert card.hann_window and 0.42 <= card.window_influence <= 0.49
        assert card.output_names == ("cls_logits", "boxes")
        assert card.extra["num_layers"] == layers and card.extra["num_sparse"] == 16
        assert card.per_frame and card.postprocess


@pytest.mark.parametrize("name,layers", [("hcat", 2), ("hcat_n1", 1)])
def test_full_config_output_shapes(name, layers):
    torch.manual_seed(0)
    net = create_model(name).eval()
    assert len(net.layers) == layers
    assert net.backbone.out_channels == 256 and net.input_proj.out_channels == 256
    inputs = net.example_inputs()
    with torch.no_grad():
        state = net.encode_template(inputs["template"])
        cls_logits, boxes = net.track_search(*state, inputs["search"])
    assert len(state) == len(net.card.template_state_names)
    assert state[0].shape == (1, 16, 256)  # S = 16 sparse template vectors
    assert cls_logits.shape == (1, 256) and boxes.shape == (1, 256, 4)
    assert bool(((boxes > 0) & (boxes < 1)).all())


def test_tiny_override_updates_the_card():
    net = tiny()
    assert (net.card.template_size, net.card.search_size, net.card.feature_size) == (64, 128, 8)
    assert net.card.extra["hidden_dim"] == 32
    with pytest.raises(TypeError, match="num_heads"):
        create_model("hcat", num_head=2)


def test_forward_backward_reaches_every_parameter():
    net = tiny().train()
    inputs = net.example_inputs(batch=2)
    out = net(inputs["template"], inputs["search"])
    assert out["cls_logits"].shape == (2, 64) and out["boxes"].shape == (2, 64, 4)
    loss = out["cls_logits"].square().mean() + out["boxes"].mean()
    loss.backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_split_equals_forward_and_state_depends_on_template_only():
    net = tiny("hcat").eval()
    generator = torch.Generator().manual_seed(1)
    template = torch.randn(2, 3, 64, 64, generator=generator)
    search = torch.randn(2, 3, 128, 128, generator=generator)
    other_search = torch.randn(2, 3, 128, 128, generator=generator)
    with torch.no_grad():
        joint = net(template, search)
        state = net.encode_template(template)
        split = net.track_search(*state, search)
        other = net.track_search(*state, other_search)
    torch.testing.assert_close(split[0], joint["cls_logits"], rtol=0, atol=1e-6)
    torch.testing.assert_close(split[1], joint["boxes"], rtol=0, atol=1e-6)
    # The cached state really is reused: a new search crop changes the outputs.
    assert not torch.allclose(other[0], split[0])


def test_template_branch_attends_to_the_same_layers_search_output():
    # Eq. 4: F_zs^(l) = CFA(F_zs^(l-1), F_x^(l), F_x^(l)). Recompute layer 1 by hand.
    net = tiny("hcat_n1").eval()
    layer = net.layers[0]
    generator = torch.Generator().manual_seed(2)
    search = torch.randn(1, 64, 32, generator=generator)
    template = torch.randn(1, 4, 32, generator=generator)
    search_pos = net.search_pos
    sparse_pos = net.sparsify.sparse_vectors
    with torch.no_grad():
        new_search, new_template = layer(search, template, search_pos, sparse_pos)
        expected_search = layer.search_branch(search, search_pos, template, sparse_pos)
        expected_template = layer.template_branch(template, sparse_pos, expected_search, search_pos)
    torch.testing.assert_close(new_search, expected_search)
    torch.testing.assert_close(new_template, expected_template)


def test_sine_position_encoding_layout():
    code = sine_position_encoding(4, 3, 8)
    assert code.shape == (12, 8)
    # Row-major grid; the first half encodes y (equal along a row), the second half x.
    row = code.reshape(4, 3, 8)
    assert torch.allclose(row[:, :1, :4].expand(4, 3, 4), row[:, :, :4])
    assert torch.allclose(row[:1, :, 4:].expand(4, 3, 4), row[:, :, 4:])
    assert math.isclose(float(row[3, 0, 0]), math.sin(2 * math.pi), abs_tol=1e-6)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    source = tiny("hcat", seed=0).eval()
    path = str(tmp_path / "hcat_tiny.safetensors")
    save_weights(source, path)
    restored = tiny("hcat", seed=1).eval()
    inputs = source.example_inputs()
    with torch.no_grad():
        before = restored(inputs["template"], inputs["search"])["cls_logits"]
        load_weights(restored, path)
        after = restored(inputs["template"], inputs["search"])
        expected = source(inputs["template"], inputs["search"])
    assert not torch.allclose(before, expected["cls_logits"])
    torch.testing.assert_close(after["cls_logits"], expected["cls_logits"], rtol=0, atol=0)
    torch.testing.assert_close(after["boxes"], expected["boxes"], rtol=0, atol=0)

    one_layer = tiny("hcat_n1")
    with pytest.raises(CheckpointMismatch) as info:
        load_weights(one_layer, path)
    assert any(key.startswith("layers.1.") for key in info.value.unexpected)


# -- ResNet-18 in the common (torchvision / timm) layout ------------------------------------

_STAGE_WIDTHS = (64, 128, 256, 512)


def _bn(prefix: str, channels: int, generator: torch.Generator) -> Dict[str, torch.Tensor]:
    return {
        prefix + ".weight": torch.rand(channels, generator=generator) + 0.5,
        prefix + ".bias": torch.randn(channels, generator=generator) * 0.1,
        prefix + ".running_mean": torch.randn(channels, generator=generator) * 0.1,
        prefix + ".running_var": torch.rand(channels, generator=generator) + 0.5,
        prefix + ".num_batches_tracked": torch.tensor(7),
    }


def _conv(key: str, out_ch: int, in_ch: int, k: int, generator) -> Dict[str, torch.Tensor]:
    std = math.sqrt(2.0 / (in_ch * k * k))
    return {key: torch.randn(out_ch, in_ch, k, k, generator=generator) * std}


def common_layout_resnet18(seed: int = 0) -> Dict[str, torch.Tensor]:
    """A random full ResNet-18 state dict named the way torchvision and timm name it."""
    g = torch.Generator().manual_seed(seed)
    state = _conv("conv1.weight", 64, 3, 7, g)
    state.update(_bn("bn1", 64, g))
    in_ch = 64
    for stage, width in enumerate(_STAGE_WIDTHS, start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            state.update(_conv(p + ".conv1.weight", width, in_ch if block == 0 else width, 3, g))
            state.update(_bn(p + ".bn1", width, g))
            state.update(_conv(p + ".conv2.weight", width, width, 3, g))
            state.update(_bn(p + ".bn2", width, g))
            if block == 0 and stage > 1:
                state.update(_conv(p + ".downsample.0.weight", width, in_ch, 1, g))
                state.update(_bn(p + ".downsample.1", width, g))
        in_ch = width
    state["fc.weight"] = torch.randn(1000, 512, generator=g) * 0.01
    state["fc.bias"] = torch.zeros(1000)
    return state


def reference_trunk(state: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """ResNet-18 stages 1-3 written directly against the common key names (eval mode)."""

    def bn(t: torch.Tensor, p: str) -> torch.Tensor:
        mean, var = state[p + ".running_mean"], state[p + ".running_var"]
        return F.batch_norm(t, mean, var, state[p + ".weight"], state[p + ".bias"], eps=1e-5)

    x = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for stage, first_stride in ((1, 1), (2, 2), (3, 2)):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = first_stride if block == 0 else 1
            out = F.conv2d(x, state[p + ".conv1.weight"], stride=stride, padding=1)
            out = F.relu(bn(out, p + ".bn1"))
            out = bn(F.conv2d(out, state[p + ".conv2.weight"], padding=1), p + ".bn2")
            shortcut = x
            if p + ".downsample.0.weight" in state:
                shortcut = bn(
                    F.conv2d(x, state[p + ".downsample.0.weight"], stride=stride),
                    p + ".downsample.1",
                )
            x = F.relu(out + shortcut)
    return x


def _load_fresh(state) -> Tuple[ResNetTrunk, object]:
    torch.manual_seed(3)
    trunk = ResNetTrunk()
    return trunk, load_resnet18_trunk(trunk, state)


def test_resnet18_loader_places_every_trunk_tensor():
    state = common_layout_resnet18()
    trunk, report = _load_fresh(state)
    trunk.eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(trunk(x), reference_trunk(state, x), rtol=1e-4, atol=1e-4)
    # Every source tensor is accounted for: loaded into the trunk or reported as dropped.
    trunk_keys = [k for k in state if not k.startswith(("layer4.", "fc."))]
    assert sorted(report.loaded) == sorted(trunk_keys)
    assert len(set(report.loaded.values())) == len(trunk.state_dict()) == len(trunk_keys)
    own = trunk.state_dict()
    for source_key, target_key in report.loaded.items():
        assert torch.equal(own[target_key], state[source_key].to(own[target_key].dtype))
    assert sorted(report.dropped) == sorted(k for k in state if k.startswith(("layer4.", "fc.")))
    assert "layer4" in report.summary() and "fc" in report.summary()


def test_resnet18_loader_into_hcat_and_without_batch_counters():
    state = common_layout_resnet18()
    state = {("module." + k): v for k, v in state.items() if "num_batches_tracked" not in k}
    torch.manual_seed(0)
    net = create_model("hcat_n1")
    report = load_resnet18_trunk(net.backbone, state)
    assert report.kept_own and all(k.endswith("num_batches_tracked") for k in report.kept_own)
    assert torch.equal(net.backbone.stem.conv.weight, state["module.conv1.weight"])
    assert torch.equal(
        net.backbone.stages[2][0].shortcut.norm.running_var,
        state["module.layer3.0.downsample.1.running_var"],
    )


def test_resnet18_loader_rejects_what_does_not_fit():
    state = common_layout_resnet18()
    broken = dict(state)
    del broken["layer2.1.conv2.weight"]
    with pytest.raises(CheckpointMismatch) as info:
        _load_fresh(broken)
    assert info.value.missing == ["stages.1.1.conv2.weight"]

    extra = dict(state, **{"layer3.0.attn.weight": torch.zeros(1)})
    with pytest.raises(CheckpointMismatch) as info:
        _load_fresh(extra)
    assert info.value.unexpected == ["layer3.0.attn.weight"]

    wrong = dict(state, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)})
    with pytest.raises(CheckpointMismatch) as info:
        _load_fresh(wrong)
    assert "layer1.0.conv1.weight" in info.value.shapes[0]


# -- ONNX -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hcat", "hcat_n1"])
def test_onnx_export_both_halves_match_pytorch(tmp_path, name):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from ros_tracker.export.onnx import export_onnx, graph_opset, list_inputs, verify_export

    net = tiny(name).eval()
    export = export_onnx(net, str(tmp_path / name))
    assert graph_opset(export.template_path) == 17 == graph_opset(export.search_path)
    assert list_inputs(export.template_path) == ["template"]
    assert list_inputs(export.search_path) == list(net.card.template_state_names) + ["search"]
    report = verify_export(net, export, trials=2, tolerance=1e-4)
    assert set(report.errors) == set(net.card.template_state_names) | {"cls_logits", "boxes"}
    assert report.ok, report.summary()
