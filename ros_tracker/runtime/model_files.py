"""What the node's ``model`` parameter (and the CLI's MODEL argument) can name, resolved.

Three kinds of source:

* a zoo name (``hit_tiny``): the card from the registry, trained weights from
  ``<models dir>/<card.weights>`` when the file exists, otherwise a random initialisation
  (seeded, so every backend sees the same network) with the warning
  "no trained weights for <name>: random initialisation". When that models directory also
  holds the exported graphs ``<name>/template.onnx`` and ``<name>/search.onnx`` whose
  metadata names the sha256 of exactly those weights (the ship tool writes it), ONNX Runtime
  and TensorRT use them as installed: nothing is exported at start-up and PyTorch is not
  needed at all;
* a ``.safetensors`` file: the card from its metadata (``card``, as written by
  ros_tracker.zoo.checkpoints.card_metadata) and, optionally, ``overrides``: a JSON object of
  builder overrides for non-default configurations;
* an exported ONNX model: its folder or either of its two graphs (ros_tracker.export.onnx),
  card from the graphs' metadata. Such a source has no PyTorch network.

Models directories searched for weights, in order: ``$ROS_TRACKER_MODELS`` (colon-separated),
the installed package's share directory ``share/ros_tracker/models``, and the source
checkout's ``models/``.

ONNX Runtime and TensorRT need the exported graphs; for zoo names without matching installed
graphs and for safetensors files they are exported on first use (through PyTorch) into
``<engine_cache_dir>/onnx/<name>-<digest>/``, the digest covering the weights, the card, the
network's and the exporter's source code, so a changed model is re-exported and an unchanged
one never is.

This module imports PyTorch only where a network is built or exported.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ros_tracker.export.engine_cache import sha256_file
from ros_tracker.export.onnx_files import (
    SEARCH_FILE,
    WEIGHTS_SHA256_KEY,
    OnnxExport,
    find_export,
    read_metadata,
)
from ros_tracker.runtime.backends.base import BackendUnavailable
from ros_tracker.zoo.card import ModelCard

if TYPE_CHECKING:
    import torch

LOGGER = logging.getLogger("ros_tracker.runtime")

RANDOM_INIT_SEED = 0
ONNX_SUFFIX = ".onnx"
SAFETENSORS_SUFFIX = ".safetensors"


def models_dirs() -> List[str]:
    """Folders searched for trained weights, most specific first (existing ones only)."""
    candidates: List[str] = []
    configured = os.environ.get("ROS_TRACKER_MODELS", "")
    candidates.extend(p for p in configured.split(os.pathsep) if p)
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(os.path.join(get_package_share_directory("ros_tracker"), "models"))
    except Exception:  # not installed through ament, or no ROS at all
        pass
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates.append(os.path.join(os.path.dirname(package_dir), "models"))
    seen = []
    for path in candidates:
        real = os.path.realpath(path)  # a development install links share/ to the checkout
        if os.path.isdir(real) and real not in seen:
            seen.append(real)
    return seen


def find_weights(card: ModelCard) -> Optional[str]:
    """Path of the card's trained weights file, if any models directory has it."""
    if not card.weights:
        return None
    for directory in models_dirs():
        path = os.path.join(directory, card.weights)
        if os.path.isfile(path):
            return path
    return None


