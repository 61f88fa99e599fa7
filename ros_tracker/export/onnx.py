"""Export a tracker network to a pair of static-shape ONNX graphs and check them.

Layout of an export (one folder per model; the folder is what ``model:`` points at)::

    <out>/template.onnx   inputs card.template_inputs -> outputs: template state
    <out>/search.onnx     inputs: template state + "search"  -> outputs card.output_names

Both graphs carry the card in ``metadata_props`` (see ros_tracker.export.metadata), so either
file alone identifies the model. The template graph runs once per (re)initialisation, the
search graph every frame, which is how the deployment backends keep the template state on the
device between frames.

Opset 17 is the floor: from 17 on, LayerNorm exports as one ``LayerNormalization`` node,
which TensorRT maps to its normalisation layer and can keep in fp32 when building fp16
engines (decomposed LayerNorms overflow in fp16). Shapes are static (batch 1): dynamic axes
make the TensorRT provider rebuild engines and buy nothing for a single-target tracker.

Which torch exporter runs: the TorchScript-based exporter (``dynamo=False``) where the
installed torch still has it (checked with torch 2.13, where it is deprecated but works and
needs nothing beyond torch); otherwise the ``torch.export`` based one, which needs the
``onnxscript`` package.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ros_tracker.export.metadata import export_metadata
from ros_tracker.export.onnx_files import (  # noqa: F401  (the read side, re-exported here)
    SEARCH_FILE,
    SEARCH_INPUT,
    TEMPLATE_FILE,
    OnnxExport,
    find_export,
    read_card,
    read_metadata,
    state_names,
)
from ros_tracker.zoo.base import example_template_inputs
from ros_tracker.zoo.card import ModelCard

LOGGER = logging.getLogger("ros_tracker.export")

MIN_OPSET = 17
DEFAULT_OPSET = 17
FP32_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The network could not be exported, or the exported graph failed a check."""


@dataclass
class VerifyReport:
    """Largest absolute difference between ONNX Runtime and PyTorch, per output."""

    errors: Dict[str, float] = field(default_factory=dict)
    scales: Dict[str, float] = field(default_factory=dict)  # largest |PyTorch value| per output
    tolerance: float = FP32_TOLERANCE
    trials: int = 0

    @property
    def max_abs_error(self) -> float:
        return max(self.errors.values()) if self.errors else 0.0

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.tolerance

    def summary(self) -> str:
        # Each error next to the largest magnitude of that output, to read it relatively.
        parts = ", ".join(
            f"{name} {err:.2e} (of {self.scales.get(name, 0.0):.1e})"
            for name, err in self.errors.items()
        )
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"max abs error {self.max_abs_error:.2e} (tolerance {self.tolerance:.0e}, "
            f"{self.trials} random inputs: {parts}) {verdict}"
        )


class _TemplateGraph(nn.Module):
    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, *templates: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.network.encode_template(*templates))


class _SearchGraph(nn.Module):
    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, *state_and_search: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.network.track_search(*state_and_search))


def _run_exporter(
    module: nn.Module,
    args: Tuple[torch.Tensor, ...],
    path: str,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int,
) -> None:
    common = dict(input_names=list(input_names), output_names=list(output_names))
    takes_dynamo = "dynamo" in inspect.signature(torch.onnx.export).parameters
    try:
        kwargs = dict(common, opset_version=opset, do_constant_folding=True)
        if takes_dynamo:
            kwargs["dynamo"] = False
        with warnings.catch_warnings():
            # torch >= 2.9 warns that this exporter is deprecated; it is still the one that
            # needs no extra package, and the graph it writes is checked below either way.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, args, path, **kwargs)
        return
    except Exception as error:
        if not takes_dynamo:
            raise ExportError(f"ONNX export failed: {error}") from error
        legacy_error = error
    try:
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ExportError(
            f"the TorchScript-based ONNX exporter failed ({legacy_error}) and the "
            "torch.export-based one needs the 'onnxscript' package (pip install onnxscript)"
        ) from error
    LOGGER.info("TorchScript-based export failed (%s); trying the torch.export one", legacy_error)
    # This exporter writes opset 18 ops (Split with num_outputs, ...): below 18 its graphs do
    # not pass the checker (seen with torch 2.13 and onnxscript 0.7).
    program = torch.onnx.export(
        module,
        args,
        dynamo=True,
        opset_version=max(opset, 18),
        external_data=False,
        verbose=False,
        **common,
    )
    program.save(path)


def _set_metadata(path: str, metadata: Dict[str, str]) -> None:
    import onnx

    model = onnx.load(path)
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
    onnx.save(model, path)


