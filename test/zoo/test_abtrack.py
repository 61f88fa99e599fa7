"""ABTrack: training path, bypass decisions, deployable form, pruning, checkpoints, export."""

from __future__ import annotations

import argparse
import io
import warnings

import numpy as np
import pytest
import torch

from ros_tracker.zoo import create_model, get_card
from ros_tracker.zoo.abtrack import TINY_TEST_CONFIG, ABTrack, binarize_network, prune_network
from ros_tracker.zoo.abtrack_blocks import kept_dimensions
from ros_tracker.zoo.abtrack_deploy import DeployableABTrack
from ros_tracker.zoo.checkpoints import CheckpointMismatch, load_weights, save_weights
from ros_tracker.zoo.counting import count_macs, count_params
from ros_tracker.zoo.deit_pretrained import load_timm_vit, resample_grid

ENTRIES = ("abtrack_vit_tiny", "abtrack_deit_tiny", "abtrack_avit_tiny")


def tiny(seed: int = 0, **overrides) -> ABTrack:
    torch.manual_seed(seed)
    return create_model("abtrack_vit_tiny", **dict(TINY_TEST_CONFIG, **overrides))


def inputs(model: ABTrack, batch: int = 1, seed: int = 1):
    torch.manual_seed(seed)
    example = model.example_inputs(batch)
    return example["template"], example["search"]


def set_decision_bias(model: ABTrack, biases) -> None:
    """Force decisions: a large positive bias bypasses, a large negative one runs the block."""
    with torch.no_grad():
        for decision, bias in zip(model.decisions, biases):
            decision.linear.weight.zero_()
            decision.linear.bias.fill_(bias)


def randomize_masks(model: ABTrack) -> None:
    with torch.no_grad():
        for block in model.blocks:
            block.attn.d1.uniform_(0.0, 1.0)
            block.mlp.d2.uniform_(0.0, 1.0)


