"""configs/paper.yaml: the paper's matrix on the real adapters validates and dry-runs with no data."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from conftest import CONFIG_SCHEMA, REPO
from readrace.config import validate_config
from readrace.experiments import evaluation_datasets, expand_experiments


def test_paper_config_validates_and_keeps_the_paper_splits():
    config = validate_config(yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()), CONFIG_SCHEMA)
    assert len(config["datasets"]) == 12
    mask_sets = ["MONT", "SHZ", "JSRT"]  # the U-Net trains on them; no race model tests on them
    assert [name for name, dataset in config["datasets"].items() if dataset["mask_set"]] == mask_sets
    assert {m.train for m in expand_experiments(config)["segmentation"]} >= {"MXR+MONT+SHZ+JSRT"}
    assert config["datasets"]["MXR"]["split"] == {"train": 0.6, "validation": 0.1, "test": 0.3, "salt": "readrace-split-v1"}
    assert config["datasets"]["RSPECT"]["split"]["test"] == 1.0
    assert evaluation_datasets(config, "NLST") == ["NLST", "RSPECT", "EM-CT"]
    assert evaluation_datasets(config, "DHA") == ["DHA"]  # the hand atlas is not a c-spine test set
    assert evaluation_datasets(config, "MXR") == ["MXR", "CXP", "EMX"]
    perturbations = {m.perturbation for m in expand_experiments(config)["race_detection"] if m.train == "MXR"}
    assert {"lpf-d10", "hpf-d100", "bpf-d10-50", "notch-d10-50", "res-32", "noise-0.1", "blur-2", "boneclip-0.6"} <= perturbations


def test_paper_matrix_dry_runs_without_any_data():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "8", "--configfile", "configs/paper.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    assert int(stats["ingest_shard"]) == 200 + 100 + 100 + 200 + 50 + 100 + 1 + 50 + 5 + 3  # + the mask sets
    # 186 race models of Table 3 and the mechanism experiments, localisation's 18 MXR grid
    # models and 2 lung / non-lung models, and the CXP DenseNet121 race models the clinical
    # audits compare their probes with.
    assert int(stats["train_model"]) == 186 + 18 + 2 + 3
    assert int(stats["train_clinical"]) == 6 and int(stats["attack"]) == 6
    # Every image model's predictions are scored; so are the tabular confounder models' and
    # the clinical models' race probes, which write their own predictions.
    assert int(stats["score"]) >= int(stats["predict"]) + int(stats["tabular_model"])
    assert int(stats["predict"]) > int(stats["train_model"])
    # Membership: 3 datasets x (3 archs + 5 DP points of resnet18) x 64 shadow models.
    assert int(stats["membership_train"]) == 3 * (3 + 5) * 64
    assert int(stats["membership_scores"]) == int(stats["membership_audit"]) == 3 * (3 + 5)
    assert "synthesize_cohort" not in stats  # the embedded default is not merged in
