"""hcat_mobilenetv2: the card, the trunk, the torchvision-layout loader, the .pth conversion."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ros_tracker.zoo import create_model, get_card
from ros_tracker.zoo.checkpoints import CheckpointMismatch, read_weights
from ros_tracker.zoo.hcat_pretrained import load_imagenet_backbone
from ros_tracker.zoo.mobilenetv2 import ConvNormReLU6, MobileNetV2Trunk, inverted_residual_blocks
from ros_tracker.zoo.mobilenetv2_pretrained import load_imagenet_trunk

ROOT = Path(__file__).resolve().parents[2]
NAME = "hcat_mobilenetv2"


def _converter():
    spec = importlib.util.spec_from_file_location(
        "convert_mobilenetv2", ROOT / "training" / "tools" / "convert_mobilenetv2.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return create_model(NAME)


# -- card and network -----------------------------------------------------------------------


def test_card_is_an_hcat_with_the_cpu_sized_transformer():
    card = get_card(NAME)
    assert card.family == "hcat" and card.output_names == ("cls_logits", "boxes")
    assert (card.template_size, card.search_size, card.feature_size) == (128, 256, 16)
    assert (card.template_factor, card.search_factor) == (2.0, 4.0)
    assert card.hann_window and card.window_influence == get_card("hcat").window_influence
    assert card.weights == "hcat_mobilenetv2.safetensors"
    assert "MobileNetV2" in card.backbone and "BSD-3" in card.backbone
    assert "BSD-3" in card.weights_license and "this project" in card.weights_license
    assert "ResNet-18" in card.paper and "MobileNetV2" in card.paper
    extra = card.extra
    assert extra["trunk"] == "mobilenetv2" and "trunk_widths" not in extra
    assert (extra["hidden_dim"], extra["ffn_dim"], extra["num_layers"], extra["num_sparse"]) == (
        128,
        512,
        2,
        16,
    )


def templates(network, inputs):
    """The template-side inputs in the card's order: the crop, then the target box in it."""
    return [inputs[name] for name in network.card.template_inputs]


def test_the_template_side_takes_the_target_box(network):
    assert network.config.box_embedding
    assert network.card.template_inputs == ("template", "template_box")


def test_counting_note_matches_the_network(network):
    from ros_tracker.zoo.counting import count_macs, count_params

    inputs = network.example_inputs()
    with torch.no_grad():
        state = network.encode_template(*templates(network, inputs))
    params = count_params(network)
    macs = count_macs(network, lambda: network.track_search(*state, inputs["search"]))
    note = network.card.counting_note
    assert f"{params / 1e6:.2f} M parameters" in note
    assert f"{macs / 1e9:.3f} G MACs" in note
    assert f"trunk {count_params(network.backbone) / 1e6:.2f} M" in note


def test_trunk_is_stride_16_with_96_channels():
    trunk = MobileNetV2Trunk().eval()
    assert trunk.stride == 16 and trunk.out_channels == 96 and len(trunk.features) == 14
    with torch.no_grad():
        assert trunk(torch.zeros(1, 3, 128, 128)).shape == (1, 96, 8, 8)
    # Residual connections exactly where input and output shapes match.
    residual = [i for i, block in enumerate(trunk.features[1:], 1) if block.use_residual]
    assert residual == [3, 5, 6, 8, 9, 10, 12, 13]


def test_output_shapes_and_the_split(network):
    network.eval()
    assert isinstance(network.backbone, MobileNetV2Trunk)
    assert network.input_proj.in_channels == 96 and network.input_proj.out_channels == 128
    inputs = network.example_inputs()
    with torch.no_grad():
        state = network.encode_template(*templates(network, inputs))
        cls_logits, boxes = network.track_search(*state, inputs["search"])
        joint = network(*templates(network, inputs), inputs["search"])
    assert [tuple(t.shape) for t in state] == [(1, 16, 128)] * 4
    assert cls_logits.shape == (1, 256) and boxes.shape == (1, 256, 4)
    assert bool(((boxes > 0) & (boxes < 1)).all())
    torch.testing.assert_close(joint["cls_logits"], cls_logits, rtol=0, atol=1e-6)


def test_forward_backward_reaches_every_parameter(network):
    network.train()
    network.zero_grad()
    inputs = network.example_inputs(batch=2)
    out = network(*templates(network, inputs), inputs["search"])
    (out["cls_logits"].square().mean() + out["boxes"].mean()).backward()
    for name, parameter in network.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    network.zero_grad()
    network.eval()


