"""Unit tests of the membership audit's library: per-record AUCs, the attacks and their
signs, the balanced shadows, RMIA's population, disparity tests, views, margins, the
patient-level DP sampler and accountant, the kind's ids, and the atypical cohort option."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from readrace.audits import membership as m
from readrace.audits.dp import OpacusPrivacy, PatientPoissonBatches, noise_for_epsilon
from readrace.audits.shadow import margin, view_transform
from readrace.data.subsets import HalfOfPatients
from readrace.experiments.membership import MembershipModel, privacy_epsilon, privacy_id


def design(n_records: int, n_models: int, seed: int = 0) -> np.ndarray:
    return m.random_membership(n_records, n_models, seed)


def planted_margins(member: np.ndarray, effect: float, seed: int = 1) -> np.ndarray:
    """Margins N(0, 1) per record offset plus ``effect`` where IN, 2 views."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 2, size=(member.shape[0], 1, 1))
    return base + effect * member[:, :, None] + rng.normal(0, 1, size=(*member.shape, 2))


def test_binormal_matches_empirical_and_the_closed_form():
    rng = np.random.default_rng(0)
    inside, outside = rng.normal(1.0, 1.0, (1, 4000)), rng.normal(0.0, 1.5, (1, 4000))
    expected = stats.norm.cdf(1.0 / np.hypot(1.0, 1.5))
    assert m.binormal_auc(inside, outside)[0] == pytest.approx(expected, abs=0.01)
    assert m.empirical_auc(inside[:, :2500], outside[:, :2500])[0] == pytest.approx(expected, abs=0.025)
    # Ties count one half.
    assert m.empirical_auc(np.array([[1.0, 2.0]]), np.array([[1.0, 0.0]]))[0] == pytest.approx(0.875)


def test_risk_ranks_by_the_gap_where_the_own_spread_is_not_estimable():
    """With 2 models a side, a record whose margins happen to agree gets a huge own-spread
    separation (and the empirical AUC ties at 1 for many records); the pooled-variance risk
    ranks by the IN-OUT gap on the audit's common scale, and its AUC stays below 1."""
    rng = np.random.default_rng(0)
    inside = rng.normal(0.0, 1.0, (200, 2))
    outside = rng.normal(0.0, 1.0, (200, 2))
    inside[0], outside[0] = [1.0, 1.001], [0.0, 0.001]  # gap 1, almost no own spread
    inside[1], outside[1] = [6.0, 4.0], [-4.0, -6.0]  # gap 10, ordinary spread
    assert m.separation(inside, outside)[0] > m.separation(inside, outside)[1]
    risk = m.pooled_separation(inside, outside)
    assert risk.argmax() == 1 and risk[0] < np.sort(risk)[-5]
    table = m.record_aucs(np.concatenate([inside, outside], axis=1), np.repeat([[True, True, False, False]], 200, axis=0))
    assert table["risk"].to_numpy() == pytest.approx(risk)
    assert table.loc[1, "risk_auc"] == pytest.approx(stats.norm.cdf(risk[1])) and table.loc[1, "risk_auc"] < 1.0
    records = table.assign(patient_id=[f"p{k // 2}" for k in range(200)], image_id=[f"i{k:03d}" for k in range(200)])
    patients = m.patient_risk(records)
    assert patients.loc[0, "patient_id"] == "p0" and patients.loc[0, "most_exposed_image"] == "i001"


def test_record_aucs_need_a_balanced_design():
    member = design(10, 4)
    member[0] = [True, True, True, False]
    with pytest.raises(ValueError, match="not balanced"):
        m.record_aucs(np.zeros((10, 4)), member)


def test_balanced_shadows_leave_equal_sides():
    member = design(50, 8)
    for target in range(8):
        use = m.balanced_shadows(member, target)
        assert not use[:, target].any()
        assert ((use & member).sum(axis=1) == 3).all() and ((use & ~member).sum(axis=1) == 3).all()


@pytest.mark.parametrize("online", [True, False])
def test_lira_ranks_members_above_non_members_and_the_control_at_chance(online):
    member = design(400, 8)
    margins = planted_margins(member, effect=1.5)
    aucs = [m.roc_summary(member[:, t], m.lira_scores(margins, member, t, online))["auc"] for t in range(8)]
    assert np.mean(aucs) > 0.7  # the sign: higher likelihood under IN -> member
    control = design(400, 8, seed=5)
    aucs = [m.roc_summary(control[:, t], m.lira_scores(margins, control, t, online))["auc"] for t in range(8)]
    assert abs(np.mean(aucs) - 0.5) < 0.05


