"""Read ``torch.save`` archives without executing any code they name.

The authors' release files pickle more than tensors: their trainers store ``Settings``,
``AverageMeter`` and (HCAT) ``NetConstructor`` objects from their own packages, so
``torch.load(weights_only=True)`` refuses them and plain unpickling would import and run
their code. This unpickler rebuilds tensors, storages and plain containers and stands in an
inert :class:`Placeholder` for every other class the pickle names.

The rule that keeps it safe: a pickle may *call* only the few functions listed in
``_CALLABLES`` (tensor rebuilding, ``OrderedDict``, ``torch.device``, ``_codecs.encode`` for
protocol-2 bytes). Objects of any other class may only be created the way protocol 2 pickles
plain objects (``NEWOBJ`` + ``BUILD``), which allocates a placeholder and stores its state
without running any of its code. A pickle that calls anything else (``os.system``,
``builtins.eval``, a class constructor through ``REDUCE``) raises :class:`UnsafeCheckpoint`
naming it, before anything is executed.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch


class UnsafeCheckpoint(ValueError):
    """The pickle asks to run code that reading a checkpoint never needs."""


class _PlaceholderMeta(type):
    """Metaclass of the stand-ins: calling one (pickle's REDUCE) is refused."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpoint(
            f"the checkpoint calls {cls.qualified_name} while loading: refused (a checkpoint "
            "needs no code to be read; this file may be malicious)"
        )


class Placeholder(metaclass=_PlaceholderMeta):
    """Inert stand-in for an object of a class the reader does not import.

    ``qualified_name`` is the pickled class name; ``args`` what ``NEWOBJ`` passed; ``state``
    what ``BUILD`` set (usually the object's ``__dict__``).
    """

    qualified_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        instance = object.__new__(cls)
        object.__setattr__(instance, "args", args)
        object.__setattr__(instance, "state", None)
        return instance

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "state", state)

    def __repr__(self) -> str:
        return f"<placeholder for {self.qualified_name}>"


def _rebuild_tensor(
    storage: torch.Tensor,
    storage_offset: int,
    size: Tuple[int, ...],
    stride: Tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """torch._utils._rebuild_tensor_v2's arguments -> a view of the flat storage tensor."""
    if not isinstance(storage, torch.Tensor):
        raise UnsafeCheckpoint("a tensor in the checkpoint is not backed by a stored array")
    return storage.as_strided(tuple(size), tuple(stride), int(storage_offset))


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = False, hooks: Any = None):
    """Parameters come back as plain tensors: a state dict needs only their values."""
    if not isinstance(data, torch.Tensor):
        raise UnsafeCheckpoint("a parameter in the checkpoint holds no tensor")
    return data


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    if args and not isinstance(args[0], (list, tuple)):
        raise UnsafeCheckpoint("an OrderedDict in the checkpoint is built from a non-sequence")
    return collections.OrderedDict(*args)


def _device(*args: Any) -> str:
    return str(torch.device(*[a for a in args if isinstance(a, (str, int))]))


def _codecs_encode(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpoint("unexpected bytes encoding in the checkpoint")
    return text.encode("latin1")


# (module, name) -> what a pickle may call. Nothing else is ever called.
_CALLABLES: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch", "device"): _device,
    ("_codecs", "encode"): _codecs_encode,
}

STORAGE_DTYPES: Dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _StorageType:
    """What the pickle's ``torch.<X>Storage`` globals turn into: a dtype, not a class."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpoint(f"the checkpoint calls torch.{self.name} while loading: refused")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler of a torch.save ``data.pkl`` whose storages come from ``read_record``."""

    def __init__(self, data: bytes, read_record: Callable[[str], bytes]) -> None:
        super().__init__(io.BytesIO(data))
        self._read_record = read_record
        self._storages: Dict[str, torch.Tensor] = {}
        self._placeholders: Dict[str, type] = {}

    @property
    def placeholders(self) -> List[str]:
        """Classes the pickle named that were stood in by placeholders."""
        return sorted(self._placeholders)

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _CALLABLES:
            return _CALLABLES[key]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        qualified = f"{module}.{name}"
        if qualified not in self._placeholders:
            self._placeholders[qualified] = _PlaceholderMeta(
                name, (Placeholder,), {"qualified_name": qualified, "__module__": __name__}
            )
        return self._placeholders[qualified]

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise UnsafeCheckpoint(f"unknown persistent record in the checkpoint: {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpoint(f"storage of unknown type {storage_type!r} in the checkpoint")
        key = str(key)
        if key not in self._storages:
            raw = self._read_record(key)
            itemsize = torch.empty(0, dtype=storage_type.dtype).element_size()
            if len(raw) != int(numel) * itemsize:
                raise ValueError(
                    f"storage {key} holds {len(raw)} bytes, expected {numel} x {itemsize}"
                )
            if not raw:
                self._storages[key] = torch.empty(0, dtype=storage_type.dtype)
            else:
                self._storages[key] = torch.frombuffer(bytearray(raw), dtype=storage_type.dtype)
        return self._storages[key]


def _archive_prefix(archive: zipfile.ZipFile) -> str:
    """The folder of ``data.pkl`` (torch.save names it after the file stem at save time)."""
    names = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(names) != 1:
        raise ValueError(f"not a torch.save archive: {len(names)} data.pkl records")
    return names[0][: -len("data.pkl")]


def load_restricted(path: str) -> Tuple[Any, List[str]]:
    """Unpickle a torch.save zip archive without running code; returns (object, placeholders)."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a torch.save zip archive (torch >= 1.6 format); files in the older "
            "format can only be read when they hold tensors and containers alone"
        )
    with zipfile.ZipFile(path) as archive:
        prefix = _archive_prefix(archive)
        order = _read_optional(archive, prefix + "byteorder")
        if order not in (None, b"little"):
            raise ValueError(f"{path}: byte order {order!r} is not supported")
        unpickler = RestrictedUnpickler(
            archive.read(prefix + "data.pkl"),
            lambda key: archive.read(f"{prefix}data/{key}"),
        )
        return unpickler.load(), unpickler.placeholders


def _read_optional(archive: zipfile.ZipFile, name: str) -> Optional[bytes]:
    try:
        return archive.read(name).strip()
    except KeyError:
        return None
