"""Converted authors' networks on CUDA (fp32 and fp16) against CPU fp32: outputs and latency.

    python bench/authors_gpu.py [WEIGHTS.safetensors ...] [--frames 50] [--out FILE.json]

Models measured:

* every ``.safetensors`` file given (e.g. the output of ``ros-tracker convert``);
* without files: the shared parity fixtures (HiT-Tiny, HCAT R18 N=2, MixFormerV2-S; found in
  ``$ROS_TRACKER_PARITY_DIR`` or ``shared/parity`` next to the checkout or a parent folder),
  converted with the same code as ``ros-tracker convert`` and fed the authors' own crops, and
  all seven convertible zoo entries in the authors' forms with seeded random weights (latency
  does not depend on the weights; the fp16 differences of random weights are only indicative).

Per model and precision (``--precisions``, default ``cpu-fp32,cuda-fp32,cuda-fp16``; CPU fp32
is the reference, CUDA fp16 runs through the torch backend's autocast): the largest difference
of every raw output and of the decoded box (crop units) and score against CPU fp32, and the
median / p95 of the per-frame ``track_search`` time over ``--frames`` frames after warm-up.
Writes JSON (``--out``) and a markdown table on stdout. Asked for CUDA on a machine without a
CUDA device, it says so and exits 0 having measured nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ros_tracker.runtime.backends.torch_backend import TorchBackend  # noqa: E402
from ros_tracker.runtime.decoders import make_decoder  # noqa: E402
from ros_tracker.runtime.model_files import resolve_model  # noqa: E402
from ros_tracker.zoo.authors.convert import (  # noqa: E402
    convert_release,
    converter_for,
    supported_models,
)
from ros_tracker.zoo.authors.fixtures import FOLDERS, parity_root  # noqa: E402
from ros_tracker.zoo.registry import create_model  # noqa: E402

REFERENCE = "cpu-fp32"
DEFAULT_PRECISIONS = "cpu-fp32,cuda-fp32,cuda-fp16"


def cuda_reason() -> Optional[str]:
    """Why CUDA cannot be measured here, or None."""
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    return None


def fixture_models(workdir: str) -> List[Tuple[str, torch.nn.Module, Dict[str, np.ndarray]]]:
    """(label, network, inputs) of the converted parity fixtures, on their own crops."""
    root = parity_root()
    found = []
    for model, folder in FOLDERS.items():
        path = os.path.join(root or "", folder)
        if not root or not os.path.isdir(path):
            continue
        out = os.path.join(workdir, f"{model}.safetensors")
        convert_release(model, os.path.join(path, "state_dict.fp16.safetensors"), out)
        network = resolve_model(out).build_network()
        with np.load(os.path.join(path, "inputs.npz")) as data:
            crops = {k: data[k] for k in data.files}
        if "z" in crops:  # HCAT's template input
            crops["template"] = crops.pop("z")
        found.append((f"{model} (parity fixture)", network, crops))
    return found


def random_authors_form(model: str, seed: int = 0) -> torch.nn.Module:
    """A zoo entry built in the authors' form (their converter's overrides), seeded weights."""
    family = converter_for(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = create_model(model, **family.overrides({}, model))
    network.card = family.converted_card(network.card)
    return network.eval()


def example_crops(network: torch.nn.Module, seed: int = 0) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    card = network.card
    crops = {
        name: rng.standard_normal((1, 3, card.template_size, card.template_size), np.float32)
        for name in card.template_input_names
    }
    crops["search"] = rng.standard_normal((1, 3, card.search_size, card.search_size), np.float32)
    return crops


def run(network, crops, device: str, precision: str, frames: int, warmup: int) -> Dict:
    card = network.card
    backend = TorchBackend(card, copy.deepcopy(network), device=device, precision=precision)
    templates = {name: crops[name] for name in card.template_input_names}
    backend.set_template(templates)
    outputs = backend.run_search(crops["search"])
    times = []
    for index in range(warmup + frames):
        start = time.perf_counter()
        backend.run_search(crops["search"])  # returns host arrays: the device has finished
        if index >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    backend.close()
    times.sort()
    return {
        "outputs": outputs,
        "median_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))],
    }


def compare(card, reference: Dict, candidate: Dict) -> Dict[str, float]:
    diffs = {
        name: float(np.max(np.abs(candidate["outputs"][name] - reference["outputs"][name])))
        for name in card.output_names
    }
    decode = make_decoder(card)
    ours, theirs = decode(candidate["outputs"]), decode(reference["outputs"])
    diffs["decoded_box"] = float(np.max(np.abs(np.array(ours.box) - np.array(theirs.box))))
    diffs["decoded_score"] = abs(ours.score - theirs.score)
    return diffs


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", help="converted .safetensors files")
    parser.add_argument("--frames", type=int, default=50, help="timed frames per run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", help="write the results as JSON")
    parser.add_argument(
        "--precisions",
        default=DEFAULT_PRECISIONS,
        help=f"device-precision list ({REFERENCE} first)",
    )
    args = parser.parse_args(argv)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or precisions[0] != REFERENCE:
        parser.error(f"--precisions must start with the reference {REFERENCE}")
    if any(p not in ("cpu-fp32", "cuda-fp32", "cuda-fp16") for p in precisions):
        parser.error("--precisions takes cpu-fp32, cuda-fp32, cuda-fp16")

    reason = cuda_reason() if any(p.startswith("cuda") for p in precisions) else None
    if reason is not None:
        message = f"authors_gpu: skipped: {reason}; nothing was measured"
        print(message, file=sys.stderr)
        if args.out:
            with open(args.out, "w") as handle:
                json.dump({"skipped": reason}, handle, indent=2)
        return 0

    with tempfile.TemporaryDirectory() as workdir:
        models = []
        for path in args.weights:
            network = resolve_model(path).build_network()
            models.append((path, network, example_crops(network)))
        if not args.weights:
            models.extend(fixture_models(workdir))
            for name in supported_models():
                network = random_authors_form(name)
                models.append((f"{name} (random weights)", network, example_crops(network)))
        rows = []
        for label, network, crops in models:
            results = {}
            for key in precisions:
                device, precision = key.split("-")
                results[key] = run(network, crops, device, precision, args.frames, args.warmup)
            reference = results[REFERENCE]
            row: Dict = {"model": label}
            if torch.cuda.is_available():
                row["gpu"] = torch.cuda.get_device_name(0)
            for key, result in results.items():
                row[key] = {"median_ms": result["median_ms"], "p95_ms": result["p95_ms"]}
                if key != REFERENCE:
                    row[key]["max_abs_diff_vs_cpu_fp32"] = compare(network.card, reference, result)
            rows.append(row)
            print(f"measured {label}", file=sys.stderr)

    print("| model | " + " | ".join(f"{k} ms" for k in precisions) + " | decoded box diff |")
    print("| --- |" + " ---: |" * len(precisions) + " --- |")
    for row in rows:
        times = " | ".join(f"{row[k]['median_ms']:.2f}" for k in precisions)
        diffs = ", ".join(
            f"{k} {row[k]['max_abs_diff_vs_cpu_fp32']['decoded_box']:.1e}" for k in precisions[1:]
        )
        print(f"| {row['model']} | {times} | {diffs or '-'} |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"torch": torch.__version__, "results": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
