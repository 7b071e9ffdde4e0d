"""Known answers of the clinical and robustness kinds, through Snakemake, on a tiny cohort.

One module-scoped run serves every test: three chest-radiograph datasets, each with one
role. ``cxr-gap`` has no race signal and every visible finding of Black patients drawn
invisible (the planted underdiagnosis gap); ``cxr-plain`` has neither (the control of the gap
and of the probe); ``cxr-race`` has the race signal and no gap (the probe's positive case and
the attacked models). The gap is planted where race cannot be seen: with the race signal in
the same images, the model recognises Black patients and gives all of them their (lower) base
rate of No Finding whatever the image shows, which turned the planted gap around (measured,
160 patients: Black underdiagnosis 0.22 against 0.38 for White with the signal, 0.87 against
0.33-0.58 without it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import run_snakemake

pytestmark = pytest.mark.workflow

SPLIT = {"train": 0.5, "validation": 0.2, "test": 0.3}
# 32 px for the gap and its control: the drawn findings and the planted gap survive it.
PREPROCESS = {"size": 32}
TINY = {
    "pseudonym_salt": "salt-for-the-clinical-test",
    # The race models (the probe's comparison, the attacked race model): 3 epochs reach a
    # validation AUC near 1 on cxr-race; on the other two there is nothing to learn.
    "training": {"epochs": 3, "batch_size": 16, "patience": 6, "augment": False},
    "evaluation": {"bootstrap": 300},
    "experiments": [
        # Youden's J: with a small, weakly trained model max F1 degenerates to calling every
        # image No Finding, which leaves no false-positive rate to compare.
        {"kind": "clinical", "train": ["cxr-gap", "cxr-plain", "cxr-race"], "archs": ["resnet18"], "seeds": [0],
         "audit": {"threshold": "youden"}, "training": {"epochs": 6}},
        {"kind": "robustness", "train": ["cxr-race"], "archs": ["resnet18"], "seeds": [0], "attacks": ["fgsm", "pgd"],
         "epsilons": [0, 1, 4], "pgd_steps": 3},
    ],
    "datasets": {
        "cxr-gap": {
            "adapter": "synthetic", "modality": "cxr", "split": SPLIT, "preprocess": PREPROCESS,
            "options": {"site": "A", "patients": 160, "seed": 21, "broken_files": False, "signal": {"strength": 0.0},
                        "faint_findings": {"race": "Black", "visibility": 0.0}},
        },
        "cxr-plain": {
            "adapter": "synthetic", "modality": "cxr", "split": SPLIT, "preprocess": PREPROCESS,
            "options": {"site": "A", "patients": 160, "seed": 22, "broken_files": False, "signal": {"strength": 0.0}},
        },
        # 64 px and a group of its own: at 32 px and 100 patients the race signal was too weak
        # (measured: the clinical probe 0.65 (0.47-0.85), the race model at chance after 3
        # epochs); at 64 px and 160 patients: clinical probe 0.93 (0.88-0.97).
        "cxr-race": {
            "adapter": "synthetic", "modality": "cxr", "group": "cxr-race", "split": SPLIT,
            "preprocess": {"size": 64},
            "options": {"site": "A", "patients": 160, "seed": 23, "broken_files": False},
        },
    },
}
MODEL = "clinical/{}/resnet18/none/seed0"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("clinical")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    # Six small models on 2 shared cores: give it longer than the default 15 minutes.
    result = run_snakemake(workdir, "--cores", "2", timeout=3000)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_the_clinical_model_learns_the_drawn_findings_per_label(run):
    table = pd.read_csv(run / "results/tables/clinical.csv")
    assert set(table["train_dataset"]) == {"cxr-gap", "cxr-plain", "cxr-race"}
    plain = table[(table["train_dataset"] == "cxr-plain") & (table["level"] == "image")].set_index("class")
    assert set(plain.index) >= {"Cardiomegaly", "No Finding", "macro"}
    drawn = plain[plain["drawn_in_synthetic_images"] & (plain.index != "macro")]
    # Only the findings drawn into the image can be learnt: their mean AUC is well above chance.
    assert drawn["auc"].mean() > 0.65, drawn[["auc", "ci_low", "ci_high"]]


def test_the_audit_finds_the_planted_underdiagnosis_gap_and_no_gap_without_it(run):
    """Underdiagnosis pools every finding: a per-label TPR (Edema, say) has 2-7 Black
    positives in this test split and cannot carry a known answer at this size."""
    audit = pd.read_csv(run / "results/tables/subgroup_audit.csv")
    gaps = audit[(audit["attribute"] == "race") & (audit["group"] == "gap") & (audit["metric"] == "underdiagnosis")]
    planted = gaps[gaps["model"] == MODEL.format("cxr-gap")].iloc[0]
    assert planted["high_group"] == "Black" and planted["ci_low"] > 0, planted
    # The planted group against all other patients: its excess underdiagnosis excludes zero
    # with the gap planted and contains it without. (The best-minus-worst gap of the control
    # is the largest of three noisy differences; at this size its interval need not hold 0.)
    black = audit[(audit["attribute"] == "race") & (audit["group"] == "Black") & (audit["metric"] == "underdiagnosis")]
    black = black.set_index("train_dataset")
    assert black.loc["cxr-gap", "excess_ci_low"] > 0, black
    assert black.loc["cxr-plain", "excess_ci_low"] <= 0 <= black.loc["cxr-plain", "excess_ci_high"], black
    assert {"race", "sex", "age", "race x sex", "race x age"} <= set(audit["attribute"])
    assert (run / "results/figures/subgroup_gaps.png").stat().st_size > 0


def test_the_probe_finds_race_in_the_features_only_where_it_is_planted(run):
    probes = pd.read_csv(run / "results/tables/race_probe.csv")
    macro = probes[probes["class"] == "macro"].set_index(["train_dataset", "encoder"])
    assert macro.loc[("cxr-race", "clinical"), "ci_low"] > 0.6
    for encoder in ("clinical", "race", "untrained", "race model (trained)"):
        row = macro.loc[("cxr-plain", encoder)]
        assert row["ci_low"] < 0.5 < row["ci_high"], (encoder, row["auc"])
    assert (run / "results/figures/race_probe_pca.png").stat().st_size > 0


def test_attack_success_is_zero_at_epsilon_zero_and_rises_with_epsilon(run):
    table = pd.read_csv(run / "results/tables/robustness.csv")
    success = table[(table["metric"] == "success_rate") & (table["group"] == "all") & ~table["cross_task"]]
    for (attack, attacked), part in success.groupby(["attack", "attacked"]):
        rates = part.sort_values("epsilon")["value"].to_numpy()
        assert rates[0] == 0, (attack, attacked)
        assert rates[-1] > rates[0] and (rates[1:] >= rates[:-1] - 0.05).all(), (attack, attacked, rates)
    assert {"Asian", "Black", "White", "all"} <= set(table["group"])
    assert table["cross_task"].any()
    assert "kruskal_p" in pd.read_csv(run / "results/tables/robustness_min_eps.csv")


def test_no_source_path_or_header_id_in_the_audits(run):
    truth = pd.concat([pd.read_csv(run / f"data/synthetic/{name}/truth.csv") for name in TINY["datasets"]])
    secrets = set(truth["path"]) | set(truth["PatientID"]) | set(truth["SOPInstanceUID"])
    pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
    for path in (run / "results/audits").rglob("*"):
        if path.is_file():
            text = pd.read_parquet(path).to_csv() if path.suffix == ".parquet" else path.read_text()
            assert pattern.search(text) is None, path


def jobs(run: Path, config: dict) -> dict[str, int]:
    changed = run / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = run_snakemake(run, "-n", "--cores", "2", configfile=changed)
    assert result.returncode == 0, result.stderr[-3000:]
    return {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M) if k != "total"}


def test_a_changed_threshold_rule_reruns_only_the_audits(run):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    assert jobs(run, config) == {}
    config["experiments"][0]["audit"] = {"threshold": "max_f1"}
    # (workflow_config records the changed config beside the results.)
    assert jobs(run, config) == {"subgroup_audit": 3, "subgroup_audit_table": 1, "workflow_config": 1, "all": 1}
    config["experiments"][0]["uncertain"] = "ignore"
    rerun = jobs(run, config)
    assert rerun["train_clinical"] == 3 and "train_model" not in rerun and "synthesize_cohort" not in rerun


def test_the_clinical_blocks_training_retrains_the_clinical_models_only(run):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"][0]["training"] = {"epochs": 5}
    rerun = jobs(run, config)
    assert rerun["train_clinical"] == 3 and "train_model" not in rerun and "synthesize_cohort" not in rerun
