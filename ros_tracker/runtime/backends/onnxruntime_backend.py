"""ONNX Runtime backend over the exported template and search graphs.

Execution providers are tried in the order TensorRT, CUDA, CPU, restricted to those this
onnxruntime build offers (``onnxruntime.get_available_providers()``) and to the requested
device. ONNX Runtime silently drops a provider whose libraries fail to load, so the provider
actually in use is read back from the session and gives the backend its name
(``onnxruntime-tensorrt``, ``onnxruntime-cuda``, ``onnxruntime-cpu``).

The template state is kept as OrtValues produced by the template graph through I/O binding,
on the GPU when a GPU provider runs, and bound once into the search graph's binding; per
frame only the search crop is bound (from host memory) and the outputs are copied back.

Exports with per-block graphs (ABTrack, see ros_tracker.export.stages) run those instead of
the single search graph: stem, then for each gated block its decision graph and, only when
the bypass probability is at most the threshold, its block graph, then the head. The tokens
stay OrtValues on the provider's device between stages; only the (1, 1) probabilities come
back to the host.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ros_tracker.export.engine_cache import default_cache_dir
from ros_tracker.export.onnx_files import SEARCH_INPUT, OnnxExport, state_names
from ros_tracker.runtime.backends.base import BackendUnavailable, InferenceBackend
from ros_tracker.zoo.card import ModelCard

LOGGER = logging.getLogger("ros_tracker.runtime.onnxruntime")

PROVIDER_ORDER = (
    ("tensorrt", "TensorrtExecutionProvider"),
    ("cuda", "CUDAExecutionProvider"),
    ("cpu", "CPUExecutionProvider"),
)
_GPU_PROVIDERS = ("tensorrt", "cuda")


def available_providers() -> List[str]:
    """Short names of the providers this onnxruntime offers, best first."""
    try:
        import onnxruntime
    except ImportError:
        return []
    offered = set(onnxruntime.get_available_providers())
    return [short for short, full in PROVIDER_ORDER if full in offered]


def _provider_options(
    short: str, device_id: int, precision: str, cache_dir: str, threads: Optional[int]
) -> Dict[str, Any]:
    if short == "tensorrt":
        # Engines built by the provider are cached like native ones (per GPU and version
        # inside the provider's own naming); fp16 is the provider's choice at build time.
        return {
            "device_id": device_id,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": os.path.join(cache_dir, "onnxruntime-trt"),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": os.path.join(cache_dir, "onnxruntime-trt"),
            "trt_fp16_enable": precision == "fp16",
        }
    if short == "cuda":
        return {"device_id": device_id}
    return {}


def plan_providers(
    device: str, available: Optional[List[str]] = None, allow_tensorrt: bool = True
) -> List[str]:
    """Providers to ask for, best first, for ``device`` ("auto", "cpu" or "cuda")."""
    offered = available_providers() if available is None else list(available)
    if device == "cpu":
        wanted = ["cpu"]
    elif device == "cuda":
        wanted = list(_GPU_PROVIDERS)
    elif device == "auto":
        wanted = [short for short, _ in PROVIDER_ORDER]
    else:
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if not allow_tensorrt:
        wanted = [p for p in wanted if p != "tensorrt"]
    plan = [p for p in wanted if p in offered]
    if device == "auto" and "cpu" not in plan and "cpu" in offered:
        plan.append("cpu")
    return plan


class OnnxRuntimeBackend(InferenceBackend):
    """Runs the exported pair with the best available ONNX Runtime execution provider."""

    def __init__(
        self,
        card: ModelCard,
        export: OnnxExport,
        device: str = "auto",
        precision: str = "fp32",
        engine_cache_dir: Optional[str] = None,
        device_id: int = 0,
        threads: Optional[int] = None,
        providers: Optional[List[str]] = None,
    ) -> None:
        super().__init__(card)
        try:
            import onnxruntime
        except ImportError as error:
            raise BackendUnavailable(f"cannot import onnxruntime ({error})") from error
        self._ort = onnxruntime
        plan = providers if providers is not None else plan_providers(device)
        if not plan:
            raise BackendUnavailable(
                f"onnxruntime offers no provider for device {device!r} "
                f"(available: {', '.join(onnxruntime.get_available_providers())})"
            )
        self.precision = precision
        cache_dir = engine_cache_dir or default_cache_dir()
        if "tensorrt" in plan:
            os.makedirs(os.path.join(cache_dir, "onnxruntime-trt"), exist_ok=True)
        provider_list: List[Tuple[str, Dict[str, Any]]] = [
            (
                dict(PROVIDER_ORDER)[short],
                _provider_options(short, device_id, precision, cache_dir, threads),
            )
            for short in plan
        ]
        self.template_session = self._session(export.template_path, provider_list, threads)
        self._staged: Optional[_StagedSearch] = None
        if export.stages is not None:
            self._staged = _StagedSearch(
                export, lambda path: self._session(path, provider_list, threads)
            )
            self.search_session = self._staged.stem
        else:
            self.search_session = self._session(export.search_path, provider_list, threads)
        self.provider = self._provider_in_use(self.search_session)
        if device == "cuda" and self.provider not in _GPU_PROVIDERS:
            raise BackendUnavailable(
                f"onnxruntime could not start a GPU provider (tried {', '.join(plan)})"
            )
        if precision == "fp16" and self.provider != "tensorrt":
            LOGGER.info(
                "onnxruntime-%s runs the fp32 graph: fp16 applies to its TensorRT provider only",
                self.provider,
            )
        self.name = f"onnxruntime-{self.provider}"
        if self.provider == "tensorrt" and precision == "fp16":
            self.name += "-fp16"
        self._state_names = state_names(card)
        self._state_device = "cuda" if self.provider in _GPU_PROVIDERS else "cpu"
        self._device_id = device_id
        self._search_binding = None
        self._search_input: Optional[np.ndarray] = None
        self._state: Optional[list] = None

    def _session(self, path: str, providers: List[Tuple[str, Dict[str, Any]]], threads):
        options = self._ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting worker threads: on a robot the CPU is shared with the camera driver
        # and other nodes, and per-block graphs (one thread pool per session) would starve
        # each other. Measured on a loaded 2-core machine: spinning doubled the latency.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return self._ort.InferenceSession(path, options, providers=providers)
        except Exception as error:  # corrupt file, unsupported op, provider failure
            others = [p for p in providers if p[0] != "TensorrtExecutionProvider"]
            if not others or len(others) == len(providers):
                raise BackendUnavailable(f"onnxruntime cannot load {path}: {error}") from error
            # Older onnxruntime builds reject newer TensorRT provider options (timing cache);
            # the remaining providers still run the graph.
            LOGGER.warning("onnxruntime TensorRT provider failed (%s); continuing without", error)
            providers[:] = others
            return self._session(path, providers, threads)

    @staticmethod
    def _provider_in_use(session) -> str:
        first = session.get_providers()[0]
        for short, full in PROVIDER_ORDER:
            if full == first:
                return short
        return first.replace("ExecutionProvider", "").lower()

    def set_template(self, templates: Dict[str, np.ndarray]) -> None:
        binding = self.template_session.io_binding()
        inputs = []  # kept referenced until the run: the binding may point into them
        for name in self.card.template_inputs:
            if name not in templates:
                raise ValueError(f"set_template: missing template input {name!r}")
            inputs.append(np.ascontiguousarray(templates[name], np.float32))
            binding.bind_cpu_input(name, inputs[-1])
        for name in self._state_names:
            binding.bind_output(name, self._state_device, self._device_id)
        self.template_session.run_with_iobinding(binding)
        state = binding.get_outputs()  # OrtValues, on the provider's device
        if self._staged is not None:
            self._state = state
            self._staged.set_state(dict(zip(self._state_names, state)), self._state_device)
            return
        search_binding = self.search_session.io_binding()
        for name, value in zip(self._state_names, state):
            search_binding.bind_ortvalue_input(name, value)
        for name in self.card.output_names:
            search_binding.bind_output(name, "cpu")
        # The OrtValues stay referenced by the binding (and here) for as long as they are used.
        self._state = state
        self._search_binding = search_binding

    def run_search(self, search: np.ndarray) -> Dict[str, np.ndarray]:
        if self._staged is not None:
            outputs = self._staged.run(np.ascontiguousarray(search, np.float32), self._device_id)
            return dict(zip(self.card.output_names, outputs))
        if self._search_binding is None:
            raise RuntimeError("run_search called before set_template")
        binding = self._search_binding
        self._search_input = np.ascontiguousarray(search, np.float32)
        binding.bind_cpu_input(SEARCH_INPUT, self._search_input)
        self.search_session.run_with_iobinding(binding)
        outputs = binding.copy_outputs_to_cpu()
        return dict(zip(self.card.output_names, outputs))

    @property
    def last_bypassed(self) -> Optional[List[bool]]:
        """Per gated block, whether the last frame bypassed it (per-block exports only)."""
        return None if self._staged is None else list(self._staged.bypassed)

    def close(self) -> None:
        self._search_binding = None
        self._state = None
        if self._staged is not None:
            self._staged.state = {}


class _StagedSearch:
    """The per-frame half as per-block graphs with the bypass decided between them."""

    def __init__(self, export: OnnxExport, open_session) -> None:
        from ros_tracker.export.stages import STAGES_DIR

        manifest = export.stages
        folder = os.path.join(export.folder, STAGES_DIR)

        def load(entry: Dict[str, Any]):
            return open_session(os.path.join(folder, entry["file"])), entry

        self.threshold = float(manifest["threshold"])
        self.stem, self.stem_entry = load(manifest["stem"])
        self.gates = [(load(g["decision"]), load(g["block"])) for g in manifest["gated"]]
        self.head, self.head_entry = load(manifest["head"])
        self.state: Dict[str, Any] = {}
        self.device = "cpu"
        self.bypassed: List[bool] = []

    def set_state(self, state: Dict[str, Any], device: str) -> None:
        self.state = state
        self.device = device

    def _tokens_through(self, session, entry: Dict[str, Any], tokens, device_id: int):
        binding = session.io_binding()
        binding.bind_ortvalue_input(entry["inputs"][0], tokens)
        binding.bind_output(entry["outputs"][0], self.device, device_id)
        session.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def run(self, search: np.ndarray, device_id: int) -> List[np.ndarray]:
        if not self.state:
            raise RuntimeError("run_search called before set_template")
        binding = self.stem.io_binding()
        state_input, search_input = self.stem_entry["inputs"]
        binding.bind_ortvalue_input(state_input, next(iter(self.state.values())))
        binding.bind_cpu_input(search_input, search)
        binding.bind_output(self.stem_entry["outputs"][0], self.device, device_id)
        self.stem.run_with_iobinding(binding)
        tokens = binding.get_outputs()[0]
        self.bypassed = []
        for (decision, decision_entry), (block, block_entry) in self.gates:
            probability_binding = decision.io_binding()
            probability_binding.bind_ortvalue_input(decision_entry["inputs"][0], tokens)
            probability_binding.bind_output(decision_entry["outputs"][0], "cpu")
            decision.run_with_iobinding(probability_binding)
            probability = float(probability_binding.copy_outputs_to_cpu()[0].reshape(-1)[0])
            skip = probability > self.threshold
            self.bypassed.append(skip)
            if not skip:
                tokens = self._tokens_through(block, block_entry, tokens, device_id)
        head_binding = self.head.io_binding()
        head_binding.bind_ortvalue_input(self.head_entry["inputs"][0], tokens)
        for name in self.head_entry["outputs"]:
            head_binding.bind_output(name, "cpu")
        self.head.run_with_iobinding(head_binding)
        return head_binding.copy_outputs_to_cpu()
