"""``ros-tracker models [--json]``: the zoo with sizes, cost and whether trained weights exist.

``params`` counts every parameter of the network. ``macs`` is the cost of one tracked frame
as deployed: the per-frame half (``track_search``) with the template state cached, every
multiply-accumulate counted, attention products included (ros_tracker.zoo.counting, mode
"all"). Papers count differently (see each card's ``counting_note``); the table shows their
figure next to ours where they give one.

Counting builds every network, which takes seconds; the results are cached in
``~/.cache/ros_tracker/model_stats.json``, keyed by the zoo's source code and torch version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from typing import Any, Dict, List, Tuple

from ros_tracker.cli.common import print_json

LOGGER = logging.getLogger("ros_tracker.cli")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")


def _stats_cache_path() -> str:
    return os.path.join(os.path.expanduser("~"), ".cache", "ros_tracker", "model_stats.json")


def _zoo_digest() -> str:
    """Hash of the zoo's source files and the torch version: counts change only with them."""
    import torch

    import ros_tracker.zoo as zoo

    digest = hashlib.sha256(torch.__version__.encode())
    folder = os.path.dirname(os.path.abspath(zoo.__file__))
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as handle:
                digest.update(name.encode() + handle.read())
    return digest.hexdigest()[:16]


def count_model(name: str) -> Dict[str, int]:
    """Parameters and per-frame MACs of a zoo model (random weights: counts do not care)."""
    import torch

    from ros_tracker.zoo.counting import count_macs, count_params
    from ros_tracker.zoo.registry import create_model

    network = create_model(name).eval()
    inputs = network.example_inputs()
    search = inputs.pop("search")
    with torch.no_grad():
        state = network.encode_template(*inputs.values())
    macs = count_macs(network, lambda: network.track_search(*state, search), mode="all")
    stats = {"params": int(count_params(network)), "macs": int(macs)}
    paper_way = network.paper_complexity()
    if paper_way is not None:
        stats["paper_way_params"], stats["paper_way_macs"] = paper_way
    return stats


def _load_cache(path: str, digest: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data.get("models", {}) if data.get("digest") == digest else {}


def _save_cache(path: str, digest: str, models: Dict[str, Any]) -> None:
    from ros_tracker.export.engine_cache import atomic_write_bytes

    text = json.dumps({"digest": digest, "models": models}, indent=1, sort_keys=True)
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as error:  # read-only home: counting again next time is fine
        LOGGER.info("cannot write %s: %s", path, error)


def zoo_table() -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """One row per zoo model in the ``models --json`` format, and every model's counts
    including those made the way its paper counts (``paper_way_params`` / ``_macs``)."""
    from ros_tracker.runtime.model_files import find_weights
    from ros_tracker.zoo.registry import get_card, list_models

    digest = _zoo_digest()
    cache_path = _stats_cache_path()
    cached = _load_cache(cache_path, digest)
    rows = []
    paper_way: Dict[str, Any] = {}
    changed = False
    for name in list_models():
        card = get_card(name)
        if name not in cached:
            LOGGER.info("counting parameters and MACs of %s", name)
            cached[name] = count_model(name)
            changed = True
        rows.append(
            {
                "name": name,
                "family": card.family,
                "params": cached[name]["params"],
                "macs": cached[name]["macs"],
                "template_size": card.template_size,
                "search_size": card.search_size,
                "trained": find_weights(card) is not None,
            }
        )
        paper_way[name] = cached[name]
    if changed:
        _save_cache(cache_path, digest, cached)
    return rows, paper_way


def _scaled(value: Any, scale: float, unit: str) -> str:
    return f"{value / scale:.2f}{unit}" if value is not None else "-"


def _paper(value: Any, unit: str) -> str:
    return f"{value:g}{unit}" if value is not None else "-"


def run(args: argparse.Namespace) -> int:
    rows, counts = zoo_table()
    if args.json:
        print_json(rows)
        return 0
    from ros_tracker.zoo.registry import get_card

    header = (
        "model",
        "family",
        "params",
        "MACs/frame",
        "paper's way: params",
        "MACs",
        "paper: params",
        "MACs",
        "sizes",
        "weights",
    )
    lines = [header]
    for row in rows:
        card = get_card(row["name"])
        lines.append(
            (
                row["name"],
                row["family"],
                f"{row['params'] / 1e6:.2f} M",
                f"{row['macs'] / 1e9:.2f} G",
                _scaled(counts[row["name"]].get("paper_way_params"), 1e6, " M"),
                _scaled(counts[row["name"]].get("paper_way_macs"), 1e9, " G"),
                _paper(card.reference_params, " M"),
                _paper(card.reference_macs, " G"),
                f"{row['template_size']}/{row['search_size']}",
                "trained" if row["trained"] else "random init",
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())
    print(
        "\nMACs/frame: the per-frame half with the template state cached, every "
        'multiply-accumulate (attention included). "paper\'s way": our network counted the '
        "way its paper counts (see the model cards' counting_note), next to the paper's figures."
    )
    return 0
