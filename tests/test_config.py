"""Config schema: the default validates and gets its defaults; errors name the key."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from conftest import CONFIG_SCHEMA, REPO
from readrace.config import MOVED_KEYS, ConfigError, execution_settings, shard_ids, validate_config


def test_default_config_validates_and_fills_defaults(default_config):
    config = validate_config(default_config, CONFIG_SCHEMA)
    cxr = config["datasets"]["synth-cxr-a"]
    assert cxr["split"]["salt"] == "readrace-split-v1"
    assert cxr["options"]["broken_files"] is True
    assert cxr["options"]["signal"]["seed"] == 1234
    assert config["datasets"]["synth-ct"]["preprocess"]["window"] == {"center": -600, "width": 1500}


def _error(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config, CONFIG_SCHEMA)
    return str(info.value)


def test_unknown_top_level_key_is_named(default_config):
    default_config["datasetz"] = {}
    assert "datasetz: unknown key" in _error(default_config)


def test_unknown_dataset_key_is_named_with_its_path(default_config):
    default_config["datasets"]["synth-cxr-a"]["shard"] = 3
    assert "datasets.synth-cxr-a.shard: unknown key" in _error(default_config)


def test_unknown_adapter_option_is_named(default_config):
    default_config["datasets"]["synth-ct"]["options"]["signal"]["strenght"] = 1
    assert "datasets.synth-ct.options.signal.strenght: unknown key" in _error(default_config)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("shards",), "two", "datasets.synth-cxr-a.shards: 'two' is not of type 'integer'"),
        (("preprocess", "size"), 4, "datasets.synth-cxr-a.preprocess.size"),
        (("modality",), "pet", "datasets.synth-cxr-a.modality"),
        (("options", "signal", "region"), "heart", "datasets.synth-cxr-a.options.signal.region"),
        (("options", "signal", "bands"), "middle", "datasets.synth-cxr-a.options.signal.bands"),
    ],
)
def test_wrong_type_or_value_is_named(default_config, path, value, expected):
    target = default_config["datasets"]["synth-cxr-a"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert expected in _error(default_config)


def test_split_fractions_must_sum_to_one(default_config):
    default_config["datasets"]["synth-cxr-b"]["split"] = {"train": 0.7, "validation": 0.2, "test": 0.2}
    assert "datasets.synth-cxr-b.split: train + validation + test must sum to 1" in _error(default_config)


def test_missing_required_key(default_config):
    del default_config["datasets"]["synth-mammo"]["modality"]
    assert "datasets.synth-mammo: 'modality' is a required property" in _error(default_config)


def test_shard_ids_come_from_config_alone():
    assert shard_ids({"shards": 1}) == ["0"]
    assert shard_ids({"shards": 12}) == [f"{i:02d}" for i in range(12)]


def test_snakefile_rejects_a_bad_config_naming_the_key(tmp_path, default_config):
    bad = copy.deepcopy(default_config)
    bad["datasets"]["synth-cxr-a"]["shards"] = "two"
    configfile = tmp_path / "bad.yaml"
    configfile.write_text(yaml.safe_dump(bad))
    snakemake = [sys.executable, "-m", "snakemake"]
    result = subprocess.run(
        [*snakemake, "-n", "--cores", "1", "--configfile", str(configfile)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "datasets.synth-cxr-a.shards: 'two' is not of type 'integer'" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("pid", "reason"),
    [
        ("sharpen-2", "unknown perturbation"),
        ("patch-4", "mask-based perturbations (patch, occlude, lung, nonlung) are not available yet"),
        ("lpf-d010", "D must be a positive integer without leading zeros, got '010'"),
        ("bpf-d50-10", "D1 must be smaller than D2, got 50 and 10"),
    ],
)
def test_bad_perturbation_ids_are_named_with_the_reason(default_config, pid, reason):
    default_config["experiments"] = [{"kind": "race_detection", "train": ["synth-ct"], "perturbations": ["none", pid]}]
    assert f"experiments.0.perturbations: invalid perturbation id {pid!r}: {reason}. Known forms: none, lpf-d{{D}}" in _error(
        default_config
    )


def test_validation_does_not_import_torch():
    """The Snakefile validates the config at every parse, dry runs included: importing torch
    there (about 3 s) would be paid by every `snakemake -n`, so the ids are checked without it."""
    code = "\n".join([
        "import sys, yaml",
        "from readrace.config import validate_config",
        "from readrace.experiments import expand_experiments",
        f"config = validate_config(yaml.safe_load(open({str(REPO / 'configs' / 'paper.yaml')!r})), {str(CONFIG_SCHEMA)!r})",
        "print(len(expand_experiments(config)['race_detection']), 'readrace.transforms.perturbation_ids' in sys.modules)",
        "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib', 'sklearn') if m in sys.modules))",
    ])  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["186 True", "[]"]  # 186 models, ids checked, no torch


def test_experiments_name_known_datasets_perturbations_and_trainable_splits(default_config):
    config = copy.deepcopy(default_config)
    config["experiments"] = [{"kind": "race_detection", "train": ["synth-cxr-z"]}]
    assert "experiments.0.train: 'synth-cxr-z' is not a dataset of this config" in _error(config)
    config = copy.deepcopy(default_config)
    config["experiments"] = [{"kind": "race_detection", "train": ["synth-ct"], "perturbations": ["lpf-d0"]}]
    assert "experiments.0.perturbations: invalid perturbation id 'lpf-d0'" in _error(config)
    config = copy.deepcopy(default_config)
    config["datasets"]["synth-ct"]["split"] = {"train": 0, "validation": 0, "test": 1}
    config["experiments"] = [{"kind": "race_detection", "train": ["synth-ct"]}]
    assert "has no train or validation split" in _error(config)


def test_every_experiment_block_names_a_known_kind_and_is_checked_by_its_schema(default_config):
    config = copy.deepcopy(default_config)
    del config["experiments"][0]["kind"]
    assert "experiments.0: 'kind' is a required property" in _error(config)
    config["experiments"][0]["kind"] = "race_detektion"
    assert "experiments.0.kind: 'race_detektion' is not one of ['race_detection', 'membership']" in _error(config)
    config = copy.deepcopy(default_config)
    config["experiments"][1]["arch"] = ["resnet18"]
    assert "experiments.1.arch: unknown key" in _error(config)


def test_execution_settings_live_apart_and_old_keys_say_where_they_went(default_config):
    config = validate_config(copy.deepcopy(default_config), CONFIG_SCHEMA)
    assert set(execution_settings(config)) == {"threads", "gpus", "device", "num_workers", "preload_max_gb", "predict_batch_size"}
    assert set(MOVED_KEYS.values()) == {f"execution.{key}" for key in execution_settings(config)}
    assert not set(config["training"]) & set(execution_settings(config))
    default_config["training"]["predict_batch_size"] = 64
    assert "training.predict_batch_size: moved to execution.predict_batch_size" in _error(default_config)


def test_a_group_must_share_modality_and_cache_size(default_config):
    config = copy.deepcopy(default_config)
    config["datasets"]["synth-cxr-b"]["preprocess"]["size"] = 32
    message = _error(config)
    assert "the datasets of group 'cxr' test each other's models and must share their preprocess.size" in message
    assert "synth-cxr-a: 64, synth-cxr-b: 32" in message
    config = copy.deepcopy(default_config)
    config["datasets"]["synth-ct"]["group"] = "cxr"
    config["datasets"]["synth-ct"]["preprocess"]["size"] = 64
    assert "group 'cxr' test each other's models and must share their modality (synth-cxr-a: cxr, synth-cxr-b: cxr, synth-ct: ct)" in _error(config)


def test_a_dataset_tested_on_needs_a_test_split(default_config):
    default_config["datasets"]["synth-cxr-b"]["split"] = {"train": 0.8, "validation": 0.2, "test": 0.0}
    assert ("datasets.synth-cxr-b.split.test: 0, but 'synth-cxr-b' is a test set of the models trained on "
            "'synth-cxr-a' (same group)") in _error(default_config)


def test_a_resolution_above_the_cache_size_is_refused(default_config):
    default_config["experiments"][1]["perturbations"] = ["res-32", "res-128"]
    message = _error(default_config)
    assert "experiments.1.perturbations: res-128 cannot reduce the 64-pixel cache of 'synth-cxr-a' to 128 pixels" in message
    assert "res-32" not in message