def max_error(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def test_cards_follow_the_family_conventions():
    for name in ENTRIES:
        card = get_card(name)
        assert card.family == "abtrack"
        assert (card.template_size, card.search_size, card.feature_size) == (128, 256, 16)
        assert (card.template_factor, card.search_factor) == (2.0, 4.0)
        assert card.hann_window and card.extra["window_mode"] == "multiply"
        assert card.output_names == ("score_map", "offset_map", "size_map")
        assert card.per_frame and card.postprocess and card.counting_note
        assert card.reference_params is None and card.reference_macs is None


def test_training_path_has_finite_gradients_everywhere_that_runs():
    model = tiny().train()
    set_decision_bias(model, [4.0, -4.0, 0.0])  # first gated block bypassed, others run
    template, search = inputs(model, batch=2)
    out = model.forward_train(template, search)
    assert out["bypass_probs"].shape == (2, 3)
    assert out["bypassed"].tolist() == [[True, False, False]] * 2
    sparsity = (out["bypass_probs"].mean() - 0.4).abs()
    loss = sum(out[name].square().mean() for name in model.card.output_names)
    (loss + 5.0 * sparsity + 1e-4 * model.dimension_reduction_l1()).backward()

    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    for decision in model.decisions:  # straight-through: every BDM learns, bypassed or not
        assert decision.linear.weight.grad.abs().sum() > 0
    # The bypassed block (index 1 = first gated) gets no task gradient; running ones do.
    assert model.blocks[1].mlp.fc1.weight.grad.abs().sum() == 0
    for index in (0, 2, 3):
        assert model.blocks[index].attn.d1.grad.abs().sum() > 0
        assert model.blocks[index].mlp.d2.grad.abs().sum() > 0


def test_training_forward_matches_inference():
    model = tiny()
    set_decision_bias(model, [4.0, -4.0, 4.0])
    template, search = inputs(model)
    model.train()
    for module in model.head.modules():  # BatchNorm in eval so only the gating differs
        module.eval()
    train_out = model.forward_train(template, search)
    model.eval()
    with torch.no_grad():
        eval_out = model(template, search)
    names = model.card.output_names
    assert max_error([train_out[n].detach() for n in names], [eval_out[n] for n in names]) < 1e-5


@pytest.mark.parametrize("name", ENTRIES)
def test_full_config_output_shapes(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    example = model.example_inputs()
    with torch.no_grad():
        (template_tokens,) = model.encode_template(example["template"])
        score, offset, size = model.track_search(template_tokens, example["search"])
    assert template_tokens.shape == (1, 64, 192)
    assert score.shape == (1, 1, 16, 16)
    assert offset.shape == size.shape == (1, 2, 16, 16)
    for sigmoid_map in (offset, size):
        assert float(sigmoid_map.min()) >= 0.0 and float(sigmoid_map.max()) <= 1.0
    assert len(model.blocks) == 12 and len(model.decisions) == 12 - model.config.enforced_blocks


def test_full_config_counts_match_the_card_note():
    torch.manual_seed(0)
    model = create_model("abtrack_deit_tiny").eval()
    assert count_params(model) == 8_047_182
    assert "8.05 M params" in model.card.counting_note
    template, search = model.example_inputs()["template"], model.example_inputs()["search"]
    (tokens,) = model.encode_template(template)
    all_blocks = count_macs(model, lambda: model.track_search(tokens, search))
    set_decision_bias(model, [10.0] * len(model.decisions))
    enforced_only = count_macs(model, lambda: model.track_search(tokens, search))
    assert round(all_blocks / 1e9, 2) == 2.85 and round(enforced_only / 1e9, 2) == 1.22


@pytest.mark.parametrize(
    "biases", [(-6.0, -6.0, -6.0), (6.0, -6.0, 6.0), (6.0, 6.0, 6.0)], ids=["none", "mixed", "all"]
)
def test_deployable_form_equals_eager_model(biases):
    model = tiny().eval()
    set_decision_bias(model, biases)
    template, search = inputs(model)
    calls = []
    hooks = [
        model.gated_block(i).register_forward_pre_hook(lambda m, a, i=i: calls.append(i))
        for i in range(3)
    ]
    with torch.no_grad():
        (tokens,) = model.encode_template(template)
        eager = model.track_search(tokens, search)
    for hook in hooks:
        hook.remove()
    expected_skips = [b > 0 for b in biases]
    assert calls == [i for i, skip in enumerate(expected_skips) if not skip]  # really skipped

    outputs, bypassed = DeployableABTrack(model).run(tokens, search)
    assert bypassed.tolist() == [expected_skips]
    assert max_error(outputs, eager) <= 1e-5

    # The decision changes the output: compare with every block run.
    set_decision_bias(model, (-6.0, -6.0, -6.0))
    with torch.no_grad():
        full = model.track_search(tokens, search)
    assert (max_error(full, eager) > 1e-4) == any(expected_skips)


def split_decision(model: ABTrack, template_tokens, search) -> None:
    """Make the first gated decision bypass for sample 0 and run for sample 1 (of 2)."""
    with torch.no_grad():
        summary = model.run_stem(template_tokens, search)[:, 0]
        direction = (summary[0] - summary[1]) / (summary[0] - summary[1]).norm() ** 2
        decision = model.decisions[0].linear
        decision.weight.copy_(10.0 * direction[None])
        decision.bias.fill_(-float(decision.weight[0] @ (summary[0] + summary[1])) / 2)
        for other in model.decisions[1:]:
            other.linear.bias.fill_(-6.0)


def test_decisions_depend_on_the_input_per_sample():
    model = tiny().eval()
    template, search = inputs(model, batch=2)
    with torch.no_grad():
        (tokens,) = model.encode_template(template)
    split_decision(model, tokens, search)
    with torch.no_grad():
        eager = model.track_search(tokens, search)
        singles = [model.track_search(tokens[i : i + 1], search[i : i + 1]) for i in range(2)]
    outputs, bypassed = DeployableABTrack(model).run(tokens, search)
    assert bypassed[:, 0].tolist() == [True, False]
    assert max_error(outputs, eager) <= 1e-5
    for i in range(2):
        assert max_error([o[i : i + 1] for o in eager], singles[i]) <= 1e-5


def test_decision_arrays_reproduce_the_decision_modules():
    model = tiny().eval()
    randomize_masks(model)
    with torch.no_grad():
        for decision in model.decisions:
            decision.linear.weight.normal_()
    arrays = model.decision_arrays()
    tokens = torch.randn(1, 21, 24)
    logits = arrays["weight"] @ tokens[0, 0].numpy() + arrays["bias"]
    expected = torch.cat([d(tokens) for d in model.decisions], dim=1)[0].detach().numpy()
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-logits)), expected, atol=1e-6)
    assert arrays["first_gated_block"] == 1 and arrays["threshold"] == 0.5