@dataclass
class ModelSource:
    """A resolved model: its card and where its network or graphs come from."""

    card: ModelCard
    kind: str  # "zoo", "safetensors", "onnx" or "network"
    weights_path: Optional[str] = None
    export: Optional[OnnxExport] = None
    overrides: Dict[str, Any] = field(default_factory=dict)
    network: Optional[torch.nn.Module] = None

    @property
    def trained(self) -> bool:
        return self.weights_path is not None or self.kind in ("onnx", "network")

    def describe(self) -> str:
        if self.kind == "onnx" and self.export is not None:
            return f"{self.card.name} (ONNX {self.export.folder})"
        if self.weights_path:
            return f"{self.card.name} ({self.weights_path})"
        return f"{self.card.name} ({self.kind})"

    def build_network(self) -> torch.nn.Module:
        """The PyTorch network with its weights (built once, then reused)."""
        if self.network is not None:
            return self.network
        if self.kind == "onnx":
            raise BackendUnavailable(
                f"{self.describe()} is an exported ONNX model: it has no PyTorch network"
            )
        torch = import_torch(f"building the {self.card.name} network")
        from ros_tracker.zoo.checkpoints import load_weights
        from ros_tracker.zoo.registry import create_model

        if self.weights_path:
            network = create_model(self.card.name, **self.overrides)
            load_weights(network, self.weights_path)
            if self.kind == "safetensors":
                # The file's card describes its weights (e.g. converted release weights keep
                # their authors' test-time settings): export and the runtime use that one.
                network.card = self.card
        else:
            LOGGER.warning("no trained weights for %s: random initialisation", self.card.name)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                network = create_model(self.card.name, **self.overrides)
        self.network = network.eval()
        return self.network

    def onnx_export(self, cache_dir: str) -> OnnxExport:
        """The exported graphs: the source's own, or exported into ``cache_dir`` once."""
        if self.export is not None:
            return self.export
        network = self.build_network()
        folder = os.path.join(cache_dir, "onnx", f"{self.card.name}-{network_digest(network)}")
        try:
            self.export = find_export(folder)
            LOGGER.info("using the ONNX export in %s", folder)
        except (FileNotFoundError, ValueError):
            from ros_tracker.export.onnx import export_onnx

            LOGGER.info("exporting %s to ONNX in %s", self.card.name, folder)
            self.export = export_onnx(network, folder)
        return self.export


def import_torch(purpose: str) -> Any:
    """torch, or BackendUnavailable naming what needed it (a robot may run without torch)."""
    try:
        import torch
    except ImportError as error:
        raise BackendUnavailable(
            f"{purpose} needs PyTorch, which is not installed ({error})"
        ) from error
    return torch


def installed_export(name: str) -> Optional[Tuple[OnnxExport, str]]:
    """The installed graphs of zoo model ``name`` and their weights file, if they match.

    A models directory that holds ``<name>/`` (template.onnx, search.onnx) for that model and
    the weights file its card names, where the graphs' metadata carries the sha256 of exactly
    that file. Graphs exported from other weights are reported and not used.
    """
    for directory in models_dirs():
        folder = os.path.join(directory, name)
        if not os.path.isfile(os.path.join(folder, SEARCH_FILE)):
            continue
        try:
            export = find_export(folder)
        except (OSError, ValueError) as error:
            LOGGER.warning("ignoring the installed graphs in %s: %s", folder, error)
            continue
        if export.card.name != name or not export.card.weights:
            continue
        weights = os.path.join(directory, export.card.weights)
        recorded = read_metadata(export.search_path).get(WEIGHTS_SHA256_KEY)
        if not os.path.isfile(weights) or recorded is None:
            continue
        if recorded != sha256_file(weights):
            LOGGER.info(
                "the graphs in %s were exported from other weights than %s: not used",
                folder,
                weights,
            )
            continue
        return export, weights
    return None


