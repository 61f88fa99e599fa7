"""The ros-tracker subcommands owned by deployment: models, export, bench (via subprocess)."""

from __future__ import annotations

import json
import os

import pytest

from ros_tracker.cli import main as cli_main
from ros_tracker.cli.models import _stats_cache_path, _zoo_digest, count_model
from ros_tracker.zoo.registry import list_models

from .cli_helpers import ros_tracker


def test_count_model_matches_the_zoo_counter():
    stats = count_model("hit_tiny")
    # HiT-Tiny: 9.6 M parameters, about 1 G MACs per frame.
    assert 9.0e6 < stats["params"] < 10.5e6
    assert 0.8e9 < stats["macs"] < 1.2e9


def test_models_json_shape(cli_env, tmp_path):
    # Seed the statistics cache so the subprocess does not build every full-size network.
    path = _stats_cache_path().replace(os.path.expanduser("~"), cli_env["HOME"], 1)
    os.makedirs(os.path.dirname(path))
    counts = {name: {"params": 1000 + i, "macs": 5000 + i} for i, name in enumerate(list_models())}
    with open(path, "w") as handle:
        json.dump({"digest": _zoo_digest(), "models": counts}, handle)
    result = ros_tracker(["models", "--json"], cli_env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)  # stdout is JSON alone
    assert [row["name"] for row in rows] == list_models()
    expected_keys = {"name", "family", "params", "macs", "template_size", "search_size", "trained"}
    for row in rows:
        assert set(row) == expected_keys
        assert row["family"] in ("hit", "hcat", "mixformerv2", "abtrack")
        assert isinstance(row["trained"], bool)
        assert row["params"] == counts[row["name"]]["params"]
        assert row["search_size"] > row["template_size"] > 0


def test_export_verify_writes_checked_pair(cli_env, tiny_checkpoint, tmp_path):
    out = tmp_path / "exported"
    result = ros_tracker(
        ["export", tiny_checkpoint, "--format", "onnx", "--out", str(out), "--verify"], cli_env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(out / "template.onnx"), str(out / "search.onnx")]
    assert "verify (ONNX Runtime vs PyTorch): max abs error" in result.stderr
    assert " ok" in result.stderr


def test_export_format_typo_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["export", "hit_tiny", "--format", "onxx"])
    assert exit_info.value.code == 2
    assert "did you mean 'onnx'" in capsys.readouterr().err


def test_export_fp16_onnx_is_refused(capsys):
    assert cli_main(["export", "hit_tiny", "--format", "onnx", "--fp16"]) == 1
    assert "--fp16 applies to --format engine" in capsys.readouterr().err


def test_engine_export_without_tensorrt_fails_clearly(cli_env, tiny_checkpoint, tmp_path):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    result = ros_tracker(
        ["export", tiny_checkpoint, "--format", "engine", "--out", str(tmp_path / "e")], cli_env
    )
    assert result.returncode == 1
    assert "--format engine needs TensorRT and a CUDA GPU" in result.stderr
    assert "cannot import tensorrt" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not os.path.exists(tmp_path / "e")  # refused before exporting anything


def test_unknown_command_suggests(capsys):
    assert cli_main(["modles"]) == 2
    assert "did you mean 'models'" in capsys.readouterr().err.lower()


def test_bench_json(cli_env, tiny_checkpoint):
    result = ros_tracker(
        ["bench", tiny_checkpoint, "--frames", "4", "--warmup", "1", "--threads", "1", "--json"],
        cli_env,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {
        "model",
        "backend",
        "device",
        "frames",
        "image_size",
        "stages",
        "inference_ms",
        "total_ms",
        "fps",
    }
    assert report["model"] == "hit_tiny"
    assert report["backend"] == "onnxruntime-cpu" and report["device"] == "cpu"
    assert report["frames"] == 4 and report["image_size"] == [640, 480]
    stages = report["stages"]
    assert set(stages) == {"conversion", "preprocess", "inference", "postprocess", "total"}
    for values in stages.values():
        assert set(values) == {"median_ms", "p95_ms"}
        assert 0 <= values["median_ms"] <= values["p95_ms"]
    assert report["inference_ms"] == stages["inference"]["median_ms"]
    assert report["total_ms"] == stages["total"]["median_ms"]
    assert report["total_ms"] >= report["inference_ms"] > 0
    assert report["fps"] == pytest.approx(1000.0 / report["total_ms"], rel=1e-2)


def test_bench_torch_backend_in_process(tiny_checkpoint, tmp_path):
    from ros_tracker.cli.bench import format_report, run_benchmark

    report = run_benchmark(
        tiny_checkpoint,
        backend="torch",
        frames=3,
        warmup=0,
        progress=False,
        engine_cache_dir=str(tmp_path),
    )
    assert report["backend"] == "torch-cpu" and len(report["stages"]) == 5
    assert "whole frame / inference" in format_report(report)