def test_kept_dimensions_are_head_divisible():
    assert kept_dimensions(192, 3, 0.3) == 132  # floor(192 * 0.7 / 3) * 3
    assert kept_dimensions(24, 3, 0.3) == 15
    for dim, heads, ratio in [(192, 3, 0.1), (192, 3, 0.55), (384, 6, 0.3), (768, 12, 0.45)]:
        kept = kept_dimensions(dim, heads, ratio)
        assert kept % heads == 0 and kept <= dim * (1 - ratio) < kept + heads


def test_binarize_then_prune_gives_the_masked_outputs():
    model = tiny().eval()
    randomize_masks(model)
    set_decision_bias(model, (-6.0, 6.0, -6.0))
    assert binarize_network(model, 0.3) == 15
    for block in model.blocks:
        for mask in (block.attn.d1, block.mlp.d2):
            assert set(mask.unique().tolist()) == {0.0, 1.0} and int(mask.sum()) == 15
            assert not mask.requires_grad
        per_head = block.attn.d1.reshape(3, 8).sum(dim=1)
        assert per_head.tolist() == [5.0, 5.0, 5.0]

    pruned = prune_network(model).eval()
    assert pruned.config.pruned_dims == 15
    for block in pruned.blocks:
        assert block.attn.qkv.in_features == block.attn.proj.in_features == 15
        assert block.attn.qkv.out_features == 2 * 24 + 15
        assert block.mlp.fc1.in_features == 15
    assert count_params(pruned) < count_params(model)
    template, search = inputs(model, batch=2)
    with torch.no_grad():
        masked = model(template, search)
        physical = pruned(template, search)
    assert max_error(list(masked.values()), list(physical.values())) <= 1e-5


def test_pruning_refuses_relaxed_masks():
    model = tiny()
    randomize_masks(model)
    with pytest.raises(ValueError, match="not binary"):
        prune_network(model)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    model = tiny(seed=0).eval()
    randomize_masks(model)
    path = str(tmp_path / "abtrack.safetensors")
    save_weights(model, path)
    restored = tiny(seed=5).eval()
    load_weights(restored, path)
    template, search = inputs(model)
    with torch.no_grad():
        assert (
            max_error(
                list(model(template, search).values()), list(restored(template, search).values())
            )
            == 0.0
        )

    with pytest.raises(CheckpointMismatch) as caught:
        load_weights(tiny(depth=5), path)
    assert "blocks.4" in str(caught.value)


def test_pruned_checkpoint_loads_into_the_pruned_layout(tmp_path):
    model = tiny().eval()
    randomize_masks(model)
    binarize_network(model, 0.3)
    pruned = prune_network(model).eval()
    path = str(tmp_path / "pruned.safetensors")
    save_weights(pruned, path)
    rebuilt = tiny(seed=3, pruned=True).eval()
    load_weights(rebuilt, path)  # kept-dimension indices travel as buffers
    template, search = inputs(model)
    with torch.no_grad():
        assert (
            max_error(
                list(pruned(template, search).values()), list(rebuilt(template, search).values())
            )
            == 0.0
        )
    with pytest.raises(CheckpointMismatch):
        load_weights(tiny(), path)