def test_hcat_accepts_a_trunk_component():
    from ros_tracker.zoo.hcat import TINY_OVERRIDES, HCATNetwork

    torch.manual_seed(0)
    tiny = create_model("hcat", **TINY_OVERRIDES)
    trunk = MobileNetV2Trunk()
    net = HCATNetwork(tiny.card, tiny.config, backbone=trunk)
    assert net.backbone is trunk and net.input_proj.in_channels == 96
    with pytest.raises(ValueError, match="unknown HCAT trunk"):
        create_model("hcat", trunk="vgg")


def test_onnx_export_matches_pytorch(tmp_path, network):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from ros_tracker.export.onnx import export_onnx, verify_export

    network.eval()
    export = export_onnx(network, str(tmp_path / NAME))
    report = verify_export(network, export, trials=2, tolerance=1e-4)
    assert set(report.errors) == set(network.card.template_state_names) | {"cls_logits", "boxes"}
    assert report.ok, report.summary()


# -- torchvision-layout ImageNet MobileNetV2 ------------------------------------------------

# The blocks of the full ImageNet network after the trunk: features.14-17, then features.18.
_STRIDE32_BLOCKS = ((6, 160, 3, 2), (6, 320, 1, 1))


class FullMobileNetV2(nn.Module):
    """The whole ImageNet classifier under torchvision's names (built here, for the checks)."""

    def __init__(self) -> None:
        super().__init__()
        trunk = MobileNetV2Trunk()
        tail = inverted_residual_blocks(_STRIDE32_BLOCKS, trunk.out_channels)
        self.features = nn.Sequential(*trunk.features, *tail, ConvNormReLU6(320, 1280, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def torchvision_layout_state(seed: int = 0) -> Dict[str, torch.Tensor]:
    """Random tensors under torchvision's MobileNetV2 key names and shapes (314 tensors)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, tensor in FullMobileNetV2().state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(11)
        elif key.endswith("running_var"):
            state[key] = torch.rand(tensor.shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(tensor.shape, generator=generator) * 0.1
    return state


def test_the_test_layout_is_torchvisions():
    state = torchvision_layout_state()
    assert len(state) == 314
    assert state["features.1.conv.1.weight"].shape == (16, 32, 1, 1)  # t = 1: no expansion
    assert state["features.2.conv.0.0.weight"].shape == (96, 16, 1, 1)
    assert state["features.13.conv.2.weight"].shape == (96, 576, 1, 1)
    assert state["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert state["classifier.1.weight"].shape == (1000, 1280)


def test_loader_places_every_tensor_and_reports_the_rest(network):
    state = torchvision_layout_state()
    report = load_imagenet_trunk(network, state)
    own = network.backbone.state_dict()
    assert sorted(report.loaded) == sorted(own)  # identity key map, every trunk tensor
    for source_key, target_key in report.loaded.items():
        assert torch.equal(own[target_key], state[source_key])
    dropped = sorted(k for k in state if k not in own)
    assert report.dropped == dropped and len(dropped) == 80
    assert all(k.startswith("classifier.") or int(k.split(".")[1]) >= 14 for k in dropped)
    assert "features.14-18" in report.summary() and "classifier" in report.summary()
    # The trunk computes what the first 14 blocks of the full network compute.
    full = FullMobileNetV2().eval()
    full.load_state_dict(state)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = full.features[:14](x)
        torch.testing.assert_close(network.backbone.eval()(x), expected, rtol=1e-5, atol=1e-5)


def test_loader_rejects_what_does_not_fit():
    state = torchvision_layout_state()
    broken = {k: v for k, v in state.items() if k != "features.7.conv.2.weight"}
    with pytest.raises(CheckpointMismatch) as info:
        load_imagenet_trunk(MobileNetV2Trunk(), broken)
    assert info.value.missing == ["features.7.conv.2.weight"]

    extra = dict(state, **{"features.3.attn.weight": torch.zeros(1), "fc.weight": torch.ones(1)})
    with pytest.raises(CheckpointMismatch) as info:
        load_imagenet_trunk(MobileNetV2Trunk(), extra)
    assert info.value.unexpected == ["fc.weight", "features.3.attn.weight"]

    wrong = dict(state, **{"features.0.0.weight": torch.zeros(32, 3, 5, 5)})
    with pytest.raises(CheckpointMismatch) as info:
        load_imagenet_trunk(MobileNetV2Trunk(), wrong)
    assert "features.0.0.weight" in info.value.shapes[0]

    with pytest.raises(TypeError, match="MobileNetV2Trunk"):
        load_imagenet_trunk(create_model("hcat_n1"), state)


def test_prefixed_state_without_batch_counters_loads():
    state = torchvision_layout_state()
    state = {"module." + k: v for k, v in state.items() if "num_batches_tracked" not in k}
    trunk = MobileNetV2Trunk()
    report = load_imagenet_trunk(trunk, state)
    assert report.kept_own and all(k.endswith("num_batches_tracked") for k in report.kept_own)
    assert torch.equal(trunk.features[13].conv[2].weight, state["module.features.13.conv.2.weight"])


# -- conversion of the published .pth -------------------------------------------------------


class NotATensor:
    """A class the weights-only unpickler must refuse to rebuild."""

    def __init__(self) -> None:
        self.value = 1


def test_conversion_refuses_a_pickle_with_objects(tmp_path):
    converter = _converter()
    path = tmp_path / "custom.pth"
    torch.save({"features.0.0.weight": torch.zeros(1), "extra": NotATensor()}, str(path))
    with pytest.raises(converter.ConversionError, match="refusing .*NotATensor"):
        converter.read_tensor_checkpoint(path)
    assert converter.main(["--source", str(path), "--out", str(tmp_path / "out.st")]) == 1
    assert not (tmp_path / "out.st").exists()
    # A pickle that is not a tensor checkpoint at all.
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(pickle.dumps(NotATensor(), protocol=2))
    with pytest.raises(converter.ConversionError, match="refusing"):
        converter.read_tensor_checkpoint(garbage)


def test_conversion_round_trip_and_checks(tmp_path):
    converter = _converter()
    state = torchvision_layout_state()
    source = tmp_path / "mobilenet_v2.pth"
    torch.save(state, str(source))
    out = tmp_path / "pretrained" / "mobilenet_v2_imagenet.safetensors"
    summary = converter.convert(source, out)
    assert "loaded 234" in summary
    written = read_weights(str(out))
    assert sorted(written) == sorted(state)
    assert all(torch.equal(written[k], state[k]) for k in state)
    torch.manual_seed(0)
    net = create_model(NAME)
    load_imagenet_backbone(net, str(out))  # the HCAT loader picks the MobileNetV2 trunk
    assert torch.equal(net.backbone.features[0][0].weight, state["features.0.0.weight"])

    # The hash in a torchvision file name must match the file.
    misnamed = tmp_path / "mobilenet_v2-b0353104.pth"
    misnamed.write_bytes(source.read_bytes())
    with pytest.raises(converter.ConversionError, match="SHA-256"):
        converter.convert(misnamed, tmp_path / "x.safetensors")
    # Tensors of some other network.
    other = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(other))
    with pytest.raises(converter.ConversionError, match="not a torchvision MobileNetV2"):
        converter.convert(other, tmp_path / "x.safetensors")


# -- the real ImageNet weights (when the package is installed) ------------------------------


def _chelsea_batch() -> torch.Tensor:
    """scikit-image's cat photo, resized (short side 256), centre 224 crop, ImageNet-normalised."""
    data = pytest.importorskip("skimage.data")
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float().div(255.0)[None]
    height, width = image.shape[-2:]
    scale = 256.0 / min(height, width)
    size = (round(height * scale), round(width * scale))
    image = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - 224) // 2, (size[1] - 224) // 2
    image = image[..., top : top + 224, left : left + 224]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (image - mean) / std


def test_packaged_imagenet_weights_classify_the_cat(tmp_path):
    converter = _converter()
    try:
        source = converter.packaged_checkpoint()
    except converter.ConversionError as error:
        pytest.skip(str(error))
    out = tmp_path / "mobilenet_v2_imagenet.safetensors"
    converter.convert(source, out)
    state = read_weights(str(out))
    # The trunk as the tracker loads it, the stride-32 part and classifier from the same file.
    trunk = MobileNetV2Trunk()
    load_imagenet_trunk(trunk, state)
    full = FullMobileNetV2()
    full.load_state_dict(state)
    for index, block in enumerate(trunk.features):
        full.features[index] = block
    full.eval()
    with torch.no_grad():
        probabilities = full(_chelsea_batch()).softmax(-1)[0]
    top5 = probabilities.topk(5).indices.tolist()
    assert set(top5) & set(range(281, 286)), top5  # tabby, tiger cat, Persian, Siamese, Egyptian
    assert top5[0] in range(281, 286), top5