def test_offline_lira_is_not_the_inverted_out_density():
    member = design(400, 8)
    margins = planted_margins(member, effect=1.5)
    wrong = stats.norm.logpdf(margins[:, 0, :], margins[:, 1:, :].mean(axis=1)).sum(axis=1)
    right = m.lira_scores(margins, member, 0, online=False)
    assert m.roc_summary(member[:, 0], right)["auc"] > 0.5 > m.roc_summary(member[:, 0], wrong)["auc"] - 0.2


def test_rmia_uses_a_population_of_non_members():
    member = design(300, 6)
    rng = np.random.default_rng(2)
    prob = 1 / (1 + np.exp(-(rng.normal(0, 1, (300, 1)) + 1.5 * member)))
    population = 1 / (1 + np.exp(-rng.normal(0, 1, (200, 6))))
    scores = m.rmia_scores(prob, population, member, 0)
    assert ((0 <= scores) & (scores <= 1)).all()
    assert m.roc_summary(member[:, 0], scores)["auc"] > 0.7


def test_tpr_at_low_fpr_reports_its_points():
    labels = np.array([True] * 50 + [False] * 50)
    summary = m.roc_summary(labels, np.r_[np.ones(50), np.zeros(50)])
    assert summary["tpr_at_fpr_0.001"] == 1.0 and summary["n_nonmembers"] == 50 and summary["auc"] == 1.0


def test_disparity_counts_residuals_and_tests():
    patients = pd.DataFrame({"patient_id": [f"{k:016x}" for k in range(100)],
                             "race": ["Black"] * 20 + ["White"] * 80, "risk": np.linspace(3, 0, 100)})
    top = m.exposed(patients, 0.1)
    assert top.sum() == 10 and top[:10].all()
    groups, tests = m.disparity(patients, top, ["race"])
    black = groups.set_index("group").loc["Black"]
    assert black["observed"] == 10 and black["expected"] == pytest.approx(2.0)
    assert black["pearson_residual"] == pytest.approx((10 - 2) / np.sqrt(2))
    table = np.array([[10, 10], [0, 80]])
    assert tests["chi2"].iloc[0] == pytest.approx(stats.chi2_contingency(table, correction=False)[0])
    g2 = stats.power_divergence(table, stats.contingency.expected_freq(table), axis=None, lambda_="log-likelihood")
    assert tests["g2"].iloc[0] == pytest.approx(g2.statistic)


def test_age_bands_and_survival():
    bands = m.age_band(pd.Series([30.0, 40.0, 79.0, 85.0, np.nan]), [40, 60, 80])
    assert bands.tolist()[:4] == ["<40", "40-59", "60-79", "80+"] and pd.isna(bands.iloc[4])
    assert m.survival(np.array([0.5, 0.7, 0.9, 1.0]), np.array([0.5, 0.8, 1.0])).tolist() == [1.0, 0.5, 0.25]


def test_margin_and_views():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    labels = np.array([0, 2])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = np.log(probs[[0, 1], labels]) - np.log(1 - probs[[0, 1], labels])
    assert margin(logits, labels) == pytest.approx(expected)
    x = torch.arange(8.0).reshape(1, 1, 2, 4)
    sample = {"image": x, "index": np.array([0])}
    assert view_transform("shift-1")(sample, {"view": torch.Generator()})["image"][0, 0, 0].tolist() == [0, 0, 1, 2]
    assert view_transform("shift--1")(sample, {"view": torch.Generator()})["image"][0, 0, 0].tolist() == [1, 2, 3, 3]
    assert view_transform("flip")(sample, {"view": torch.Generator()})["image"][0, 0, 0].tolist() == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="unknown view"):
        view_transform("rotate")


def test_patient_poisson_batches_take_one_image_per_patient():
    patient_of_row = np.repeat(np.arange(40), 3)  # 40 patients, 3 images each
    sampler = PatientPoissonBatches(patient_of_row, 0.25)
    batches = sampler.batches(np.arange(120), torch.Generator().manual_seed(0))
    assert len(batches) <= 4
    for batch in batches:
        assert len(set(patient_of_row[batch])) == len(batch)
    sizes = [len(b) for _ in range(50) for b in sampler.batches(np.arange(120), torch.Generator().manual_seed(_))]
    assert np.mean(sizes) == pytest.approx(10, rel=0.15)


def test_dp_accountant_spends_the_target_epsilon():
    sigma = noise_for_epsilon(2.0, 1e-3, 0.2, 50)
    privacy = OpacusPrivacy(sigma, 1.0, 0.2, 8, 1e-3, seed=0)
    assert privacy.epsilon() == 0.0
    for _ in range(50):
        privacy.after_step(8)
    assert privacy.epsilon() == pytest.approx(2.0, abs=0.05)
    restored = OpacusPrivacy(sigma, 1.0, 0.2, 8, 1e-3, seed=0)
    restored.load_state_dict(privacy.state_dict())
    assert restored.epsilon() == pytest.approx(privacy.epsilon())


