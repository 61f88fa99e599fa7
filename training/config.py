"""Training configuration: one YAML file per zoo entry and stage, validated against a schema.

A config file holds any subset of the sections below; everything it leaves out takes the
schema's default. ``inherit: other.yaml`` (a path relative to the file) starts from another
config first. Command-line overrides are ``dotted.key=value`` with the value parsed as YAML
(``training.lr=1e-4``, ``data.datasets.0.root=/data/got10k``,
``mixformerv2.eliminate_layers=[2,5]``).
Every key is checked: an unknown key is an error that names the closest known keys, and a value
of the wrong type or outside its choices is an error that says what was expected.

The resolved config (defaults + file + overrides) is written next to the run as
``config.yaml``, so a run can always be reproduced from its own directory.
"""

from __future__ import annotations

import copy
import difflib
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml


class ConfigError(ValueError):
    """A config that does not fit the schema; the message says which key and why."""


@dataclass(frozen=True)
class Field:
    """One leaf of the schema: its default, type and allowed values."""

    default: Any
    kind: str  # bool | int | float | str | list | dict | datasets
    choices: Optional[Tuple[Any, ...]] = None
    nullable: bool = False
    doc: str = ""


def _f(default: Any, doc: str = "", choices: Optional[Sequence[Any]] = None) -> Field:
    kinds = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
    return Field(default, kinds[type(default)], tuple(choices) if choices else None, False, doc)


# Keys of one entry of data.datasets / validation.datasets.
DATASET_ENTRY: Dict[str, Field] = {
    "type": Field(
        "got10k",
        "str",
        (
            "got10k",
            "lasot",
            "trackingnet",
            "otb",
            "uav123",
            "composite",
            "coco",
            "synthetic",
            "photos",
            "flow",
        ),
        doc="layout of the data on disk (synthetic: rendered scenes, no files; photos, flow: "
        "the media cache of training.data.media, still-photo pairs and optical-flow tracks)",
    ),
    "root": _f("", "dataset root directory"),
    "split": _f("train", "split inside the root: train, val, test, or a list file name"),
    "weight": _f(1.0, "relative probability of drawing a pair from this dataset"),
    "max_gap": Field(None, "int", nullable=True, doc="frame gap limit; null = data.max_gap"),
    "annotations": _f("", "coco: annotation json, relative to root"),
    "images": _f("", "coco: image folder, relative to root"),
    "sequences": _f(0, "use only the first N sequences (0 = all)"),
    "frames": _f(60, "synthetic: frames per sequence"),
    "seed": _f(0, "synthetic: seed of the first sequence"),
    "options": _f(
        {}, "photos: training.data.photos.PhotoSettings fields; flow: per_clip (tracks kept)"
    ),
}

