"""Native TensorRT engines built from the exported ONNX graphs, cached per GPU and version.

Supported Python APIs: TensorRT 8.5 to 10.x, name-based I/O only (``num_io_tensors``,
``get_tensor_name``, ``set_tensor_address``, ``execute_async_v3``): JetPack 5 (Xavier) ships
8.5, JetPack 6 (Orin) 8.6 or 10.x.

Version differences handled here:
* 8.5 has no ONNX LayerNormalization importer (8.6 added it): the graph is parsed from a copy
  with each LayerNormalization decomposed into elementary ops (ros_tracker.export.onnx_rewrite),
  whose layers are pinned to fp32 in fp16 engines like the 8.6+ normalisation layers.
* 8.x needs the EXPLICIT_BATCH network flag; 10 removed implicit batch (the flag is deprecated
  and no longer needed) together with the binding-index APIs and ``max_workspace_size``;
  the workspace limit goes through ``set_memory_pool_limit`` (8.4+) in every version.
* fp16 (weakly typed networks, 8.x-10.x): the FP16 builder flag, with LayerNormalization
  layers pinned to fp32 (ViT LayerNorms overflow in fp16; the export keeps them one op).
* TensorRT 11 builds strongly typed networks only: the builder flag is gone and layer
  precisions follow the ONNX graph's tensor types. Our exports are fp32 graphs, so on
  TensorRT >= 11 an fp16 request is refused with a clear error instead of silently building
  fp32; an fp16-typed ONNX graph would have to be exported for it, which this package does
  not do yet.

NOT RUN ON HARDWARE: no GPU and no TensorRT were available where this was written. The
builder and the engine I/O below follow the TensorRT 8.5-10 Python API documentation; the
cache policy around them (ros_tracker.export.engine_cache) is unit-tested without TensorRT.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional, Tuple

from ros_tracker.export.engine_cache import (
    EngineCache,
    EngineKey,
    atomic_write_bytes,
    default_cache_dir,
    get_or_build,
    sha256_file,
)
from ros_tracker.export.onnx_rewrite import DECOMPOSED_MARK, decompose_layer_norm
from ros_tracker.runtime.backends.base import BackendUnavailable

LOGGER = logging.getLogger("ros_tracker.runtime.tensorrt")

DEFAULT_WORKSPACE_BYTES = 1 << 30  # 1 GiB: enough for these models, fits an 8 GB Orin Nano
MIN_VERSION = (8, 5)


def import_tensorrt() -> Any:
    """The tensorrt module, or BackendUnavailable saying why it cannot be used here."""
    try:
        import tensorrt
    except Exception as error:  # ImportError, or OSError from a missing libnvinfer
        raise BackendUnavailable(f"cannot import tensorrt ({error})") from error
    version = version_tuple(tensorrt.__version__)
    if version < MIN_VERSION:
        raise BackendUnavailable(
            f"TensorRT {tensorrt.__version__} is too old: name-based tensor I/O needs >= 8.5"
        )
    return tensorrt


def version_tuple(text: str) -> Tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def cuda_compute_capability(device_id: int = 0) -> str:
    """``"major.minor"`` of the CUDA device, read through torch (BackendUnavailable if none)."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("no CUDA device visible to torch")
    major, minor = torch.cuda.get_device_capability(device_id)
    return f"{major}.{minor}"


def is_strongly_typed_only(trt: Any) -> bool:
    return version_tuple(trt.__version__) >= (11,)


def onnx_has_float16(onnx_path: str) -> bool:
    """Whether the graph carries fp16 tensors of its own (what strongly typed builds need)."""
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    fp16 = onnx.TensorProto.FLOAT16
    if any(init.data_type == fp16 for init in model.graph.initializer):
        return True
    values = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    return any(v.type.tensor_type.elem_type == fp16 for v in values)


def _network_flags(trt: Any) -> int:
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if version_tuple(trt.__version__) < (10,):
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if is_strongly_typed_only(trt) and hasattr(creation, "STRONGLY_TYPED"):
        flags |= 1 << int(creation.STRONGLY_TYPED)
    return flags


