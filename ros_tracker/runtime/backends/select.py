"""Choosing and creating the inference backend.

``backend="auto"`` takes the fastest one that loads here: native TensorRT, then ONNX Runtime
with its best provider (TensorRT, CUDA, CPU), then PyTorch. Every backend that is skipped is
logged with its reason on the ``ros_tracker.runtime`` logger, so a robot that silently runs
on the CPU says why. An explicitly named backend that cannot load raises BackendUnavailable
with the reason instead of falling back.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Union

from ros_tracker.export.engine_cache import default_cache_dir
from ros_tracker.runtime.backends.base import BackendUnavailable, InferenceBackend
from ros_tracker.runtime.model_files import (
    ModelSource,
    import_torch,
    resolve_model,
    source_from_network,
)
from ros_tracker.zoo.card import ModelCard

if TYPE_CHECKING:
    import torch

LOGGER = logging.getLogger("ros_tracker.runtime")

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "fp16")
AUTO_ORDER = ("tensorrt", "onnxruntime", "torch")


def _check_choice(what: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _tensorrt(
    card: ModelCard, source: ModelSource, device: str, precision: str, cache_dir: str, **_
) -> InferenceBackend:
    if device == "cpu":
        raise BackendUnavailable("TensorRT needs a CUDA device and device is 'cpu'")
    from ros_tracker.export.tensorrt import cuda_compute_capability, import_tensorrt

    import_tensorrt()  # fail fast, before exporting anything
    # Device buffers and the CUDA stream of the native backend are torch CUDA tensors.
    import_torch("the native TensorRT backend (its device buffers are torch CUDA tensors)")
    cuda_compute_capability()
    from ros_tracker.runtime.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(card, source.onnx_export(cache_dir), precision, cache_dir)


def _onnxruntime(
    card: ModelCard,
    source: ModelSource,
    device: str,
    precision: str,
    cache_dir: str,
    threads: Optional[int] = None,
    **_,
) -> InferenceBackend:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise BackendUnavailable(f"cannot import onnxruntime ({error})") from error
    from ros_tracker.runtime.backends.onnxruntime_backend import (
        OnnxRuntimeBackend,
        plan_providers,
    )

    plan = plan_providers(device)
    if not plan:
        raise BackendUnavailable(
            f"onnxruntime has no execution provider for device {device!r} "
            f"(available: {', '.join(onnxruntime.get_available_providers())})"
        )
    return OnnxRuntimeBackend(
        card,
        source.onnx_export(cache_dir),
        device=device,
        precision=precision,
        engine_cache_dir=cache_dir,
        threads=threads,
        providers=plan,
    )


def _torch(
    card: ModelCard,
    source: ModelSource,
    device: str,
    precision: str,
    cache_dir: str,
    threads: Optional[int] = None,
) -> InferenceBackend:
    torch = import_torch("the torch backend")
    from ros_tracker.runtime.backends.torch_backend import TorchBackend

    if threads:
        # Process-wide in torch (intra-op pool); a node runs one tracker per process. On a
        # loaded CPU, more OpenMP threads than free cores stall each step for a long time.
        torch.set_num_threads(int(threads))
    network = source.build_network()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return TorchBackend(card, network, device=device, precision=precision)


_CREATORS: Dict[str, Callable[..., InferenceBackend]] = {
    "tensorrt": _tensorrt,
    "onnxruntime": _onnxruntime,
    "torch": _torch,
}


def _is_torch_module(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a network can only exist where torch was imported
    return torch is not None and isinstance(value, torch.nn.Module)


def _as_source(model_source: Union[ModelSource, str, torch.nn.Module]) -> ModelSource:
    if isinstance(model_source, ModelSource):
        return model_source
    if isinstance(model_source, str):
        return resolve_model(model_source)
    if _is_torch_module(model_source):
        return source_from_network(model_source)
    raise TypeError(f"cannot use {type(model_source).__name__} as a model source")


def create_backend(
    card: ModelCard,
    model_source: Union[ModelSource, str, torch.nn.Module],
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    engine_cache_dir: Optional[str] = None,
    threads: Optional[int] = None,
) -> InferenceBackend:
    """Create the requested backend, or with ``backend="auto"`` the fastest that loads.

    ``model_source`` is a resolved ModelSource, a model string (see resolve_model) or a built
    network. ``engine_cache_dir`` holds TensorRT engines and on-demand ONNX exports
    (default: ros_tracker.export.engine_cache.default_cache_dir()).
    """
    _check_choice("backend", backend, BACKENDS)
    _check_choice("device", device, DEVICES)
    _check_choice("precision", precision, PRECISIONS)
    source = _as_source(model_source)
    cache_dir = engine_cache_dir or default_cache_dir()
    options = dict(threads=threads)
    if backend != "auto":
        try:
            return _CREATORS[backend](card, source, device, precision, cache_dir, **options)
        except BackendUnavailable as error:
            raise BackendUnavailable(f"backend {backend!r} unavailable: {error}") from error
    skipped: List[str] = []
    for index, name in enumerate(AUTO_ORDER):
        try:
            chosen = _CREATORS[name](card, source, device, precision, cache_dir, **options)
        except BackendUnavailable as error:
            skipped.append(f"{name}: {error}")
            following = AUTO_ORDER[index + 1] if index + 1 < len(AUTO_ORDER) else None
            LOGGER.warning(
                "backend %s unavailable (%s)%s",
                name,
                error,
                f"; trying {following}" if following else "",
            )
            continue
        LOGGER.info("backend auto: using %s for %s", chosen.name, card.name)
        return chosen
    raise BackendUnavailable(f"no backend could load {card.name}: {' | '.join(skipped)}")
