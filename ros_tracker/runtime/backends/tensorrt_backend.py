"""Native TensorRT backend: two engines (template, search) sharing the state on the GPU.

Device memory is held in torch CUDA tensors (torch is already a dependency on every target,
including JetPack's wheels, so cuda-python is not needed): one tensor per engine I/O tensor,
its ``data_ptr()`` given to ``set_tensor_address``. The search context's state inputs point
at the template context's output tensors, so the template state never leaves the GPU and is
never copied after ``set_template``. Both engines run on one torch CUDA stream, which orders
a template update before the next search.

ABTrack runs here as its single search graph, which computes every block and selects with
``Where`` (correct, without the bypass saving); its per-block graphs run under ONNX Runtime
(ros_tracker.export.stages). Per-block TensorRT engines would need one host round trip per
gated block for the decision and are not implemented.

NOT RUN ON HARDWARE: written against the TensorRT 8.5-10 Python API without a GPU or
TensorRT where it was developed. What is tested here: the engine cache policy, and that a
failing ``import tensorrt`` raises BackendUnavailable (auto selection then falls back).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional

import numpy as np

from ros_tracker.export.engine_cache import EngineCache, default_cache_dir, discard
from ros_tracker.export.onnx_files import SEARCH_INPUT, OnnxExport, state_names
from ros_tracker.export.tensorrt import (
    DEFAULT_WORKSPACE_BYTES,
    cuda_compute_capability,
    ensure_engine,
    import_tensorrt,
)
from ros_tracker.runtime.backends.base import BackendUnavailable, InferenceBackend
from ros_tracker.zoo.card import ModelCard

LOGGER = logging.getLogger("ros_tracker.runtime.tensorrt")


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32}
    if dtype not in table:
        raise BackendUnavailable(f"unsupported engine tensor type {dtype}")
    return table[dtype]


class _Engine:
    """One deserialized engine, its execution context and a device tensor per I/O name."""

    def __init__(self, trt: Any, runtime: Any, engine_bytes: bytes, device: Any) -> None:
        import torch

        self.engine = runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise ValueError("TensorRT could not deserialize the engine")
        self.context = self.engine.create_execution_context()
        self.inputs: List[str] = []
        self.outputs: List[str] = []
        self.tensors: Dict[str, Any] = {}
        for index in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(index)
            shape = tuple(self.engine.get_tensor_shape(name))
            if any(dim < 0 for dim in shape):
                raise BackendUnavailable(f"engine tensor {name} has a dynamic shape {shape}")
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(name)
            self.tensors[name] = torch.zeros(shape, dtype=dtype, device=device)
            self.context.set_tensor_address(name, self.tensors[name].data_ptr())

    def bind(self, name: str, tensor: Any) -> None:
        """Read input ``name`` from ``tensor`` (on the device) instead of its own buffer."""
        own = self.tensors[name]
        if tuple(own.shape) != tuple(tensor.shape) or own.dtype != tensor.dtype:
            raise BackendUnavailable(
                f"engine input {name} {tuple(own.shape)} {own.dtype} does not match "
                f"{tuple(tensor.shape)} {tensor.dtype}"
            )
        self.tensors[name] = tensor
        self.context.set_tensor_address(name, tensor.data_ptr())

    def run(self, stream: Any) -> None:
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")


class TensorRTBackend(InferenceBackend):
    """Runs the exported template and search graphs as native TensorRT engines."""

    def __init__(
        self,
        card: ModelCard,
        export: OnnxExport,
        precision: str = "fp32",
        engine_cache_dir: Optional[str] = None,
        device_id: int = 0,
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    ) -> None:
        super().__init__(card)
        trt = import_tensorrt()
        import torch

        cuda_compute_capability(device_id)  # raises BackendUnavailable without a GPU
        self.device = torch.device("cuda", device_id)
        self.precision = precision
        self.name = f"tensorrt-{precision}"
        self._trt_logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._trt_logger)
        self._stream = torch.cuda.Stream(device=self.device)
        cache_dir = engine_cache_dir or default_cache_dir()
        self.template_engine = self._load(
            trt, "template", export.template_path, cache_dir, device_id, workspace_bytes, export
        )
        self.search_engine = self._load(
            trt, "search", export.search_path, cache_dir, device_id, workspace_bytes, export
        )
        self._state = state_names(card)
        for name in self._state:
            self.search_engine.bind(name, self.template_engine.tensors[name])

    def _load(
        self,
        trt: Any,
        graph: str,
        onnx_path: str,
        cache_dir: str,
        device_id: int,
        workspace_bytes: int,
        export: OnnxExport,
    ) -> _Engine:
        # An engine whose bytes check out can still be refused by TensorRT (a different
        # build of the same version, a driver change): discard it and build once more.
        for attempt in range(2):
            path = ensure_engine(
                self.card.name,
                graph,
                onnx_path,
                self.precision,
                cache_dir,
                device_id,
                workspace_bytes,
                read_only_dirs=(export.folder,) if attempt == 0 else (),
            )
            with open(path, "rb") as handle:
                data = handle.read()
            try:
                return _Engine(trt, self._runtime, data, self.device)
            except ValueError:
                if attempt == 1:
                    raise BackendUnavailable(f"TensorRT cannot load engine {path}") from None
                LOGGER.warning("TensorRT refused engine %s; building a new one", path)
                if path.startswith(EngineCache(cache_dir).directory + os.sep):
                    discard(path)
        raise AssertionError("unreachable")

    def _upload(self, engine: _Engine, name: str, array: np.ndarray) -> None:
        import torch

        target = engine.tensors[name]
        source = torch.from_numpy(np.ascontiguousarray(array))
        if tuple(source.shape) != tuple(target.shape):
            raise ValueError(f"{name}: expected shape {tuple(target.shape)}, got {source.shape}")
        with torch.cuda.stream(self._stream):
            target.copy_(source.to(target.dtype), non_blocking=False)

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        for name in self.card.template_inputs:
            self._upload(self.template_engine, name, templates[name])
        self.template_engine.run(self._stream)
        self._stream.synchronize()

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        self._upload(self.search_engine, SEARCH_INPUT, search)
        self.search_engine.run(self._stream)
        self._stream.synchronize()
        return {
            name: self.search_engine.tensors[name].float().cpu().numpy()
            for name in self.card.output_names
        }

    def close(self) -> None:
        for attribute in ("search_engine", "template_engine"):
            if hasattr(self, attribute):
                delattr(self, attribute)