def test_shadow_ids_and_privacy_ids_round_trip():
    model = MembershipModel("synth-cxr-a", "small_cnn", privacy_id(0.5), 64, 0, 17)
    assert model.path == "membership/synth-cxr-a/small_cnn/dp-eps0.5/n64/seed0/shadow17"
    assert MembershipModel.from_path(model.path) == model
    assert privacy_epsilon("none") is None and privacy_epsilon("dp-eps0.5") == 0.5
    with pytest.raises(ValueError):
        MembershipModel.from_path("membership/x/small_cnn/none/n4/seed0")


def test_half_of_patients_is_balanced():
    ids = [f"{k:016x}" for k in range(30)]
    members = np.stack([HalfOfPatients(6, k, 0).members(ids) for k in range(6)], axis=1)
    assert (members.sum(axis=1) == 3).all()


def test_atypical_option_is_off_by_default_and_flips_labels(tmp_path):
    from readrace.synthetic import CohortSpec, generate_cohort

    plain = generate_cohort(CohortSpec.from_options("cxr", {"patients": 6, "seed": 3}), tmp_path / "a", progress=False)
    generate_cohort(CohortSpec.from_options("cxr", {"patients": 6, "seed": 3, "atypical": {"patients": 0}}),
                          tmp_path / "b", progress=False)
    assert not (tmp_path / "a/atypical.csv").exists()
    for path in plain.loc[plain["kind"] == "image", "path"]:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()
    generate_cohort(CohortSpec.from_options("cxr", {"patients": 6, "seed": 3, "atypical": {"patients": 2}}),
                    tmp_path / "c", progress=False)
    atypical = pd.read_csv(tmp_path / "c/atypical.csv", dtype=str)
    assert len(atypical) == 2 and (atypical["race"] != atypical["signal_race"]).all()
    patients = pd.read_csv(tmp_path / "c/patients.csv", dtype=str).set_index("PatientID")
    assert (patients.loc[atypical["PatientID"], "race"].to_numpy() == atypical["race"].to_numpy()).all()
    with pytest.raises(ValueError, match="atypical.artefact"):
        CohortSpec.from_options("cxr", {"atypical": {"artefact": 2}})


def test_config_checks_name_the_key(default_config):
    import copy

    from conftest import CONFIG_SCHEMA
    from readrace.config import ConfigError, validate_config

    def error(config):
        with pytest.raises(ConfigError) as caught:
            validate_config(config, CONFIG_SCHEMA)
        return str(caught.value)

    config = copy.deepcopy(default_config)
    config["experiments"] = [{"kind": "membership", "datasets": ["synth-cxr-z"]}]
    assert "experiments.0.datasets: 'synth-cxr-z' is not a dataset of this config" in error(config)
    config["experiments"] = [{"kind": "membership", "datasets": ["synth-cxr-a"], "pool": ["train", "test"]}]
    assert "needs a test split outside the pool" in error(config)
    config["experiments"] = [{"kind": "membership", "datasets": ["synth-cxr-a"], "n_models": 3}]
    assert "n_models" in error(config)
    config["experiments"] = [{"kind": "membership", "datasets": ["synth-cxr-a"], "views": ["rotate-5"]}]
    assert "views" in error(config)
    config["experiments"] = [{"kind": "membership", "datasets": ["synth-cxr-a"]},
                             {"kind": "membership", "datasets": ["synth-cxr-a"], "views": ["identity"]}]
    assert "two blocks must not name one audit differently" in error(config)


def test_fixed_epochs_keep_the_last_weights_and_dp_models_reload_with_group_norm(tmp_path):
    from readrace.models import build_group_norm_model
    from readrace.training.config import TrainConfig
    from readrace.training.engine import fit
    from readrace.training.inference import load_model
    from readrace.training.parts import TrainingParts

    rng = np.random.default_rng(0)
    images = rng.random((24, 16, 16)).astype(np.float16)
    labels = np.arange(24) % 3
    config = TrainConfig(arch="small_cnn", n_classes=3, epochs=3, batch_size=8, patience=3, device="cpu")
    result = fit(images, labels, np.arange(16), np.arange(16, 24), config, tmp_path / "last",
                 data_fingerprint="test", select="last", progress=False)
    assert result.best_epoch == 3 and result.epochs_completed == 3
    parts = TrainingParts(model=build_group_norm_model)
    fit(images, labels, np.arange(16), np.arange(16, 24), config, tmp_path / "gn", data_fingerprint="test",
        parts=parts, progress=False)
    model, meta = load_model(tmp_path / "gn" / "model.pt")
    assert meta["parts"]["model"] == "readrace.models.build_group_norm_model"
    assert any(isinstance(module, torch.nn.GroupNorm) for module in model.modules())
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in model.modules())