SCHEMA: Dict[str, Any] = {
    "inherit": _f("", "config file this one starts from (relative path)"),
    "run": {
        "name": _f("", "run directory name (default: the config file's stem)"),
        "output_dir": _f("runs", "parent directory of run directories"),
        "seed": _f(42, "seed of model init, data sampling and dropout"),
        "device": _f("auto", "", ("auto", "cpu", "cuda")),
        "amp": _f(True, "mixed precision on CUDA (ignored on CPU)"),
        "amp_dtype": _f("float16", "", ("float16", "bfloat16")),
        "threads": _f(0, "torch CPU threads (0: leave torch's default)"),
        "resume": _f("", "'' (fresh run), 'auto' (latest checkpoint of the run dir) or a path"),
        "max_steps": _f(0, "stop after this many optimizer steps in all (0: no limit)"),
        "tensorboard": _f(True, "write TensorBoard scalars when tensorboard is installed"),
        "progress": _f(True, "tqdm progress bar on stderr"),
        "plot": _f(True, "draw loss_curve.png after every epoch and at the end"),
        "distributed_backend": _f("auto", "", ("auto", "nccl", "gloo")),
    },
    "model": {
        "name": _f(
            "hit_tiny",
            "zoo entry, or a dense corner-head teacher (mixvit_teacher, mixvit_l_teacher)",
        ),
        "overrides": _f({}, "builder overrides passed to ros_tracker.zoo.create_model"),
        "pretrained": _f("", "backbone checkpoint (safetensors, timm / torchvision layout)"),
        "init_weights": _f("", "full weights of this network (safetensors), e.g. a stage output"),
    },
    "data": {
        "datasets": Field([], "datasets", doc="list of dataset entries (see DATASET_ENTRY)"),
        "samples_per_epoch": _f(60000, "training pairs per epoch (all processes together)"),
        "max_gap": _f(100, "largest frame distance between template and search"),
        "num_templates": _f(0, "templates per pair (0: 2 for mixformerv2 families, else 1)"),
        "template_factor": _f(0.0, "template context factor (0: the model card's)"),
        "search_factor": _f(0.0, "search context factor (0: the model card's)"),
        "center_jitter_template": _f(0.0, "template centre jitter (fraction of the box side)"),
        "center_jitter_search": _f(3.0, "search centre jitter (fraction of the box side)"),
        "scale_jitter_template": _f(0.0, "template log-scale jitter (std)"),
        "scale_jitter_search": _f(0.25, "search log-scale jitter (std)"),
        "brightness_jitter": _f(0.2, "per-crop brightness factor in [1 - b, 1 + b]"),
        "grayscale_prob": _f(0.05, "probability of a grayscale pair"),
        "flip_prob": _f(0.5, "probability of flipping all crops of a pair horizontally"),
        "blur_prob": _f(0.0, "probability of a Gaussian blur per crop"),
        "blur_sigma": _f(1.0, "largest blur sigma in crop pixels"),
        "negative_prob": _f(0.0, "probability of a search crop from another sequence (label 0)"),
        "min_box_pixels": _f(4.0, "smallest target side in the source image"),
        "max_attempts": _f(100, "draws per pair before giving up"),
        "num_workers": _f(2, "loader worker processes per training process"),
        "prefetch_factor": _f(2, "batches prefetched per worker"),
    },
    "training": {
        "epochs": _f(300, ""),
        "batch_size": _f(32, "pairs per step per process"),
        "lr": _f(4e-4, "learning rate of the non-backbone parameters"),
        "backbone_lr_scale": _f(0.1, "backbone learning rate = lr x this"),
        "backbone_prefixes": _f(
            [], "parameter name prefixes of the backbone ([] = family default)"
        ),
        "frozen_prefixes": _f(
            [],
            "parameter name prefixes kept fixed: no gradient, and their modules' batch-norm "
            "statistics stay as loaded (e.g. a pretrained trunk's early layers)",
        ),
        "weight_decay": _f(1e-4, ""),
        "lr_drop_epochs": _f(
            [240], "epochs at which the learning rate is multiplied by the factor"
        ),
        "lr_drop_factor": _f(0.1, ""),
        "grad_clip": _f(0.1, "gradient norm clip (0: off)"),
        "log_interval": _f(10, "steps between scalar log entries"),
        "checkpoint_interval": _f(1, "epochs between checkpoints"),
        "checkpoint_steps": _f(0, "also checkpoint every N optimizer steps (0: off)"),
        "keep_checkpoints": _f(2, "checkpoints kept on disk (the best one is kept separately)"),
    },
    "loss": {
        "giou_weight": _f(2.0, "lambda_G / lambda_iou"),
        "l1_weight": _f(5.0, "lambda_l1"),
        "ciou_weight": _f(2.0, "MixFormerV2's box loss weight (CIoU)"),
        "focal_weight": _f(1.0, "ABTrack's weighted focal loss"),
        "cls_weight": _f(8.334, "HCAT's classification loss weight (TransT's value)"),
        "negative_weight": _f(0.0625, "HCAT: weight of negative cells (1/16)"),
        "l1_reduction": _f(
            "mean",
            "HCAT: L1 per positive box as the mean ('mean') or the sum ('sum': the HCAT / "
            "TransT code, loss_bbox.sum() / num_boxes) of its 4 coordinate errors",
            ("mean", "sum"),
        ),
        "distribution_weight": _f(0.0, "MixFormerV2: cross-entropy to the ground-truth side bins"),
        "score_weight": _f(1.0, "MixFormerV2 score head stage: BCE weight"),
    },
    "abtrack": {
        "stage": _f("finetune", "", ("vtp", "finetune")),
        "pruned": _f(False, "the network is the physically pruned layout (weights of a vtp run)"),
        "pruning_ratio": _f(0.3, "mu: share of dimensions removed per block"),
        "tau0": _f(0.4, "tau_0 of the block sparsity function"),
        "sparsity_slope": _f(0.1, "rho of Eq. 2 (> 0, the paper's 0.1)"),
        "sparsity_tau": _f(
            "text",
            "direction of tau: 'text' tau = clip(tau0 - rho (L_iou - mean L_iou)): hard samples "
            "keep more blocks (the paper's text and Fig. 3); 'equation' the sign as printed in "
            "Eq. 2 (hard samples bypass more)",
            ("text", "equation"),
        ),
        "sparsity_weight": _f(5.0, "gamma of Eq. 8"),
        "dr_l1_weight": _f(1e-4, "alpha_k of Eq. 6 (every layer)"),
    },
    "mixformerv2": {
        "stage": _f(
            "supervised",
            "",
            ("supervised", "corner_teacher", "dense_to_sparse", "deep_to_shallow", "score_head"),
        ),
        "teacher_model": _f("", "teacher: zoo entry, mixvit_teacher or mixvit_l_teacher"),
        "teacher_overrides": _f({}, "builder overrides of the teacher"),
        "teacher_weights": _f("", "teacher weights (safetensors)"),
        "eliminate_layers": _f([], "deep_to_shallow: teacher layers removed from the student"),
        "prune_epochs": _f(40, "m: epochs over which eliminated layers decay to identity"),
        "logits_weight": _f(1.0, "weight of the KL distillation of the box distributions"),
        "feature_weight": _f(1.0, "weight of the feature mimicking L2 loss"),
        "distillation_reduction": _f(
            "sum",
            "'sum': Eq. 5 / 6 as printed (KL summed over the 4 sides, L2 over the matched "
            "layers); 'mean': the authors' code (KL averaged over the sides, MSE over the "
            "stacked matched layers), the form their weights 5.0 / 0.2 are given for",
            ("sum", "mean"),
        ),
        "feature_layers": _f([], "student layer positions to mimic ([]: kept layers + last)"),
        "student_init": _f(
            "teacher", "dense_to_sparse: copy the teacher backbone", ("teacher", "none")
        ),
    },
    "validation": {
        "datasets": Field([], "datasets", doc="held-out sequences (dataset entries)"),
        "interval": _f(0, "epochs between validations (0: never)"),
        "max_sequences": _f(0, "sequences per validation (0: all)"),
        "max_frames": _f(0, "frames per sequence (0: all)"),
        "metric": _f("auc", "metric that selects the best checkpoint", ("auc", "ao", "precision")),
        "device": _f("", "device for validation ('': the training device)"),
    },
}