def timm_tiny_state(dim: int = 24, depth: int = 4, grid: int = 4, prefix_tokens: int = 1):
    """A checkpoint in timm's ViT/DeiT key layout, with the tiny test sizes."""
    generator = torch.Generator().manual_seed(7)

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    state = {
        "cls_token": rand(1, 1, dim),
        "pos_embed": rand(1, prefix_tokens + grid * grid, dim),
        "patch_embed.proj.weight": rand(dim, 3, 16, 16),
        "patch_embed.proj.bias": rand(dim),
        "norm.weight": rand(dim),
        "norm.bias": rand(dim),
        "head.weight": rand(10, dim),
        "head.bias": rand(10),
    }
    if prefix_tokens == 2:
        state["dist_token"] = rand(1, 1, dim)
    for i in range(depth):
        for name, shape in [
            ("norm1.weight", (dim,)), ("norm1.bias", (dim,)),
            ("attn.qkv.weight", (3 * dim, dim)), ("attn.qkv.bias", (3 * dim,)),
            ("attn.proj.weight", (dim, dim)), ("attn.proj.bias", (dim,)),
            ("norm2.weight", (dim,)), ("norm2.bias", (dim,)),
            ("mlp.fc1.weight", (4 * dim, dim)), ("mlp.fc1.bias", (4 * dim,)),
            ("mlp.fc2.weight", (dim, 4 * dim)), ("mlp.fc2.bias", (dim,)),
        ]:  # fmt: skip
            state[f"blocks.{i}.{name}"] = rand(*shape)
    return state


def test_timm_vit_loader_maps_every_backbone_weight(tmp_path):
    from safetensors.torch import save_file

    state = timm_tiny_state()
    path = str(tmp_path / "vit_tiny.safetensors")
    save_file(state, path)
    model = tiny()
    report = load_timm_vit(model, path)

    assert report.unused == ["head.bias", "head.weight"]
    assert "decisions.0.linear.weight" in report.missing and "blocks.0.attn.d1" in report.missing
    assert not any(k.startswith(("blocks.", "patch_embed")) and k in report.missing for k in state)
    own = model.state_dict()
    for key in state:
        if key.startswith(("blocks.", "patch_embed.", "norm.")):
            assert torch.equal(own[key], state[key]), key
    assert torch.equal(own["bypass_token"], state["cls_token"] + state["pos_embed"][:, :1])
    assert torch.equal(own["pos_embed_search"], state["pos_embed"][:, 1:])  # 4x4 -> 4x4
    assert own["pos_embed_template"].shape == (1, 4, 24)  # 4x4 resampled to 2x2
    assert report.resampled["pos_embed_template"] == ((4, 4), (2, 2))
    assert all(bool((block.attn.d1 == 1).all()) for block in model.blocks)


def test_timm_loader_handles_distilled_layout_and_rejects_other_widths():
    model = tiny()
    report = load_timm_vit(model, timm_tiny_state(prefix_tokens=2))
    assert "dist_token" in report.unused
    assert torch.equal(model.pos_embed_search, timm_tiny_state(prefix_tokens=2)["pos_embed"][:, 2:])
    with pytest.raises(ValueError, match="attn.qkv.weight"):
        load_timm_vit(tiny(), timm_tiny_state(dim=48))
    with pytest.raises(ValueError, match="unpruned"):
        load_timm_vit(tiny(pruned=True), timm_tiny_state())


def test_abtrack_avit_tiny_is_deit_tiny_with_a_vit_weights():
    """The paper's headline model: A-ViT-T is DeiT-Tiny's architecture (A-ViT adds none)."""
    card = get_card("abtrack_avit_tiny")
    assert "A-ViT" in card.backbone and "CC-BY-NC-SA-4.0" in card.extra["backbone_weights"]
    assert "not run" in card.extra["token_halting"]
    avit, deit = create_model("abtrack_avit_tiny"), create_model("abtrack_deit_tiny")
    shapes = [(n, p.shape) for n, p in avit.named_parameters()]
    assert shapes == [(n, p.shape) for n, p in deit.named_parameters()]
    assert (avit.config.embed_dim, avit.config.depth, avit.config.num_heads) == (192, 12, 3)