def graph_opset(path: str) -> int:
    import onnx

    model = onnx.load(path, load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ExportError(f"{path} declares no default-domain opset")


def op_counts(path: str) -> Dict[str, int]:
    """How many nodes of each op type the graph has (top level and nested functions)."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    counts: Dict[str, int] = {}
    nodes = list(model.graph.node)
    for function in model.functions:
        nodes.extend(function.node)
    for node in nodes:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _check_graph(path: str, opset: int, expect_layer_norm: bool) -> None:
    import onnx

    onnx.checker.check_model(path)
    found = graph_opset(path)
    if found < MIN_OPSET:
        raise ExportError(f"{path} has opset {found}; at least {MIN_OPSET} is needed")
    if expect_layer_norm and op_counts(path).get("LayerNormalization", 0) == 0:
        raise ExportError(
            f"{path}: the network has LayerNorm modules but the graph has no LayerNormalization "
            "node (decomposed LayerNorm overflows in TensorRT fp16)"
        )


def _uses_layer_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.LayerNorm) for m in module.modules())


def _example_templates(
    card: ModelCard, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, ...]:
    """Template-graph inputs in card.template_inputs order."""
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    return tuple(example_template_inputs(card, generator=generator).values())


def _example_search(card: ModelCard, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((1, 3, card.search_size, card.search_size), generator=generator)


def export_onnx(
    network: nn.Module,
    out_dir: str,
    opset: int = DEFAULT_OPSET,
    extra_metadata: Optional[Dict[str, str]] = None,
) -> OnnxExport:
    """Write ``template.onnx`` and ``search.onnx`` of ``network`` into ``out_dir`` and check them.

    The files are written to a temporary folder next to ``out_dir`` and moved in place only
    once both passed ``onnx.checker``, so a failed export never leaves half a model behind.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is below the supported minimum {MIN_OPSET}")
    card: ModelCard = network.card
    network = network.eval()
    templates = _example_templates(card)
    with torch.no_grad():
        state = tuple(network.encode_template(*templates))
    names = state_names(card)
    if len(state) != len(names):
        raise ExportError(
            f"{card.name}: encode_template returned {len(state)} tensors but the card names "
            f"{len(names)} state tensors ({', '.join(card.template_state_names)})"
        )
    expect_layer_norm = _uses_layer_norm(network)
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        template_path = os.path.join(staging, TEMPLATE_FILE)
        search_path = os.path.join(staging, SEARCH_FILE)
        with torch.no_grad():
            _run_exporter(
                _TemplateGraph(network),
                templates,
                template_path,
                card.template_inputs,
                names,
                opset,
            )
            _run_exporter(
                _SearchGraph(network),
                state + (_example_search(card),),
                search_path,
                names + (SEARCH_INPUT,),
                card.output_names,
                opset,
            )
        extra = dict(extra_metadata or {})
        extra["opset"] = str(graph_opset(search_path))
        _set_metadata(template_path, export_metadata(card, "template", extra))
        _set_metadata(search_path, export_metadata(card, "search", extra))
        # The template half may hold no LayerNorm (a convolutional template branch, or a
        # pass-through): only the search graph, which always runs the transformer, must.
        _check_graph(template_path, opset, expect_layer_norm=False)
        _check_graph(search_path, opset, expect_layer_norm=expect_layer_norm)
        from ros_tracker.export import stages

        manifest = None
        if stages.has_per_block_form(network):
            stages.export_stages(network, os.path.join(staging, stages.STAGES_DIR), opset)
        os.makedirs(out_dir, exist_ok=True)
        old_stages = os.path.join(out_dir, stages.STAGES_DIR)
        if os.path.isdir(old_stages):
            shutil.rmtree(old_stages)
        for name in (TEMPLATE_FILE, SEARCH_FILE, stages.STAGES_DIR):
            if os.path.exists(os.path.join(staging, name)):
                os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
        manifest = stages.read_manifest(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return OnnxExport(
        card=card,
        template_path=os.path.join(out_dir, TEMPLATE_FILE),
        search_path=os.path.join(out_dir, SEARCH_FILE),
        stages=manifest,
    )


def _ort_session(path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def verify_export(
    network: nn.Module,
    export: OnnxExport,
    trials: int = 2,
    tolerance: float = FP32_TOLERANCE,
    seed: int = 0,
) -> VerifyReport:
    """Compare ONNX Runtime (CPU) with PyTorch on random inputs, both halves.

    The search graph is fed the state computed by the ONNX template graph, so the errors
    measure the whole deployed chain, not each half in isolation.
    """
    card: ModelCard = network.card
    network = network.eval()
    template_session = _ort_session(export.template_path)
    search_session = _ort_session(export.search_path)
    names = state_names(card)
    report = VerifyReport(tolerance=tolerance, trials=trials)
    staged = None
    if export.stages is not None:  # the per-block graphs run the way the runtime runs them
        from ros_tracker.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

        staged = OnnxRuntimeBackend(card, export, device="cpu", threads=1)
    generator = torch.Generator().manual_seed(seed)
    s_shape = (1, 3, card.search_size, card.search_size)

    def record(name: str, expected: torch.Tensor, actual: np.ndarray) -> None:
        expected_np = expected.detach().cpu().numpy()
        if expected_np.shape != actual.shape:
            raise ExportError(
                f"{name}: ONNX shape {actual.shape} differs from PyTorch {expected_np.shape}"
            )
        error = (
            float(np.max(np.abs(expected_np.astype(np.float64) - actual))) if actual.size else 0.0
        )
        report.errors[name] = max(report.errors.get(name, 0.0), error)
        scale = float(np.max(np.abs(expected_np))) if expected_np.size else 0.0
        report.scales[name] = max(report.scales.get(name, 0.0), scale)

    for _ in range(trials):
        templates = _example_templates(card, generator)
        search = torch.randn(s_shape, generator=generator)
        with torch.no_grad():
            state = tuple(network.encode_template(*templates))
            outputs = tuple(network.track_search(*state, search))
        feeds = {name: t.numpy() for name, t in zip(card.template_inputs, templates)}
        onnx_state = template_session.run(list(names), feeds)
        for name, expected, actual in zip(names, state, onnx_state):
            record(name, expected, actual)
        search_feeds = dict(zip(names, onnx_state))
        search_feeds[SEARCH_INPUT] = search.numpy()
        onnx_outputs = search_session.run(list(card.output_names), search_feeds)
        for name, expected, actual in zip(card.output_names, outputs, onnx_outputs):
            record(name, expected, actual)
        if staged is not None:
            staged.set_template({k: v.copy() for k, v in feeds.items()})
            staged_outputs = staged.run_search(search.numpy())
            for name, expected in zip(card.output_names, outputs):
                record("stages:" + name, expected, staged_outputs[name])
    return report


def list_inputs(path: str) -> List[str]:
    import onnx

    model = onnx.load(path, load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]