# ------------------------------------------------------------------------------------------
# Schema walking


def _is_field(node: Any) -> bool:
    return isinstance(node, Field)


def defaults(schema: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The config of all defaults."""
    schema = SCHEMA if schema is None else schema
    return {
        key: copy.deepcopy(node.default) if _is_field(node) else defaults(node)
        for key, node in schema.items()
    }


def _leaf_keys(schema: Dict[str, Any], prefix: str = "") -> List[str]:
    keys: List[str] = []
    for key, node in schema.items():
        path = prefix + key
        if _is_field(node):
            keys.append(path)
        else:
            keys.extend(_leaf_keys(node, path + "."))
    return keys


def _unknown_key(path: str, known: Iterable[str]) -> ConfigError:
    known = list(known)
    close = difflib.get_close_matches(path, known, n=3, cutoff=0.6)
    if not close:  # also compare the last component only (a typo in the leaf name)
        leaf = path.rsplit(".", 1)[-1]
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in known}
        close = [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=3)]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown config key {path!r}{hint}")


def _check_value(path: str, field: Field, value: Any) -> Any:
    """The value converted to the field's type, or ConfigError."""
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{path}: null is not allowed (expected {field.kind})")
    kind = field.kind
    ok = True
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "list":
        ok = isinstance(value, list)
    elif kind == "dict":
        ok = isinstance(value, dict)
    elif kind == "datasets":
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list of dataset entries, got {value!r}")
        value = [_check_dataset_entry(f"{path}.{i}", entry) for i, entry in enumerate(value)]
    if not ok:
        raise ConfigError(f"{path}: expected {kind}, got {type(value).__name__} {value!r}")
    if field.choices is not None and value not in field.choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in field.choices], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{path}: {value!r} is not one of {', '.join(map(str, field.choices))}{hint}"
        )
    return value


def _check_dataset_entry(path: str, entry: Any) -> Dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: a dataset entry is a mapping, got {entry!r}")
    resolved = {key: copy.deepcopy(field.default) for key, field in DATASET_ENTRY.items()}
    for key, value in entry.items():
        if key not in DATASET_ENTRY:
            raise _unknown_key(f"{path}.{key}", [f"{path}.{k}" for k in DATASET_ENTRY])
        resolved[key] = _check_value(f"{path}.{key}", DATASET_ENTRY[key], value)
    return resolved


