"""Checkpoint files in the authors' release formats, written by the tests.

The authors' trainers pickle objects of their own classes next to the state dict; to write
such files without their code, the classes are defined here under the authors' module
names (``lib.train.admin.*`` for the STARK-style trainers of HiT and MixFormerV2,
``ltr.admin.*`` for HCAT's pytracking trainer) in stand-in modules that exist only while
``torch.save`` runs. The result has the same top-level keys, pickled classes and storage
records as a release file (compared with the shared format samples in test_release_reader).
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import types
from typing import Dict, Iterator, Mapping

import torch

STARK_PACKAGE = "lib.train.admin"
PYTRACKING_PACKAGE = "ltr.admin"


def _classes(package: str) -> Dict[str, Dict[str, type]]:
    """module -> {class name: class}, defined under the authors' module names."""

    def make(module: str, name: str) -> type:
        return type(name, (), {"__module__": module})

    modules = {
        f"{package}.settings": {"Settings": make(f"{package}.settings", "Settings")},
        f"{package}.local": {
            "EnvironmentSettings": make(f"{package}.local", "EnvironmentSettings")
        },
        f"{package}.stats": {"AverageMeter": make(f"{package}.stats", "AverageMeter")},
    }
    if package == PYTRACKING_PACKAGE:
        module = f"{package}.model_constructor"
        modules[module] = {"NetConstructor": make(module, "NetConstructor")}
    return modules


@contextlib.contextmanager
def _stand_in_modules(classes: Dict[str, Dict[str, type]]) -> Iterator[None]:
    added = []
    for module_name, members in classes.items():
        parts = module_name.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        for class_name, cls in members.items():
            setattr(sys.modules[module_name], class_name, cls)
    try:
        yield
    finally:
        for name in reversed(added):
            del sys.modules[name]


def _instance(cls: type, **attributes) -> object:
    obj = cls()
    obj.__dict__.update(attributes)
    return obj


def release_dict(
    state: Mapping[str, torch.Tensor], trainer: str, classes: Dict[str, Dict[str, type]]
) -> Dict[str, object]:
    """The dict the authors' ``save_checkpoint`` writes; ``trainer`` "stark" or "pytracking".

    Pickle it inside :func:`write_release` (``classes`` live in stand-in modules there).
    """
    package = STARK_PACKAGE if trainer == "stark" else PYTRACKING_PACKAGE
    settings_cls = classes[f"{package}.settings"]["Settings"]
    env_cls = classes[f"{package}.local"]["EnvironmentSettings"]
    meter_cls = classes[f"{package}.stats"]["AverageMeter"]
    env = _instance(env_cls, workspace_dir="/path/to/workspace", tensorboard_dir="/path/to/tb")
    settings = _instance(settings_cls, env=env, batchsize=32, print_interval=50)
    if trainer == "stark":
        settings.device = torch.device("cuda:0")
    meter = _instance(meter_cls, val=0.5, avg=0.5, sum=5.0, count=10)
    net = collections.OrderedDict(state)
    net._metadata = collections.OrderedDict()  # as module.state_dict() carries it
    checkpoint = {
        "epoch": 40,
        "actor_type": "TestActor",
        "net_type": "TestNet",
        "net": net,
        "net_info": None,
        "constructor": None,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
        "stats": collections.OrderedDict(train=collections.OrderedDict(Loss=meter)),
        "settings": settings,
    }
    if trainer == "pytracking":
        constructor_cls = classes[f"{package}.model_constructor"]["NetConstructor"]
        checkpoint["constructor"] = _instance(
            constructor_cls,
            fun_name="hcat",
            fun_module="ltr.models.tracking.hcat",
            args=(settings,),
            kwds={},
        )
    return checkpoint


def write_release(path: str, state: Mapping[str, torch.Tensor], trainer: str) -> str:
    """Write ``state`` as a release checkpoint of the STARK or pytracking trainer."""
    package = STARK_PACKAGE if trainer == "stark" else PYTRACKING_PACKAGE
    classes = _classes(package)
    with _stand_in_modules(classes):
        torch.save(release_dict(state, trainer, classes), path, pickle_protocol=2)
    return path


class RunsCommand:
    """Pickles as a call of ``os.system(command)``: what a malicious checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CallsBuiltin:
    """Pickles as a call of a builtin (``eval`` / ``exec``) with source code."""

    def __init__(self, function, source: str) -> None:
        self.function = function
        self.source = source

    def __reduce__(self):
        return (self.function, (self.source,))


def write_hostile(path: str, payload: object, state: Mapping[str, torch.Tensor]) -> str:
    """A release-looking checkpoint whose ``settings`` runs ``payload`` when unpickled."""
    torch.save({"net": dict(state), "epoch": 1, "settings": payload}, path, pickle_protocol=2)
    return path
