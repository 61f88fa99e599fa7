"""Training configs: validated overrides with suggestions, inheritance, the shipped files."""

from __future__ import annotations

import glob
import os

import pytest
import yaml

from training.config import (
    ConfigError,
    apply_override,
    defaults,
    load_config,
    parse_override,
    save_config,
)
from training.models import family_of

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "training", "configs")


def write(path, data) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle)
    return str(path)


def test_override_sets_typed_values_and_dataset_entries(tmp_path):
    path = write(
        tmp_path / "c.yaml",
        {"data": {"datasets": [{"type": "got10k", "root": "a"}]}, "model": {"name": "hcat"}},
    )
    config = load_config(
        path,
        [
            "training.lr=3e-4",
            "training.epochs=7",
            "training.lr_drop_epochs=[2, 5]",
            "data.datasets.0.root=/data/got10k",
            "model.overrides.num_layers=1",
            "training.backbone_lr_scale=1",
        ],
    )
    assert config["training"]["lr"] == pytest.approx(3e-4)
    assert config["training"]["epochs"] == 7
    assert config["training"]["lr_drop_epochs"] == [2, 5]
    assert config["data"]["datasets"][0]["root"] == "/data/got10k"
    assert config["data"]["datasets"][0]["split"] == "train"  # entry defaults filled in
    assert config["model"]["overrides"] == {"num_layers": 1}
    assert isinstance(config["training"]["backbone_lr_scale"], float)  # int accepted as float
    assert config["run"]["name"] == "c"  # defaults to the file's stem


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("training.lr_dorp_epochs=[3]", "training.lr_drop_epochs"),
        ("trainig.lr=1e-3", "training.lr"),
        ("data.brightnes_jitter=0.1", "data.brightness_jitter"),
        ("abtrack.pruning_ration=0.2", "abtrack.pruning_ratio"),
    ],
)
def test_unknown_keys_name_the_closest_known_key(override, suggestion):
    config = defaults()
    with pytest.raises(ConfigError) as error:
        apply_override(config, *parse_override(override))
    assert "unknown config key" in str(error.value)
    assert suggestion in str(error.value)


def test_wrong_types_and_choices_are_rejected_with_the_expected_form():
    config = defaults()
    with pytest.raises(ConfigError, match="expected int"):
        apply_override(config, "training.epochs", "many")
    with pytest.raises(ConfigError, match="expected bool"):
        apply_override(config, "run.amp", 1)
    with pytest.raises(ConfigError, match="did you mean 'deep_to_shallow'"):
        apply_override(config, "mixformerv2.stage", "deep_to_shalow")
    with pytest.raises(ConfigError, match="did you mean 'synthetic'"):
        apply_override(config, "data.datasets", [{"type": "synthetc"}])
    with pytest.raises(ConfigError, match="no dataset entry 0"):
        apply_override(config, "data.datasets.0.root", "x")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("training.lr")


def test_file_errors_name_the_file_and_key(tmp_path):
    path = write(tmp_path / "bad.yaml", {"training": {"batchsize": 4}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "bad.yaml" in str(error.value)
    assert "training.batch_size" in str(error.value)


def test_inheritance_and_saved_resolved_config_round_trip(tmp_path):
    write(tmp_path / "parent.yaml", {"training": {"lr": 0.5, "epochs": 3}})
    child = write(tmp_path / "child.yaml", {"inherit": "parent.yaml", "training": {"epochs": 9}})
    config = load_config(child)
    assert (config["training"]["lr"], config["training"]["epochs"]) == (0.5, 9)
    assert config["run"]["name"] == "child"
    save_config(config, str(tmp_path / "run" / "config.yaml"))
    assert load_config(str(tmp_path / "run" / "config.yaml")) == dict(config)


def test_inheritance_loops_are_reported(tmp_path):
    write(tmp_path / "a.yaml", {"inherit": "b.yaml"})
    write(tmp_path / "b.yaml", {"inherit": "a.yaml"})
    with pytest.raises(ConfigError, match="loops"):
        load_config(str(tmp_path / "a.yaml"))


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(CONFIG_DIR, "*.yaml"))), ids=os.path.basename
)
def test_shipped_configs_load_and_name_known_models(path):
    config = load_config(path)
    family = family_of(config["model"]["name"])  # raises for an unknown zoo entry
    assert family in ("hit", "hcat", "mixformerv2", "abtrack", "mixvit")
    teacher = config["mixformerv2"]["teacher_model"]
    if teacher:
        assert family_of(teacher) in ("mixformerv2", "mixvit")