def _merge(base: Dict[str, Any], update: Dict[str, Any], schema: Dict[str, Any], prefix: str):
    """Merge a (partial) config into ``base`` in place, validating every key and value."""
    if not isinstance(update, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {update!r}")
    for key, value in update.items():
        path = prefix + str(key)
        if key not in schema:
            raise _unknown_key(path, _leaf_keys(SCHEMA))
        node = schema[key]
        if _is_field(node):
            base[key] = _check_value(path, node, value)
        else:
            _merge(base[key], value, node, path + ".")


# ------------------------------------------------------------------------------------------
# Loading and overrides


def _read_yaml(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping")
    return data


def load_file(path: str, _seen: Optional[List[str]] = None) -> Dict[str, Any]:
    """Defaults, then the chain of inherited files, then the file itself (validated)."""
    path = os.path.abspath(path)
    seen = list(_seen or [])
    if path in seen:
        raise ConfigError(f"config inheritance loops through {path}")
    data = _read_yaml(path)
    parent = data.get("inherit") or ""
    if parent:
        config = load_file(os.path.join(os.path.dirname(path), parent), seen + [path])
    else:
        config = defaults()
    try:
        _merge(config, data, SCHEMA, "")
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    config["inherit"] = ""
    return config


def parse_override(text: str) -> Tuple[str, Any]:
    """``dotted.key=value`` -> (key, value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({error})") from None
    return key, value


def apply_override(config: Dict[str, Any], key: str, value: Any) -> None:
    """Set one dotted key (list entries by index: ``data.datasets.0.root``), validated."""
    parts = key.split(".")
    node: Any = config
    schema: Any = SCHEMA
    for depth, part in enumerate(parts):
        path = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(schema, Field) and schema.kind == "datasets":
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{path}: no dataset entry {part} (have {len(node)})")
            entry = node[int(part)]
            rest = parts[depth + 1 :]
            if len(rest) != 1:
                raise ConfigError(f"{key}: expected {path}.<field>")
            if rest[0] not in DATASET_ENTRY:
                raise _unknown_key(key, [f"{path}.{k}" for k in DATASET_ENTRY])
            entry[rest[0]] = _check_value(key, DATASET_ENTRY[rest[0]], value)
            return
        if isinstance(schema, Field) and schema.kind == "dict":
            # Free-form mapping (builder overrides): nested keys are set as given and checked
            # by their consumer (create_model reports unknown overrides).
            target = node
            for sub in parts[depth:-1]:
                target = target.setdefault(sub, {})
            target[parts[-1]] = value
            return
        if not isinstance(schema, dict) or part not in schema:
            raise _unknown_key(key, _leaf_keys(SCHEMA))
        if last:
            if not _is_field(schema[part]):
                if isinstance(value, dict):
                    _merge(node[part], value, schema[part], path + ".")
                    return
                raise ConfigError(f"{key} is a section; set one of its keys")
            node[part] = _check_value(key, schema[part], value)
            return
        schema = schema[part]
        node = node[part]


def load_config(path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The resolved config of a file plus ``key=value`` overrides.

    ``run.name`` defaults to the file's stem (not an inherited file's).
    """
    config = load_file(path)
    if not config["run"]["name"]:
        config["run"]["name"] = os.path.splitext(os.path.basename(path))[0]
    for text in overrides:
        apply_override(config, *parse_override(text))
    return config


def from_dict(data: Dict[str, Any]) -> Dict[str, Any]:
    """A resolved config from an in-memory (partial) mapping, validated like a file."""
    config = defaults()
    _merge(config, copy.deepcopy(data), SCHEMA, "")
    return config


def save_config(config: Dict[str, Any], path: str) -> None:
    """Write the resolved config as YAML (atomically)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False, default_flow_style=None)
    os.replace(tmp, path)


def describe_keys() -> List[str]:
    """``key (default): doc`` for every key, for ``--help-config``."""
    lines = []

    def walk(schema: Dict[str, Any], prefix: str) -> None:
        for key, node in schema.items():
            if _is_field(node):
                choices = f" [{'|'.join(map(str, node.choices))}]" if node.choices else ""
                lines.append(f"{prefix}{key} = {node.default!r}{choices}  {node.doc}".rstrip())
            else:
                walk(node, prefix + key + ".")

    walk(SCHEMA, "")
    for key, field in DATASET_ENTRY.items():
        lines.append(f"<dataset entry>.{key} = {field.default!r}  {field.doc}".rstrip())
    return lines
