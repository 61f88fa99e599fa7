"""TensorRT engine cache policy: keys, sidecars, corrupt files, atomic writes (no TensorRT)."""

from __future__ import annotations

import json
import logging
import os

import pytest

from ros_tracker.export import engine_cache
from ros_tracker.export.engine_cache import (
    EngineCache,
    EngineKey,
    atomic_write_bytes,
    discard,
    get_or_build,
)


def key(**changes) -> EngineKey:
    values = dict(
        model="hit_tiny",
        graph="search",
        onnx_sha256="ab" * 32,
        precision="fp16",
        tensorrt_version="10.3.0",
        compute_capability="8.7",
    )
    values.update(changes)
    return EngineKey(**values)


class FakeBuilder:
    """Stands in for the TensorRT build: returns bytes and counts calls."""

    def __init__(self, payload: bytes = b"serialized-engine") -> None:
        self.payload = payload
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.payload + b"#%d" % self.calls


def test_key_separates_every_field():
    base = key()
    variants = [
        key(graph="template"),
        key(onnx_sha256="cd" * 32),
        key(precision="fp32"),
        key(tensorrt_version="8.6.2"),
        key(compute_capability="7.2"),
        key(model="hit_small"),
    ]
    names = {base.file_stem()} | {v.file_stem() for v in variants}
    assert len(names) == len(variants) + 1
    assert base.file_stem() == key().file_stem()  # deterministic
    assert "sm87" in base.file_stem() and "trt10.3.0" in base.file_stem()


def test_build_once_then_reuse(tmp_path, caplog):
    cache = EngineCache(str(tmp_path))
    build = FakeBuilder()
    with caplog.at_level(logging.INFO, logger="ros_tracker.runtime"):
        path = get_or_build(key(), build, cache, describe="hit_tiny (search graph)")
        again = get_or_build(key(), build, cache)
    assert build.calls == 1 and path == again
    messages = [r.getMessage() for r in caplog.records]
    before = [m for m in messages if "may take minutes" in m]
    after = [m for m in messages if m.startswith("built the TensorRT engine")]
    assert before and after and messages.index(before[0]) < messages.index(after[0])
    assert " s: " in after[0]  # the build duration is logged
    assert any("reusing" in m for m in messages)

    sidecar = json.loads(open(cache.sidecar_path(key())).read())
    assert sidecar["key"]["tensorrt_version"] == "10.3.0"
    assert sidecar["engine_bytes"] == os.path.getsize(path)
    assert "build_seconds" in sidecar


def test_key_change_triggers_rebuild_with_reason(tmp_path):
    cache = EngineCache(str(tmp_path))
    get_or_build(key(), FakeBuilder(), cache)
    newer = key(tensorrt_version="10.4.0")
    decision = cache.check(newer)
    assert not decision.reuse
    assert "tensorrt_version 10.3.0 -> 10.4.0" in decision.reason
    build = FakeBuilder()
    get_or_build(newer, build, cache)
    assert build.calls == 1


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda e, s: open(e, "r+b").truncate(5), "corrupt"),
        (lambda e, s: open(e, "r+b").write(b"XX"), "sha256"),
        (lambda e, s: os.unlink(s), "sidecar missing"),
        (lambda e, s: open(s, "w").write("{not json"), "sidecar missing or unreadable"),
    ],
)
def test_corrupt_engine_or_sidecar_is_rebuilt(tmp_path, damage, reason):
    cache = EngineCache(str(tmp_path))
    path = get_or_build(key(), FakeBuilder(), cache)
    damage(path, cache.sidecar_path(key()))
    decision = cache.check(key())
    assert not decision.reuse and reason in decision.reason
    build = FakeBuilder(b"fresh")
    rebuilt = get_or_build(key(), build, cache)
    assert build.calls == 1 and open(rebuilt, "rb").read() == b"fresh#1"
    assert cache.check(key()).reuse


def test_sidecar_of_another_key_is_a_mismatch(tmp_path):
    cache = EngineCache(str(tmp_path))
    get_or_build(key(), FakeBuilder(), cache)
    sidecar_path = cache.sidecar_path(key())
    data = json.loads(open(sidecar_path).read())
    data["key"]["compute_capability"] = "7.2"
    open(sidecar_path, "w").write(json.dumps(data))
    decision = cache.check(key())
    assert not decision.reuse and "compute_capability" in decision.reason


