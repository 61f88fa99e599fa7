"""The tracker node's parameters: declarations with descriptors, and validation.

Parameters that select or shape the model (model, backend, device, precision, caches, the
subscription) are read-only: changing them means restarting the node. The others may change
at run time and are checked by ``validate_change`` before they are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
)

from ros_tracker.runtime.box_policy import POLICY_FIELDS

DEFAULT_MODEL = "hcat_mobilenetv2"
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "fp16")
IMAGE_QOS = ("auto", "sensor_data", "reliable")


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: Tuple[str, ...] = ()
    int_range: Optional[Tuple[int, int]] = None
    float_range: Optional[Tuple[float, float]] = None


SPECS: List[ParameterSpec] = [
    ParameterSpec("model", DEFAULT_MODEL, "zoo name, .safetensors file or exported ONNX", True),
    ParameterSpec("backend", "auto", "inference backend: " + " | ".join(BACKENDS), True, BACKENDS),
    ParameterSpec("device", "auto", "inference device: " + " | ".join(DEVICES), True, DEVICES),
    ParameterSpec("precision", "fp32", "fp32 | fp16 (fp16 on GPUs only)", True, PRECISIONS),
    ParameterSpec(
        "engine_cache_dir",
        "~/.cache/ros_tracker",
        "folder for exported ONNX graphs and TensorRT engines (reused across starts)",
        True,
    ),
    ParameterSpec(
        "threads", 0, "CPU inference threads (0: library default)", True, int_range=(0, 64)
    ),
    ParameterSpec(
        "box_policy",
        "card",
        "box settings: card (the model card's, measured on real footage) | paper (the "
        f"authors' trackers) | key=value,... ({', '.join(POLICY_FIELDS)})",
        True,
    ),
    ParameterSpec("compressed", False, "subscribe to image/compressed instead of image", True),
    ParameterSpec(
        "image_qos",
        "auto",
        "image subscription QoS: auto (reliable when every publisher of the topic is, else "
        "best effort; follows the publishers) | sensor_data (best effort) | reliable",
        True,
        IMAGE_QOS,
    ),
    ParameterSpec(
        "frame_cache_size",
        30,
        "recent frames kept so a SetTarget can initialise on the image its box was drawn on",
        True,
        int_range=(1, 600),
    ),
    ParameterSpec(
        "lost_threshold",
        0.3,
        "confidence under which a frame counts as weak; LOST after lost_frames weak frames",
        float_range=(0.0, 1.0),
    ),
    ParameterSpec(
        "lost_frames", 5, "consecutive weak frames before the target is LOST", int_range=(1, 1000)
    ),
    ParameterSpec(
        "publish_debug_image", True, "publish ~/debug_image (drawn only when subscribed)"
    ),
    ParameterSpec(
        "resolution_change_frames",
        10,
        "consecutive frames at a new resolution before it is adopted (target dropped)",
        True,
        int_range=(1, 1000),
    ),
    ParameterSpec(
        "expected_image_rate",
        0.0,
        "images per second the camera should deliver; diagnostics warn below 90 % of it "
        "(0: not checked)",
        float_range=(0.0, 1000.0),
    ),
    ParameterSpec(
        "set_target_timeout",
        15.0,
        "seconds a set_target call waits for the tracker to initialise before it is cancelled",
        float_range=(0.1, 600.0),
    ),
    ParameterSpec(
        "value_range",
        [0.0, 0.0],
        "[low, high] mapped to 0-255 for 16-bit and float images; [0, 0]: per-frame min-max",
        True,
    ),
]

SPECS_BY_NAME: Dict[str, ParameterSpec] = {spec.name: spec for spec in SPECS}


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    text = spec.description
    if spec.read_only:
        text += " (read-only: set at start-up)"
    result = ParameterDescriptor(description=text, read_only=spec.read_only)
    if spec.choices:
        result.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.int_range is not None:
        result.type = ParameterType.PARAMETER_INTEGER
        result.integer_range = [
            IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)
        ]
    if spec.float_range is not None:
        result.type = ParameterType.PARAMETER_DOUBLE
        result.floating_point_range = [
            FloatingPointRange(
                from_value=spec.float_range[0], to_value=spec.float_range[1], step=0.0
            )
        ]
    return result


# How each parameter type is written in a parameters file or on the command line.
_TYPE_RULES = {
    bool: "true or false",
    int: "an integer such as 5",
    float: "a floating-point number with a decimal point, such as 1.0",
    str: "a string",
    list: "a list of floating-point numbers with decimal points, such as [0.0, 0.0]",
}


def type_rule(name: str, default: Any = None) -> str:
    """How a value of parameter ``name`` (of ``default``'s type, by default its spec's) must be
    written: for start-up type errors."""
    if default is None:
        default = SPECS_BY_NAME[name].default
    return f"{name} must be {_TYPE_RULES[type(default)]}"


def check_value(name: str, value: Any) -> Optional[str]:
    """None when ``value`` is acceptable for ``name``, else the reason it is not."""
    spec = SPECS_BY_NAME.get(name)
    if spec is None:
        return None  # parameters of other layers (use_sim_time, ...) are not ours to judge
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
    bounds = spec.int_range or spec.float_range
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        return f"{name} must be in [{bounds[0]:g}, {bounds[1]:g}], got {value!r}"
    if name == "model" and not str(value).strip():
        return "model must name a zoo model or a model file"
    if name == "box_policy":
        from ros_tracker.runtime.box_policy import parse_box_policy

        try:
            parse_box_policy(value)
        except ValueError as error:
            return str(error)
    if name == "value_range":
        if len(value) != 2 or (value[0] != value[1] and not value[0] < value[1]):
            return f"value_range must be [low, high] with low < high, or [0, 0], got {value!r}"
    return None