def network_digest(network: torch.nn.Module) -> str:
    """Short hash of the card, the weights and the network's source files."""
    digest = hashlib.sha256()
    digest.update(json.dumps(network.card.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    # The exporter's own code counts too: a changed export layout must not reuse old folders.
    from ros_tracker.export import metadata, onnx, stages

    sources = {inspect.getsourcefile(m) for m in (metadata, onnx, stages)}
    for module in network.modules():
        try:
            sources.add(inspect.getsourcefile(type(module)))
        except TypeError:  # built-in class
            continue
    for path in sorted(p for p in sources if p and "ros_tracker" in p):
        with open(path, "rb") as handle:
            digest.update(handle.read())
    from ros_tracker import __version__

    digest.update(__version__.encode())
    return digest.hexdigest()[:16]


def _source_from_safetensors(path: str) -> ModelSource:
    from ros_tracker.export.metadata import card_from_json
    from ros_tracker.zoo.checkpoints import read_metadata

    try:
        metadata = read_metadata(path)
    except Exception as error:  # safetensors raises several types for corrupt headers
        raise ValueError(f"cannot read weights file {path}: {error}") from error
    if "card" not in metadata:
        raise ValueError(
            f"weights file {path} has no 'card' metadata: save it with "
            "ros_tracker.zoo.checkpoints.card_metadata, or name the zoo model instead"
        )
    try:
        card = card_from_json(metadata["card"])
        overrides = json.loads(metadata.get("overrides", "{}"))
    except (ValueError, TypeError) as error:
        raise ValueError(f"weights file {path} has unreadable metadata: {error}") from error
    from ros_tracker.zoo.registry import get_card

    get_card(card.name)  # KeyError naming close matches if this build lacks the model
    return ModelSource(card=card, kind="safetensors", weights_path=path, overrides=overrides)


# Card fields that shape the exported graphs: installed graphs must agree with the registry.
GRAPH_FIELDS = (
    "family",
    "template_size",
    "search_size",
    "template_input_names",
    "template_box_input",
    "template_state_names",
    "output_names",
)


def _registry_card(name: str) -> ModelCard:
    from ros_tracker.zoo.registry import get_card

    try:
        return get_card(name)  # imports every network module, so torch
    except ImportError as error:
        raise BackendUnavailable(
            f"zoo model {name!r} has no installed ONNX graphs matching its weights, and "
            f"building it needs PyTorch, which is not installed ({error})"
        ) from error


def _zoo_source(name: str) -> ModelSource:
    installed = installed_export(name)
    if installed is not None:
        export, weights = installed
        try:
            card = _registry_card(name)
        except BackendUnavailable:  # no torch here: the graphs' own card is the model
            card = export.card
        differs = [f for f in GRAPH_FIELDS if getattr(card, f) != getattr(export.card, f)]
        if not differs:
            LOGGER.info("using the installed ONNX graphs of %s in %s", name, export.folder)
            return ModelSource(card=card, kind="zoo", weights_path=weights, export=export)
        LOGGER.info(
            "the installed graphs in %s differ from the zoo's %s (%s): not used",
            export.folder,
            name,
            ", ".join(differs),
        )
    card = _registry_card(name)
    return ModelSource(card=card, kind="zoo", weights_path=find_weights(card))


def _known_zoo_name(model: str) -> bool:
    """Whether ``model`` is a zoo name: installed graphs of it, or (with torch) the registry."""
    if installed_export(model) is not None:
        return True
    from ros_tracker.zoo.registry import list_models

    try:
        return model in list_models()
    except ImportError:  # no torch: only installed graphs can be zoo models here
        return False


def resolve_model(model: str) -> ModelSource:
    """Resolve a zoo name, a .safetensors path, or an ONNX export (folder or file)."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model must be a zoo name or a file path, got {model!r}")
    path = os.path.expanduser(model)
    looks_like_path = os.sep in model or path.endswith((ONNX_SUFFIX, SAFETENSORS_SUFFIX))
    if not looks_like_path and _known_zoo_name(model):
        # A bare zoo name means the zoo model even if a folder of that name is here
        # (e.g. an export written with --out <name>): name that one as ./<name>.
        return _zoo_source(model)
    if os.path.isdir(path) or path.endswith(ONNX_SUFFIX):
        export = find_export(path)
        return ModelSource(card=export.card, kind="onnx", export=export)
    if path.endswith(SAFETENSORS_SUFFIX):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights file not found: {path}")
        return _source_from_safetensors(path)
    if looks_like_path or os.path.exists(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"model file not found: {path}")
        raise ValueError(
            f"unsupported model file {path}: expected a .safetensors file, an .onnx file or "
            "an export folder"
        )
    return _zoo_source(model)  # an unknown name raises KeyError with the close matches


def source_from_network(network: torch.nn.Module) -> ModelSource:
    """Wrap an already built network (tests, notebooks) as a model source."""
    return ModelSource(card=network.card, kind="network", network=network.eval())
