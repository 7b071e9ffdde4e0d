"""The membership audit through Snakemake, on a tiny synthetic cohort with planted atypical
patients (a strong artefact and a flipped race label): one module-scoped run serves every
test. Known answers: the atypical patients top the exposure list; IN/OUT replaced by a
random split gives chance; the binormal and empirical per-record AUCs agree; DP-SGD at a
small epsilon lowers the exposure; a changed view reruns no training."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import run_snakemake

pytestmark = pytest.mark.workflow

N_ATYPICAL = 4
AUDIT = "results/membership/cxr/small_cnn/{privacy}/n4/seed0"
TINY = {
    "pseudonym_salt": "salt-for-the-membership-test",
    "training": {"epochs": 8, "batch_size": 16, "patience": 8, "augment": False},
    "evaluation": {"bootstrap": 100},
    "experiments": [{
        "kind": "membership", "datasets": ["cxr"], "archs": ["small_cnn"], "n_models": 4, "seed": 0,
        "views": ["identity", "flip"],
        "training": {"epochs": 20, "batch_size": 8, "lr": 0.003, "weight_decay": 0.0},
        "dp": {"epsilons": [0.5], "delta": 1.0e-3, "expected_batch_size": 8},
        "top_fraction": 0.1, "exposed_auc": 0.95,
    }],
    "datasets": {
        "cxr": {
            "adapter": "synthetic", "modality": "cxr", "shards": 1,
            "split": {"train": 0.6, "validation": 0.1, "test": 0.3}, "preprocess": {"size": 32},
            "options": {"site": "A", "patients": 60, "seed": 21, "broken_files": False,
                        "atypical": {"patients": N_ATYPICAL, "artefact": 0.6}},
        },
    },
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    # About 25 jobs, most of them a Python start-up and seconds of work: minutes of wall
    # time on a shared 2-core machine, hence a timeout above conftest's default.
    return run_snakemake(workdir, "--cores", "2", *args, timeout=2400)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("membership")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def audit_table(run: Path, privacy: str, name: str) -> pd.DataFrame:
    return pd.read_csv(run / AUDIT.format(privacy=privacy) / name)


def atypical_images(run: Path) -> set[str]:
    """The pseudonymous image ids of the atypical patients, through the private map."""
    atypical = pd.read_csv(run / "data/synthetic/cxr/atypical.csv", dtype=str)
    truth = pd.read_csv(run / "data/synthetic/cxr/truth.csv", dtype=str)
    sources = pd.read_csv(run / "private/cxr/sources.csv", dtype=str)
    paths = truth.loc[truth["PatientID"].isin(atypical["PatientID"]), "path"]
    return set(sources.loc[sources["path"].isin(paths), "image_id"])


def test_atypical_patients_top_the_exposure_list(run):
    records = audit_table(run, "none", "records.csv")
    patients = audit_table(run, "none", "patients.csv")
    planted = atypical_images(run) & set(records["image_id"])
    assert len(planted) >= 2, "too few atypical records in the pool to test"
    planted_patients = set(records.loc[records["image_id"].isin(planted), "patient_id"])
    ranked = patients.sort_values(["auc_binormal", "separation"], ascending=False)["patient_id"].tolist()
    ranks = sorted(ranked.index(p) for p in planted_patients)
    # The most exposed patient is a planted one, and every planted one is in the top third:
    # with 4 models and a 33-patient pool the shadows memorise many ordinary records too
    # (measured: planted ranks 0, 4, 6, 10 of 33), but a wrong sign or a broken design puts
    # the planted patients at the bottom.
    assert ranks[0] == 0 and ranks[-1] < len(ranked) / 3, (ranks, len(ranked))
    assert records.loc[records["image_id"].isin(planted), "auc_empirical"].min() == 1.0
    gap = records["margin_in"] - records["margin_out"]
    assert gap[records["image_id"].isin(planted)].mean() > gap[~records["image_id"].isin(planted)].mean()


def test_random_membership_control_is_at_chance(run):
    records = audit_table(run, "none", "records.csv")
    attacks = audit_table(run, "none", "attacks.csv")
    assert abs(records["control_auc_empirical"].mean() - 0.5) < 0.08
    assert abs(records["control_auc_binormal"].mean() - 0.5) < 0.08
    control = attacks[attacks["labels"] == "control"].groupby("attack")["auc"].mean()
    design = attacks[attacks["labels"] == "design"].groupby("attack")["auc"].mean()
    assert (control.between(0.38, 0.62)).all(), control
    # The real design is found: per record, and by the aggregate attacks.
    assert records["auc_empirical"].mean() > records["control_auc_empirical"].mean() + 0.1
    assert design["rmia"] > control["rmia"] and design["lira_offline"] > control["lira_offline"], (design, control)


def test_binormal_and_empirical_record_aucs_agree(run):
    records = audit_table(run, "none", "records.csv")
    assert np.corrcoef(records["auc_binormal"], records["auc_empirical"])[0, 1] > 0.85
    assert abs(records["auc_binormal"].mean() - records["auc_empirical"].mean()) < 0.05
    summary = audit_table(run, "none", "summary.csv").iloc[0]
    assert summary["binormal_empirical_pearson"] > 0.85


def test_dp_at_small_epsilon_lowers_the_exposure(run):
    plain, private = (audit_table(run, p, "summary.csv").iloc[0] for p in ("none", "dp-eps0.5"))
    assert private["exposed_share"] < plain["exposed_share"], (private["exposed_share"], plain["exposed_share"])
    assert private["mean_auc_empirical"] < plain["mean_auc_empirical"]
    log = pd.read_csv(run / "results/models/membership/cxr/small_cnn/dp-eps0.5/n4/seed0/shadow0/train_log.csv")
    # Accounted per patient, calibrated to the target: the last epoch spends about epsilon.
    assert 0.4 < log["epsilon"].iloc[-1] <= 0.5 + 1e-6


def test_every_patient_is_in_half_of_the_models(run):
    scores = pd.read_parquet(run / AUDIT.format(privacy="none") / "scores.parquet")
    pool = scores[(scores["set"] == "pool") & (scores["view"] == "identity")]
    per_patient = pool.groupby(["patient_id", "shadow"])["member"].agg(["min", "max"])
    assert (per_patient["min"] == per_patient["max"]).all()  # all images of a patient together
    counts = pool.groupby("image_id")["member"].sum()
    assert (counts == 2).all()
    assert not scores.loc[scores["set"] == "population", "member"].any()
    for column in ("image_id", "patient_id"):
        assert scores[column].str.fullmatch(r"[0-9a-f]{16}").all()


def test_outputs_and_no_source_paths(run):
    table = pd.read_csv(run / "results/tables/membership.csv")
    assert set(table["level"]) == {"record", "patient"}
    assert set(table["privacy"]) == {"none", "dp-eps0.5"}
    summary = (run / "results/tables/membership_summary.md").read_text()
    for heading in ("Aggregate attacks", "Disparity", "Most exposed records", "DP-SGD sweep"):
        assert heading in summary
    for name in ("survival", "disparity", "dp"):
        assert (run / f"results/figures/membership_{name}.png").stat().st_size > 1000
    sources = pd.read_csv(run / "private/cxr/sources.csv", dtype=str)["path"]
    texts = [table.to_csv(), summary]
    for text in texts:
        assert not any(path in text for path in sources)
        assert not re.search(r"\d+(\.\d+){5,}", text)  # no DICOM UID


def test_a_changed_view_rescores_without_retraining(run):
    changed = yaml.safe_load(yaml.safe_dump(TINY))
    changed["experiments"][0]["views"] = ["identity", "shift-1"]
    config = run / "changed.yaml"
    config.write_text(yaml.safe_dump(changed))
    result = run_snakemake(run, "-n", configfile=config)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    assert "membership_train" not in jobs, result.stdout
    assert jobs.get("membership_scores") == "2" and jobs.get("membership_audit") == "2", result.stdout
