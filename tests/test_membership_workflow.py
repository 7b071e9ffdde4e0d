"""The membership audit through Snakemake, on a tiny synthetic cohort with planted atypical
patients (a strong artefact and a flipped race label): one module-scoped run serves every
test. Known answers: the atypical patients top the exposure list; IN/OUT replaced by a
random split gives chance; the binormal and empirical per-record AUCs agree; DP-SGD at a
small epsilon lowers the exposure; a changed view reruns no training. The same fixture holds
the model-size comparison (small_cnn against resnet18, same patients, N and training): no
torchvision model fits the default run's budget (resnet18 at 64 px: about 45 CPU-s a shadow)."""

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
AUDIT = "results/membership/cxr/{arch}/{privacy}/n4/seed0"
SHADOW_TRAINING = {"epochs": 20, "batch_size": 8, "lr": 0.003, "weight_decay": 0.0}
#: The planted patients must hold the top ranks: all of them within len(planted) + SLACK
#: (measured: exactly the top len(planted); one rank of slack for another CPU's rounding).
SLACK = 1
TINY = {
    "pseudonym_salt": "salt-for-the-membership-test",
    "training": {"epochs": 8, "batch_size": 16, "patience": 8, "augment": False},
    "evaluation": {"bootstrap": 100},
    "experiments": [{
        "kind": "membership", "datasets": ["cxr"], "archs": ["small_cnn"], "n_models": 4, "seed": 0,
        "views": ["identity", "flip"],
        "training": SHADOW_TRAINING,
        "dp": {"epsilons": [0.5], "delta": 1.0e-3, "expected_batch_size": 8},
        "top_fraction": 0.1, "exposed_auc": 0.95,
    }, {
        # Model size: the same audit of a torchvision network (no DP point: one is enough).
        "kind": "membership", "datasets": ["cxr"], "archs": ["resnet18"], "n_models": 4, "seed": 0,
        "views": ["identity", "flip"], "training": SHADOW_TRAINING, "dp": {"epsilons": []},
        "top_fraction": 0.1, "exposed_auc": 0.95,
    }],
    "datasets": {
        "cxr": {
            "adapter": "synthetic", "modality": "cxr", "shards": 1,
            "split": {"train": 0.6, "validation": 0.1, "test": 0.3}, "preprocess": {"size": 32},
            # A strong race signal, so that the shadows generalise from ~17 patients (race
            # AUC 0.96 at strength 8; 0.52 at the default strength): then an ordinary record is
            # predicted well by the models that never saw it, and only the atypical ones
            # (flipped label, strong artefact) need remembering. At strength 1 every record is
            # remembered alike and the planted patients ranked 0, 4, 6 and 10 of 33; at
            # strength 4 with artefact 0.6, 0, 1, 4 and 5.
            "options": {"site": "A", "patients": 60, "seed": 21, "broken_files": False, "signal": {"strength": 8.0},
                        "atypical": {"patients": N_ATYPICAL, "artefact": 1.0}},
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


def audit_table(run: Path, privacy: str, name: str, arch: str = "small_cnn") -> pd.DataFrame:
    return pd.read_csv(run / AUDIT.format(arch=arch, privacy=privacy) / name)


def atypical_images(run: Path) -> set[str]:
    """The pseudonymous image ids of the atypical patients, through the private map."""
    atypical = pd.read_csv(run / "data/synthetic/cxr/atypical.csv", dtype=str)
    truth = pd.read_csv(run / "data/synthetic/cxr/truth.csv", dtype=str)
    sources = pd.read_csv(run / "private/cxr/sources.csv", dtype=str)
    paths = truth.loc[truth["PatientID"].isin(atypical["PatientID"]), "path"]
    return set(sources.loc[sources["path"].isin(paths), "image_id"])


def planted_ranks(records: pd.DataFrame, planted: set[str], column: str) -> tuple[list[int], int]:
    """Ranks (0: most exposed) of the planted patients when patients rank by the max of
    ``column`` over their records, and the number of patients."""
    planted_patients = set(records.loc[records["image_id"].isin(planted), "patient_id"])
    ranked = records.groupby("patient_id")[column].max().sort_values(ascending=False).index.tolist()
    return sorted(ranked.index(p) for p in planted_patients), len(ranked)


def test_atypical_patients_top_the_exposure_list(run):
    records = audit_table(run, "none", "records.csv")
    patients = audit_table(run, "none", "patients.csv")
    planted = atypical_images(run) & set(records["image_id"])
    assert len(planted) >= 2, "too few atypical records in the pool to test"
    ranks, n_patients = planted_ranks(records, planted, "risk")
    # Every planted patient in the top len(planted) + SLACK of the exposure list (measured:
    # ranks 0, 1, 2, 3 of 33 with 4 shadow models; the random-split control: 0, 16, 20, 26).
    assert ranks[-1] < len(ranks) + SLACK, (ranks, n_patients)
    # The audit's own patient table ranks the same way.
    top = patients.sort_values("risk", ascending=False)["patient_id"].head(len(ranks) + SLACK)
    assert set(records.loc[records["image_id"].isin(planted), "patient_id"]) <= set(top)
    # The control (IN/OUT from a random split) puts no particular set at the top: the planted
    # patients are not all among its most exposed, and almost nobody is exposed.
    control_ranks, _ = planted_ranks(records, planted, "control_risk")
    assert control_ranks[-1] >= len(ranks) + SLACK, control_ranks
    summary = audit_table(run, "none", "summary.csv").iloc[0]
    assert summary["control_exposed_share"] <= 0.1 < summary["exposed_share"], summary


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
    scores = pd.read_parquet(run / AUDIT.format(arch="small_cnn", privacy="none") / "scores.parquet")
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
    assert set(table["level"]) == {"record", "patient", "capacity"}
    assert set(table["privacy"]) == {"none", "dp-eps0.5"}
    summary = (run / "results/tables/membership_summary.md").read_text()
    for heading in ("Aggregate attacks", "Disparity", "Most exposed records", "DP-SGD sweep"):
        assert heading in summary
    for name in ("survival", "disparity", "dp", "capacity"):
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
    # The changed block's two audits rescore; the resnet18 block's audit is untouched.
    assert jobs.get("membership_scores") == "2" and jobs.get("membership_audit") == "2", result.stdout


def test_model_size_comparison(run):
    """Small CNN against resnet18 on the same patients, N and training: rows in
    membership.csv, a section of the summary and a figure, with intervals; both audits find
    the design (attack AUC above their random-split control)."""
    table = pd.read_csv(run / "results/tables/membership.csv")
    size = table[table["level"] == "capacity"].set_index("arch")
    assert set(size.index) == {"small_cnn", "resnet18"}
    assert size.loc["resnet18", "parameters"] > 100 * size.loc["small_cnn", "parameters"]
    assert (size["exposed_share_ci_low"] <= size["exposed_share"]).all()
    assert (size["exposed_share"] <= size["exposed_share_ci_high"]).all()
    assert (size["patients"] == size.loc["small_cnn", "patients"]).all()
    for arch in size.index:
        attacks = audit_table(run, "none", "attacks.csv", arch=arch)
        mean = attacks.groupby(["labels", "attack"])["auc"].mean()
        assert size.loc[arch, "lira_online_auc"] == pytest.approx(mean["design", "lira_online"])
        assert mean["design", "lira_online"] > mean["control", "lira_online"] + 0.1, (arch, mean)
    summary = (run / "results/tables/membership_summary.md").read_text()
    assert "## Model size" in summary and "resnet18" in summary.split("## Model size")[1]
    assert (run / "results/figures/membership_capacity.png").stat().st_size > 1000