def _pin_layer_norms_to_fp32(trt: Any, network: Any, config: Any) -> int:
    """Keep LayerNorm layers in fp32 inside an fp16 engine; returns how many were pinned.

    That is the normalisation layers (8.6+), or on 8.5 every layer of a decomposed LayerNorm
    (recognised by the node names ros_tracker.export.onnx_rewrite gives them).
    """
    normalization = getattr(trt.LayerType, "NORMALIZATION", None)  # 8.6+
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if (normalization is not None and layer.type == normalization) or (
            DECOMPOSED_MARK in (layer.name or "")
        ):
            layer.precision = trt.float32
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.float32)
            pinned += 1
    if pinned:
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    return pinned


def needs_layer_norm_rewrite(trt: Any) -> bool:
    """TensorRT < 8.6 has no importer for ONNX LayerNormalization."""
    return version_tuple(trt.__version__) < (8, 6)


def _parse(trt: Any, parser: Any, onnx_path: str) -> bool:
    if not needs_layer_norm_rewrite(trt):
        return bool(parser.parse_from_file(onnx_path))
    import onnx

    model = onnx.load(onnx_path)
    if any(node.op_type == "LayerNormalization" for node in model.graph.node):
        LOGGER.info("TensorRT %s: decomposing LayerNormalization nodes", trt.__version__)
        model = decompose_layer_norm(model)
    return bool(parser.parse(model.SerializeToString()))


def build_serialized_engine(
    onnx_path: str,
    precision: str = "fp32",
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    timing_cache_path: Optional[str] = None,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine (bytes). Not run on hardware here."""
    trt = import_tensorrt()
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, trt_logger)
    if not _parse(trt, parser, onnx_path):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if precision == "fp16":
        if is_strongly_typed_only(trt):
            if not onnx_has_float16(onnx_path):
                raise BackendUnavailable(
                    f"TensorRT {trt.__version__} builds strongly typed networks only: fp16 must "
                    f"come from the ONNX graph's own types, and {onnx_path} is an fp32 graph. "
                    "Use precision fp32 with this TensorRT version."
                )
        else:
            if not getattr(builder, "platform_has_fast_fp16", True):
                LOGGER.warning("this GPU has no fast fp16; building fp16 anyway as requested")
            config.set_flag(trt.BuilderFlag.FP16)
            pinned = _pin_layer_norms_to_fp32(trt, network, config)
            LOGGER.info("fp16 engine: %d LayerNormalization layers kept in fp32", pinned)
    elif precision != "fp32":
        raise ValueError(f"precision must be fp32 or fp16, got {precision!r}")
    timing_cache = None
    if timing_cache_path:
        data = b""
        if os.path.isfile(timing_cache_path):
            with open(timing_cache_path, "rb") as handle:
                data = handle.read()
        timing_cache = config.create_timing_cache(data)
        if not config.set_timing_cache(timing_cache, ignore_mismatch=True):
            LOGGER.info("timing cache %s not usable; starting a new one", timing_cache_path)
            timing_cache = config.create_timing_cache(b"")
            config.set_timing_cache(timing_cache, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable(f"TensorRT failed to build an engine from {onnx_path}")
    if timing_cache_path and timing_cache is not None:
        atomic_write_bytes(timing_cache_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def engine_key(
    model: str, graph: str, onnx_path: str, precision: str, trt_version: str, capability: str
) -> EngineKey:
    return EngineKey(
        model=model,
        graph=graph,
        onnx_sha256=sha256_file(onnx_path),
        precision=precision,
        tensorrt_version=trt_version,
        compute_capability=capability,
    )


def ensure_engine(
    model: str,
    graph: str,
    onnx_path: str,
    precision: str = "fp32",
    engine_cache_dir: Optional[str] = None,
    device_id: int = 0,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    read_only_dirs: Tuple[str, ...] = (),
) -> str:
    """Path of a cached engine for this graph on this GPU, building it first if needed."""
    trt = import_tensorrt()
    key = engine_key(
        model, graph, onnx_path, precision, trt.__version__, cuda_compute_capability(device_id)
    )
    cache = EngineCache(engine_cache_dir or default_cache_dir())
    return get_or_build(
        key,
        lambda: build_serialized_engine(
            onnx_path, precision, workspace_bytes, cache.timing_cache_path(key)
        ),
        cache,
        read_only_dirs=read_only_dirs,
        describe=f"{model} ({graph} graph)",
        info={"onnx_path": os.path.abspath(onnx_path), "workspace_bytes": int(workspace_bytes)},
    )
