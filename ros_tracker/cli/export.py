"""``ros-tracker export MODEL --format onnx|engine [--fp16] [--out PATH] [--verify]``.

``onnx`` writes the export folder (``template.onnx`` + ``search.onnx``, see
ros_tracker.export.onnx), ``--verify`` compares ONNX Runtime with PyTorch on random inputs
and fails above 1e-4. ``engine`` writes the same folder plus TensorRT engines built on this
machine's GPU (and their JSON sidecars); the tracker finds them when ``model`` names the
folder. ``--fp16`` applies to engines only: the ONNX graphs stay fp32 and TensorRT chooses
fp16 kernels at build time.
"""

from __future__ import annotations

import argparse
import os
import sys

from ros_tracker.cli.common import choice

FORMATS = ("onnx", "engine")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="zoo name or .safetensors file")
    parser.add_argument(
        "--format", required=True, type=choice("format", FORMATS), help="onnx or engine"
    )
    parser.add_argument("--fp16", action="store_true", help="fp16 TensorRT engine")
    parser.add_argument("--out", help="output folder (default: exported/<model>)")
    parser.add_argument(
        "--verify", action="store_true", help="compare the export with PyTorch on random inputs"
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (>= 17)")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from ros_tracker.export.onnx import DEFAULT_OPSET, export_onnx, op_counts, verify_export
    from ros_tracker.runtime.model_files import resolve_model

    if args.fp16 and args.format == "onnx":
        raise ValueError(
            "--fp16 applies to --format engine: the ONNX graphs stay fp32 and TensorRT (or "
            "ONNX Runtime's TensorRT provider, precision fp16) picks fp16 at build time"
        )
    if args.format == "engine":
        _require_tensorrt()  # before exporting anything: nothing half-done is left behind
    source = resolve_model(args.model)
    if source.kind == "onnx":
        raise ValueError(f"{args.model} is already an ONNX export")
    out = args.out or os.path.join("exported", source.card.name)
    network = source.build_network()
    export = export_onnx(network, out, opset=args.opset or DEFAULT_OPSET)
    layer_norms = op_counts(export.search_path).get("LayerNormalization", 0)
    print(export.template_path)
    print(export.search_path)
    _say(f"exported {source.card.name}: {layer_norms} LayerNormalization nodes in the search graph")
    status = 0
    if args.verify:
        report = verify_export(network, export)
        _say(f"verify (ONNX Runtime vs PyTorch): {report.summary()}")
        status = 0 if report.ok else 1
    if args.format == "engine":
        status = max(status, _build_engines(source, export, args))
    return status


def _require_tensorrt() -> None:
    from ros_tracker.export.tensorrt import cuda_compute_capability, import_tensorrt
    from ros_tracker.runtime.backends.base import BackendUnavailable

    try:
        import_tensorrt()
        cuda_compute_capability()
    except BackendUnavailable as error:
        raise RuntimeError(
            f"--format engine needs TensorRT and a CUDA GPU on this machine: {error}. "
            "Engines are specific to the GPU and TensorRT version they are built with: export "
            "with --format onnx here and build the engine on the target (this command there, "
            "or the tracker on its first start with backend tensorrt)"
        ) from error


def _build_engines(source, export, args: argparse.Namespace) -> int:
    from ros_tracker.export.tensorrt import ensure_engine

    precision = "fp16" if args.fp16 else "fp32"
    for graph, path in (("template", export.template_path), ("search", export.search_path)):
        engine = ensure_engine(
            source.card.name, graph, path, precision, engine_cache_dir=export.folder
        )
        print(engine)
    if not args.verify:
        return 0
    # Not run on hardware here (no GPU): compares the engines with PyTorch on the GPU.
    import numpy as np

    from ros_tracker.runtime.backends.tensorrt_backend import TensorRTBackend
    from ros_tracker.runtime.backends.torch_backend import TorchBackend

    card = source.card
    engine_backend = TensorRTBackend(card, export, precision, engine_cache_dir=export.folder)
    reference = TorchBackend(card, source.build_network(), device="cuda")
    import torch

    from ros_tracker.zoo.base import example_template_inputs

    generator = torch.Generator().manual_seed(0)
    templates = {
        name: tensor.numpy() for name, tensor in example_template_inputs(card, 1, generator).items()
    }
    rng = np.random.default_rng(0)
    search = rng.standard_normal((1, 3, card.search_size, card.search_size), np.float32)
    for backend in (engine_backend, reference):
        backend.set_template(templates)
    got, want = engine_backend.run_search(search), reference.run_search(search)
    error = max(float(np.max(np.abs(got[n] - want[n]))) for n in card.output_names)
    tolerance = 1e-2 if args.fp16 else 1e-3
    _say(f"verify (TensorRT {precision} vs PyTorch): max abs error {error:.2e}")
    return 0 if error <= tolerance else 1