def test_the_a_vit_release_file_loads_without_running_its_pickle(tmp_path):
    """A-ViT's tiny-10-30.pth: the timm-layout state dict under 'model', its argparse
    arguments pickled next to it (read by the safe release reader)."""
    state = timm_tiny_state()
    path = str(tmp_path / "tiny-10-30.pth")
    args = argparse.Namespace(model="avit_tiny_patch16_224", gate_scale=10.0, gate_center=30)
    torch.save({"model": state, "epoch": 99, "args": args}, path)
    model = tiny()
    report = load_timm_vit(model, path)
    assert report.unused == ["head.bias", "head.weight"]
    own = model.state_dict()
    for key in ("blocks.0.attn.qkv.weight", "patch_embed.proj.weight", "norm.bias"):
        assert torch.equal(own[key], state[key])


def test_position_resampling_keeps_constants_and_identity():
    constant = torch.arange(6.0).repeat(1, 196, 1)  # (1, 14*14, 6), constant per channel
    for size in (8, 16):
        resampled = resample_grid(constant, size)
        assert resampled.shape == (1, size * size, 6)
        torch.testing.assert_close(resampled, torch.arange(6.0).repeat(1, size * size, 1))
    grid = torch.randn(1, 64, 6)
    assert torch.equal(resample_grid(grid, 8), grid)


def _onnx_session(module, args, input_names, output_names):
    import onnx
    import onnxruntime

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=list(input_names),
            output_names=list(output_names),
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    assert {op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")} == {17}
    for value in proto.graph.input:  # static shapes: every dimension is a number
        assert all(d.HasField("dim_value") for d in value.type.tensor_type.shape.dim)
    return onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


def test_per_block_onnx_graphs_match_pytorch_and_step_like_the_eager_model():
    model = tiny().eval()
    set_decision_bias(model, (6.0, -6.0, -6.0))
    deploy = DeployableABTrack(model)
    sessions = {}
    for graph in deploy.graphs():
        session = _onnx_session(
            graph.module, graph.example_inputs, graph.input_names, graph.output_names
        )
        feeds = {n: t.numpy() for n, t in zip(graph.input_names, graph.example_inputs)}
        with torch.no_grad():
            expected = graph.module(*graph.example_inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, feeds)
        assert max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected)) <= 1e-4
        sessions[graph.name] = session
    assert not model.training  # exporting the stages must not switch the network's mode

    # The runtime's loop on ONNX Runtime sessions, decisions taken on the host.
    template, search = inputs(model)
    (template_tokens,) = sessions["template"].run(None, {"template": template.numpy()})
    (tokens,) = sessions["stem"].run(
        None, {"template_tokens": template_tokens, "search": search.numpy()}
    )
    ran = []
    for index in range(len(model.decisions)):
        (probability,) = sessions[f"decision_{index}"].run(None, {"tokens": tokens})
        if float(probability[0, 0]) <= deploy.threshold:
            (tokens,) = sessions[f"block_{index}"].run(None, {"tokens": tokens})
            ran.append(index)
    outputs = sessions["head"].run(None, {"tokens": tokens})
    assert ran == [1, 2]
    with torch.no_grad():
        eager = model(template, search)
    for name, value in zip(model.card.output_names, outputs):
        assert float(np.abs(value - eager[name].numpy()).max()) <= 1e-4


def test_single_search_graph_export_keeps_input_dependent_bypass(tmp_path):
    import onnxruntime

    from ros_tracker.export.onnx import export_onnx, op_counts, verify_export

    model = tiny().eval()
    template, search = inputs(model, batch=2)
    with torch.no_grad():
        (tokens,) = model.encode_template(template)
    split_decision(model, tokens, search)
    exported = export_onnx(model, str(tmp_path / "abtrack_tiny"))
    assert op_counts(exported.search_path).get("Where", 0) >= len(model.decisions)
    assert verify_export(model, exported).max_abs_error <= 1e-4

    session = onnxruntime.InferenceSession(exported.search_path, providers=["CPUExecutionProvider"])
    for i in range(2):  # sample 0 bypasses the first gated block, sample 1 runs it
        got = session.run(
            None,
            {"template_tokens": tokens[i : i + 1].numpy(), "search": search[i : i + 1].numpy()},
        )
        with torch.no_grad():
            expected = model.track_search(tokens[i : i + 1], search[i : i + 1])
        assert max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected)) <= 1e-4
