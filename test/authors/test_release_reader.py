"""Reading the authors' release checkpoints without executing pickled code."""

from __future__ import annotations

import argparse
import builtins
import collections
import pickle
import pickletools
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from ros_tracker.zoo.authors.reader import read_release_checkpoint
from ros_tracker.zoo.authors.unpickler import UnsafeCheckpoint

from . import parity_fixtures
from .release_files import CallsBuiltin, RunsCommand, write_hostile, write_release

STARK_CLASSES = [
    "lib.train.admin.local.EnvironmentSettings",
    "lib.train.admin.settings.Settings",
    "lib.train.admin.stats.AverageMeter",
]
PYTRACKING_CLASSES = [
    "ltr.admin.local.EnvironmentSettings",
    "ltr.admin.model_constructor.NetConstructor",
    "ltr.admin.settings.Settings",
    "ltr.admin.stats.AverageMeter",
]


def small_state():
    torch.manual_seed(0)
    return collections.OrderedDict(
        [
            ("backbone.body.patch_embed.0.c.weight", torch.randn(4, 3, 3, 3)),
            ("backbone.body.patch_embed.0.bn.running_var", torch.rand(4) + 0.5),
            ("backbone.body.patch_embed.0.bn.num_batches_tracked", torch.tensor(7)),
            ("box_head.conv5_tl.weight", torch.randn(1, 2, 1, 1).half()),
            ("shared.view", torch.arange(12.0).reshape(3, 4)[:, 1:3]),  # a strided view
        ]
    )


def pickle_globals(path: str) -> set:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        data = archive.read(name)
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


@pytest.mark.parametrize(
    "trainer, classes", [("stark", STARK_CLASSES), ("pytracking", PYTRACKING_CLASSES)]
)
def test_release_dicts_are_read_with_placeholders(tmp_path, trainer, classes):
    state = small_state()
    path = write_release(str(tmp_path / "release.pth.tar"), state, trainer)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=True)  # why the reader is needed
    release = read_release_checkpoint(path)
    assert release.reader == "restricted"
    assert release.placeholders == classes
    assert release.epoch == 40
    assert "settings" in release.top_level_keys and "net" in release.top_level_keys
    assert list(release.state) == list(state)
    for key, value in state.items():
        assert release.state[key].dtype == value.dtype
        assert torch.equal(release.state[key], value), key
    # Nothing of the authors' packages was imported to read it.
    assert "lib" not in sys.modules and "ltr" not in sys.modules


def test_written_release_files_pickle_what_the_shared_samples_pickle(tmp_path):
    for model, trainer in (("hit_tiny", "stark"), ("hcat", "pytracking")):
        sample = parity_fixtures.format_sample(model)
        expected = set(
            parity_fixtures.manifest(model)["release_checkpoint"]["format_sample"]["pickle_globals"]
        )
        assert pickle_globals(sample) == expected
        ours = write_release(str(tmp_path / f"{model}.pth"), small_state(), trainer)
        expected = expected | {"torch.HalfStorage"}  # small_state holds a float16 tensor
        assert pickle_globals(ours) == expected


@pytest.mark.parametrize("model", ["hit_tiny", "hcat", "mixformerv2_s"])
def test_shared_format_samples_are_read(model):
    meta = parity_fixtures.manifest(model)["release_checkpoint"]
    release = read_release_checkpoint(parity_fixtures.format_sample(model))
    assert release.reader == "restricted"
    assert release.placeholders == sorted(meta["format_sample"]["authors_globals"])
    assert sorted(release.top_level_keys) == sorted(meta["top_level_keys"])
    assert list(release.state) == meta["format_sample"]["net_keys"]
    weights = parity_fixtures.authors_state(model)
    for key, value in release.state.items():
        assert torch.equal(value.float() if value.is_floating_point() else value, weights[key])


def test_plain_state_dicts_take_the_weights_only_path(tmp_path):
    state = small_state()
    for name, obj in (
        ("plain.pth", dict(state)),
        ("model.pth", {"model": dict(state)}),
        ("ddp.pth", {"state_dict": {"module." + k: v for k, v in state.items()}}),
    ):
        path = str(tmp_path / name)
        torch.save(obj, path)
        release = read_release_checkpoint(path)
        assert release.reader == "weights_only" and release.placeholders == []
        assert list(release.state) == list(state)


def test_safetensors_files_in_the_authors_layout_are_read(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in small_state().items()}
    path = str(tmp_path / "authors_layout.safetensors")
    save_file(state, path)
    release = read_release_checkpoint(path)
    assert release.reader == "safetensors"
    assert sorted(release.state) == sorted(state)


@pytest.mark.parametrize(
    "payload, named",
    [
        (lambda marker: RunsCommand(f"touch {marker}"), "system"),
        (lambda marker: CallsBuiltin(builtins.exec, f"open({str(marker)!r}, 'w')"), "exec"),
        (lambda marker: CallsBuiltin(builtins.eval, f"open({str(marker)!r}, 'w')"), "eval"),
        (
            lambda marker: CallsBuiltin(subprocess.Popen, f"touch {marker}"),
            "Popen",  # protocol 2 names it commands.Popen (Python 2's module name)
        ),
    ],
)
def test_a_checkpoint_that_runs_code_is_refused(tmp_path, payload, named):
    marker = tmp_path / "executed"
    path = write_hostile(str(tmp_path / "evil.pth.tar"), payload(marker), small_state())
    with pytest.raises(UnsafeCheckpoint) as refusal:
        read_release_checkpoint(path)
    assert named in str(refusal.value) and "refused" in str(refusal.value)
    assert not marker.exists()


def test_a_class_constructed_by_call_is_refused(tmp_path):
    """Only NEWOBJ + BUILD may create stand-ins; calling a foreign class is code execution."""

    class Calls:
        def __reduce__(self):
            return (argparse.Namespace, ())

    path = str(tmp_path / "calls.pth")
    torch.save({"net": {"w": torch.ones(1)}, "settings": Calls()}, path)
    with pytest.raises(UnsafeCheckpoint, match="argparse.Namespace"):
        read_release_checkpoint(path)


def test_unreadable_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        read_release_checkpoint(str(tmp_path / "absent.pth"))
    garbage = tmp_path / "garbage.pth"
    # random bytes fail in many ways inside the unpicklers (KeyError, EOFError, ...): each
    # must come out as one ValueError that names the file
    rng = np.random.default_rng(85)
    for size in (1, 2, 16, 256, 4096) * 20:
        garbage.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        with pytest.raises(ValueError, match="cannot read checkpoint|not a torch.save zip"):
            read_release_checkpoint(str(garbage))
    for head in (b"\x80\x02", b"PK\x03\x04", b"\x80\x02h\x55"):  # pickle, zip, memo get
        garbage.write_bytes(head + bytes(64))
        with pytest.raises(ValueError, match="cannot read checkpoint|not a torch.save zip"):
            read_release_checkpoint(str(garbage))
    mixed = str(tmp_path / "mixed.pth")
    torch.save({"net": {"w": torch.ones(1), "note": "text"}}, mixed)
    with pytest.raises(ValueError, match="not tensors: note"):
        read_release_checkpoint(mixed)