def test_read_only_dirs_are_searched_first_and_never_written(tmp_path):
    shipped = EngineCache(str(tmp_path / "export"))
    shipped_path = get_or_build(key(), FakeBuilder(), shipped)
    cache = EngineCache(str(tmp_path / "cache"))
    build = FakeBuilder()
    assert get_or_build(key(), build, cache, read_only_dirs=[shipped.directory]) == shipped_path
    assert build.calls == 0 and not os.path.exists(cache.directory)


def test_failed_build_leaves_nothing_behind(tmp_path):
    cache = EngineCache(str(tmp_path))

    def broken() -> bytes:
        raise RuntimeError("parser error")

    with pytest.raises(RuntimeError, match="parser error"):
        get_or_build(key(), broken, cache)
    assert not os.path.exists(cache.engine_path(key()))
    assert not cache.check(key()).reuse


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "x.engine"
    atomic_write_bytes(str(target), b"old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(engine_cache.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(str(target), b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.engine"]  # no temporary file left


def test_discard_removes_engine_and_sidecar(tmp_path):
    cache = EngineCache(str(tmp_path))
    path = get_or_build(key(), FakeBuilder(), cache)
    discard(path)
    assert os.listdir(tmp_path) == []


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ROS_TRACKER_ENGINE_CACHE", str(tmp_path))
    assert engine_cache.default_cache_dir() == str(tmp_path)
    monkeypatch.delenv("ROS_TRACKER_ENGINE_CACHE")
    assert engine_cache.default_cache_dir().endswith(os.path.join("ros_tracker", "engines"))


def test_tensorrt_import_failure_is_backend_unavailable(monkeypatch):
    import sys

    from ros_tracker.export.tensorrt import import_tensorrt, version_tuple
    from ros_tracker.runtime.backends.base import BackendUnavailable

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailable, match="cannot import tensorrt"):
        import_tensorrt()
    assert version_tuple("10.3.0.26") == (10, 3, 0, 26)
    assert version_tuple("8.5.2") >= (8, 5) > version_tuple("8.4.3")


def test_too_old_tensorrt_is_refused(monkeypatch):
    import sys
    import types

    from ros_tracker.export.tensorrt import import_tensorrt
    from ros_tracker.runtime.backends.base import BackendUnavailable

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.4.3.1"))
    with pytest.raises(BackendUnavailable, match="8.5"):
        import_tensorrt()


def test_network_flags_per_tensorrt_version():
    import types

    from ros_tracker.export.tensorrt import _network_flags, is_strongly_typed_only

    creation = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)

    def fake(version):
        return types.SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=creation)

    assert _network_flags(fake("8.5.2")) == 1  # explicit batch is still a flag before 10
    assert _network_flags(fake("10.3.0")) == 0  # implicit batch is gone in 10
    assert _network_flags(fake("11.0.0")) == 2  # strongly typed only from 11
    assert is_strongly_typed_only(fake("11.0.0")) and not is_strongly_typed_only(fake("10.9"))


def test_fp32_export_has_no_float16(tiny_network, tmp_path):
    from ros_tracker.export.onnx import export_onnx
    from ros_tracker.export.tensorrt import onnx_has_float16

    export = export_onnx(tiny_network, str(tmp_path / "tiny"))
    assert not onnx_has_float16(export.search_path)

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2,), np.float16), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16),
            helper.make_node("Mul", ["xh", "w"], ["y"]),
        ],
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2])],
        [weight],
    )
    path = str(tmp_path / "half.onnx")
    onnx.save(helper.make_model(graph), path)
    assert onnx_has_float16(path)


@pytest.mark.parametrize("opset", [17, 18])
def test_layer_norm_decomposition_for_tensorrt_8_5(tiny_network, tmp_path, opset):
    import numpy as np
    import onnx
    import onnxruntime

    from ros_tracker.export.onnx import export_onnx
    from ros_tracker.export.onnx_rewrite import DECOMPOSED_MARK, decompose_layer_norm

    export = export_onnx(tiny_network, str(tmp_path / "tiny"), opset=opset)
    original = onnx.load(export.search_path)
    rewritten = decompose_layer_norm(original)
    ops = [node.op_type for node in rewritten.graph.node]
    assert "LayerNormalization" not in ops and "ReduceMean" in ops
    assert any(DECOMPOSED_MARK in node.name for node in rewritten.graph.node)
    assert any(n.op_type == "LayerNormalization" for n in original.graph.node)  # copy only

    feeds = {
        "template_state": np.random.default_rng(0).standard_normal((1, 16, 16), np.float32),
        "search": np.random.default_rng(1).standard_normal((1, 3, 64, 64), np.float32),
    }
    outputs = []
    for model in (original, rewritten):
        session = onnxruntime.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        outputs.append(session.run(None, feeds)[0])
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5, rtol=0)
