"""The default workflow end to end, through Snakemake, on a tiny synthetic cohort.

One module-scoped run (a few tens of seconds) feeds every test here: accounting of every
file, the quarantine reasons, the absence of PHI from results/, the manifest schema and
splits, the cache, CT slice order, and an idempotent rerun.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml

from conftest import MANIFEST_SCHEMA, REPO, run_snakemake
from readrace.data.manifest import validate_manifest

pytestmark = pytest.mark.workflow

SPLIT = {"train": 0.5, "validation": 0.2, "test": 0.3}
TINY = {
    "pseudonym_salt": "salt-for-the-workflow-test",
    # Measured: 100 patients at 64 px learn the default signal to a test AUC of about 0.9 in
    # 8 epochs; 32 px or 60 patients do not.
    "training": {"epochs": 8, "batch_size": 16, "patience": 8, "augment": False},
    "evaluation": {"bootstrap": 500},
    "experiments": [
        {"kind": "race_detection", "train": ["cxr-a", "cxr-null"], "archs": ["resnet18"], "perturbations": ["none"],
         "seeds": [0]},
        {"kind": "race_detection", "train": ["cxr-a"], "archs": ["resnet18"], "perturbations": ["lpf-d2"], "seeds": [0]},
    ],
    "datasets": {
        "cxr-a": {
            "adapter": "synthetic", "modality": "cxr", "shards": 2, "split": SPLIT,
            "preprocess": {"size": 64},
            "options": {"site": "A", "patients": 100, "seed": 5},
        },
        # The negative control: the same site with no planted signal.
        "cxr-null": {
            "adapter": "synthetic", "modality": "cxr", "shards": 1, "split": SPLIT,
            "preprocess": {"size": 64},
            "options": {"site": "A", "patients": 100, "seed": 15, "signal": {"strength": 0.0}},
        },
        "cxr-b": {
            "adapter": "synthetic", "modality": "cxr", "shards": 1,
            "preprocess": {"size": 64},
            "options": {"site": "B", "patients": 16, "seed": 6},
        },
        "ct": {
            "adapter": "synthetic", "modality": "ct", "shards": 2,
            "preprocess": {"size": 32},
            "options": {"patients": 8, "seed": 7},
        },
        "mammo": {
            "adapter": "synthetic", "modality": "mammo", "shards": 1,
            "preprocess": {"size": 32},
            "options": {"patients": 8, "seed": 8},
        },
    },
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, "--cores", "2", *args)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def private_csv(run: Path, name: str, table: str) -> pd.DataFrame:
    """A table of the private map back to the source files (paths kept as written)."""
    return pd.read_csv(run / f"private/{name}/{table}.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def report(run) -> tuple[str, dict[str, dict]]:
    """results/report.html, built once, and the items it embeds (path -> item)."""
    result = snakemake(run, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-4000:]
    html = (run / "results/report.html").read_text()
    start = html.index("var results = {") + len("var results = ")
    items, _ = json.JSONDecoder().raw_decode(html[start:])
    return html, items


def embedded(item: dict) -> bytes:
    """The file a report item embeds (base64 in its data URI)."""
    return base64.b64decode(item["data_uri"].split("base64,", 1)[1])


def test_every_file_is_ingested_or_quarantined(run):
    for name in TINY["datasets"]:
        files = private_csv(run, name, "files")["path"]
        manifest = pd.read_parquet(run / f"results/{name}/manifest.parquet")
        sources = private_csv(run, name, "sources")
        quarantine = private_csv(run, name, "quarantine")
        assert sources["image_id"].tolist() == manifest["image_id"].tolist()
        assert set(files) == set(sources["path"]) | set(quarantine["path"])
        assert not set(sources["path"]) & set(quarantine["path"])
        public = pd.read_csv(run / f"results/{name}/quarantine.csv", dtype=str)
        assert sorted(public["file_id"]) == sorted(quarantine["file_id"])
        truth = pd.read_csv(run / f"data/synthetic/{name}/truth.csv")
        assert set(files) == set(truth["path"])  # the listing found every generated file


def test_broken_files_and_exclusions_are_quarantined_with_their_reason(run):
    for name in TINY["datasets"]:
        truth = pd.read_csv(run / f"data/synthetic/{name}/truth.csv").set_index("path")
        quarantine = private_csv(run, name, "quarantine").set_index("path")
        reasons = quarantine["reason"]
        expected_prefix = {
            "truncated": "truncated",
            "no-pixel-data": "no pixel data",
            "non-image": "no pixel data",
            "not-dicom": "not a DICOM file",
        }
        for kind, prefix in expected_prefix.items():
            paths = truth.index[truth["kind"] == kind]
            assert len(paths) == 1, (name, kind)
            assert reasons[paths[0]].lower().startswith(prefix.lower()), (name, kind, reasons[paths[0]])
        images = truth[truth["kind"] == "image"]
        patients = pd.read_csv(run / f"data/synthetic/{name}/patients.csv").set_index("PatientID")
        race = patients.loc[images["PatientID"], "race"].to_numpy()
        hispanic = patients.loc[images["PatientID"], "ethnicity"].to_numpy() == "Hispanic or Latino"
        excluded = images.index[hispanic | np.isin(race, ["Other", "Unknown"])]
        assert len(excluded) > 0, name
        assert all(reasons[path].startswith("excluded: ") for path in excluded)
        kept = images.index.difference(excluded)
        assert not set(kept) & set(reasons.index)


def test_no_phi_in_results_or_logs(run, report):
    phi = set()
    for name in TINY["datasets"]:
        truth = pd.read_csv(run / f"data/synthetic/{name}/truth.csv")
        phi |= set(truth["path"])  # source paths name the patient's folder (dicom/p00042/...)
        for path in truth.loc[truth["kind"] == "image", "path"][:50]:
            ds = pydicom.dcmread(run / f"data/synthetic/{name}" / path, stop_before_pixels=True)
            phi |= {str(ds.PatientName), ds.PatientBirthDate, ds.PatientID, ds.StudyInstanceUID, ds.SOPInstanceUID}
            phi |= {str(ds.PatientName).split("^")[0]}
    phi = {value for value in phi if value and len(value) >= 4}
    assert len(phi) > 20
    written = [p for p in (run / "results").rglob("*") if p.is_file()] + list((run / "logs").rglob("*.log"))
    assert any(p.suffix == ".pt" for p in written)  # model weights are searched too
    assert any(p.name == "report.html" for p in written)  # and the report, with what it embeds
    # An alternation of every value, longest first, tried where a value's first 4 bytes are.
    values = [v.encode() for v in sorted(phi, key=len, reverse=True)]
    pattern = re.compile(b"|".join(map(re.escape, values)))
    prefixes = np.unique(np.array([int.from_bytes(v[:4], "little") for v in values], dtype=np.uint32))
    for path in written:
        texts = [path.read_bytes()]
        if path.suffix == ".parquet":  # compressed: search the decoded table too
            texts.append(pd.read_parquet(path).to_csv(index=False).encode())
        if path.name == "report.html":  # base64: search every embedded file too
            texts += [embedded(item) for item in report[1].values()]
        for text in texts:
            found = search_anchored(pattern, prefixes, text)
            assert found is None, f"{found.group().decode()!r} found in {path}"
    # The search is not blind: the private map back to the source files holds the paths,
    # and a value planted in model weights, across a block boundary, is found.
    assert search_anchored(pattern, prefixes, (run / "private/cxr-a/sources.csv").read_bytes())
    weights = bytearray((run / "results/models" / MODELS[0] / "model.pt").read_bytes())
    weights[ANCHOR_BLOCK - 2:ANCHOR_BLOCK - 2 + len(values[-1])] = values[-1]
    assert search_anchored(pattern, prefixes, bytes(weights))[0] == values[-1]


#: Bytes of a file searched per numpy pass (a few tens of MB of temporaries).
ANCHOR_BLOCK = 1 << 23


def search_anchored(pattern: re.Pattern, prefixes: np.ndarray, data: bytes) -> re.Match | None:
    """``pattern.search(data)`` for an alternation of literals of 4 bytes or more, whose first
    4 bytes (little-endian uint32) are ``prefixes`` (sorted): the regex is tried only where a
    match can start. A plain search of the run's model weights (45 MB each) with 1000+
    alternatives takes a minute; this, a few seconds."""
    if len(data) < 1 << 16:
        return pattern.search(data)
    array = np.frombuffer(data, dtype=np.uint8)
    for start in range(0, len(array) - 3, ANCHOR_BLOCK):
        block = array[start:start + ANCHOR_BLOCK + 3].astype(np.uint32)
        words = block[:-3] | block[1:-2] << 8 | block[2:-1] << 16 | block[3:] << 24
        at = np.searchsorted(prefixes, words)
        at[at == len(prefixes)] = 0
        for position in np.flatnonzero(prefixes[at] == words):  # leftmost first, as search
            found = pattern.match(data, start + int(position))
            if found:
                return found
    return None


def test_manifest_is_valid_and_splits_are_by_patient(run):
    for name, dataset in TINY["datasets"].items():
        manifest = pd.read_parquet(run / f"results/{name}/manifest.parquet")
        validate_manifest(manifest, MANIFEST_SCHEMA)
        assert manifest.groupby("patient_id")["split"].nunique().max() == 1
        assert set(manifest["split"]) <= {"train", "validation", "test"}
        assert set(manifest["race"]) <= {"Asian", "Black", "White"}
        cache = np.load(run / f"results/{name}/cache/images.npy", mmap_mode="r")
        size = dataset["preprocess"]["size"]
        assert cache.shape == (len(manifest), size, size) and cache.dtype == np.float16
        assert np.isfinite(cache).all() and cache.min() >= 0 and cache.max() <= 1
        assert (cache.reshape(len(cache), -1).std(axis=1) > 0.01).all()  # no blank images


def test_mammography_is_women_and_cxr_has_findings(run):
    mammo = pd.read_parquet(run / "results/mammo/manifest.parquet")
    assert set(mammo["sex"]) == {"F"} and mammo["breast_density"].notna().all()
    cxr = pd.read_parquet(run / "results/cxr-a/manifest.parquet")
    assert cxr["Cardiomegaly"].notna().all() and set(cxr["view"]) <= {"AP", "PA"}


def test_ct_slices_are_in_position_order(run):
    manifest = pd.read_parquet(run / "results/ct/manifest.parquet")
    truth = pd.read_csv(run / "data/synthetic/ct/truth.csv")
    paths = manifest["image_id"].map(private_csv(run, "ct", "sources").set_index("image_id")["path"])
    z = paths.map(truth.set_index("path")["slice_z"])
    for _, series in manifest.assign(z=z).groupby("series_id"):
        ordered = series.sort_values("slice_index")
        assert ordered["slice_index"].tolist() == list(range(len(series)))
        steps = np.diff(ordered["z"].to_numpy())
        assert (steps > 0).all() or (steps < 0).all()


def test_second_run_has_nothing_to_do(run):
    result = snakemake(run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_moved_checkout_reruns_nothing(run, tmp_path):
    """The same workflow from another folder (a moved or renamed checkout, files' times
    kept) is up to date: no job's params hold a path into the checkout."""
    moved = tmp_path / "moved-checkout"
    moved.mkdir()
    shutil.copy2(REPO / "Snakefile", moved / "Snakefile")
    for folder in ("workflow", "envs"):
        shutil.copytree(REPO / folder, moved / folder)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(moved / "Snakefile"), "--directory", str(run),
               "--configfile", str(run / "config.yaml"), "-n"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Nothing to be done" in result.stdout + result.stderr, (result.stdout + result.stderr)[-4000:]


def planned_jobs(workdir: Path, config: dict) -> set[tuple[str, str]]:
    """The jobs a dry run under ``config`` would run, as (rule, first output) pairs."""
    path = workdir / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "--cores", "2", "-n", configfile=path, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    text = result.stdout + result.stderr
    jobs = set()
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", text, flags=re.M)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block)[1]
        output = re.search(r"^    output: ([^,\n]+)", block, flags=re.M)
        jobs.add((rule, output[1] if output else ""))
    return jobs


def _tiny_copy() -> dict:
    return yaml.safe_load(yaml.safe_dump(TINY))


MODELS = ["race_detection/cxr-a/resnet18/none/seed0", "race_detection/cxr-null/resnet18/none/seed0",
          "race_detection/cxr-a/resnet18/lpf-d2/seed0"]
CXR = ["cxr-a", "cxr-null", "cxr-b"]
# Every change of the config is recorded in results/config.yaml; the target rule always runs.
ALWAYS = {("workflow_config", "results/config.yaml"), ("all", "")}
TABLES = {
    ("race_detection_table", "results/tables/race_detection.csv"),
    ("filter_figures", "results/figures/filter_auc.png"),
}


def evaluations(models, tests) -> set[tuple[str, str]]:
    """The predict and score jobs of ``models`` on ``tests``."""
    jobs = {("predict", f"results/predictions/{model}/{test}.parquet") for model in models for test in tests}
    return jobs | {("score", f"results/scores/{model}/{test}.csv") for model in models for test in tests}


def trainings(models) -> set[tuple[str, str]]:
    return {("train_model", f"results/models/{model}/model.pt") for model in models}


def test_changing_one_perturbation_parameter_reruns_exactly_its_models(run):
    config = _tiny_copy()
    config["experiments"][1]["perturbations"] = ["lpf-d4"]
    model = "race_detection/cxr-a/resnet18/lpf-d4/seed0"
    expected = ALWAYS | TABLES | trainings([model]) | evaluations([model], CXR)
    assert planned_jobs(run, config) == expected


def ingestion(dataset: str, shards: int = 1) -> set[tuple[str, str]]:
    """Every job of a synthetic dataset's ingestion, generation included."""
    return {
        ("synthesize_cohort", f"data/synthetic/{dataset}"),
        ("list_files", f"results/{dataset}/ingest/files.csv"),
        *{("ingest_shard", f"results/{dataset}/ingest/shard-{shard}.parquet") for shard in range(shards)},
        ("index_shards", f"results/{dataset}/ingest/shards.csv"),
        ("gather_dataset", f"results/{dataset}/manifest.parquet"),
    }


def test_changing_an_option_of_a_test_only_dataset_reruns_that_dataset_and_its_evaluations(run):
    config = _tiny_copy()
    config["datasets"]["cxr-b"]["options"]["seed"] = 60
    # cxr-b trains no model: only the predictions of every model on it are redone.
    expected = ALWAYS | TABLES | ingestion("cxr-b") | evaluations(MODELS, ["cxr-b"])
    assert planned_jobs(run, config) == expected


def test_changing_an_option_of_a_trained_dataset_retrains_its_models_and_reevaluates_them(run):
    config = _tiny_copy()
    config["datasets"]["cxr-a"]["options"]["seed"] = 50
    own = [model for model in MODELS if "/cxr-a/" in model]
    expected = ALWAYS | TABLES | ingestion("cxr-a", shards=2) | trainings(own)
    # Its own models on every test set, and the other model on it.
    expected |= evaluations(own, CXR) | evaluations(["race_detection/cxr-null/resnet18/none/seed0"], ["cxr-a"])
    assert planned_jobs(run, config) == expected


def test_changing_a_split_fraction_regathers_and_retrains_without_decoding_again(run):
    config = _tiny_copy()
    config["datasets"]["cxr-a"]["split"] = {"train": 0.6, "validation": 0.2, "test": 0.2}
    own = [model for model in MODELS if "/cxr-a/" in model]
    expected = ALWAYS | TABLES | {("gather_dataset", "results/cxr-a/manifest.parquet")} | trainings(own)
    expected |= evaluations(own, CXR) | evaluations(["race_detection/cxr-null/resnet18/none/seed0"], ["cxr-a"])
    assert planned_jobs(run, config) == expected


def test_changing_a_hyperparameter_retrains_every_model_and_nothing_upstream(run):
    config = _tiny_copy()
    config["training"]["lr"] = 0.002
    assert planned_jobs(run, config) == ALWAYS | TABLES | trainings(MODELS) | evaluations(MODELS, CXR)


def test_changing_the_evaluation_rescores_without_predicting_again(run):
    config = _tiny_copy()
    config["evaluation"]["bootstrap"] = 400
    scores = {job for job in evaluations(MODELS, CXR) if job[0] == "score"}
    assert planned_jobs(run, config) == ALWAYS | TABLES | scores


def test_execution_settings_rerun_nothing_but_the_config_record(run):
    config = _tiny_copy()
    # Every setting of the execution block, each changed.
    config["execution"] = {"threads": 2, "gpus": 0, "device": "cpu", "num_workers": 1, "preload_max_gb": 0.5,
                           "predict_batch_size": 7}
    assert planned_jobs(run, config) == ALWAYS


def _internal(table: pd.DataFrame, dataset: str, perturbation: str = "none") -> pd.Series:
    rows = table[(table["train_dataset"] == dataset) & (table["test_dataset"] == dataset)
                 & (table["perturbation"] == perturbation) & (table["class"] == "macro")]
    assert len(rows) == 1
    return rows.iloc[0]


def test_planted_signal_is_found_and_the_control_is_at_chance(run):
    table = pd.read_csv(run / "results/tables/race_detection.csv")
    signal = _internal(table, "cxr-a")
    control = _internal(table, "cxr-null")
    print(f"internal macro AUC: signal {signal['auc']:.3f} [{signal['ci_low']:.3f}, {signal['ci_high']:.3f}], "
          f"control {control['auc']:.3f} [{control['ci_low']:.3f}, {control['ci_high']:.3f}]")
    assert signal["ci_low"] > 0.7
    assert control["ci_low"] <= 0.5 <= control["ci_high"]


def test_every_model_is_scored_on_every_same_modality_test_set_for_every_class(run):
    table = pd.read_csv(run / "results/tables/race_detection.csv")
    cxr = ["cxr-a", "cxr-null", "cxr-b"]
    pairs = set(zip(table["train_dataset"], table["test_dataset"], table["perturbation"]))
    expected = {(train, test, "none") for train in ("cxr-a", "cxr-null") for test in cxr}
    expected |= {("cxr-a", test, "lpf-d2") for test in cxr}
    assert pairs == expected
    per_model = table.groupby(["train_dataset", "test_dataset", "perturbation"])["class"].apply(set)
    assert all(classes == {"Asian", "Black", "White", "macro"} for classes in per_model)
    # A class absent from a small test split has no AUC (NaN), never a made-up one.
    scored = table[table["auc"].notna()]
    assert (table.loc[table["auc"].isna(), "n_images"] == 0).all()
    assert (scored["n_bootstrap_units"] > 0).all() and scored["auc"].between(0, 1).all()
    assert (table["bootstrap_unit"] == "patient").all() and (table["n_units"] == table["n_images"]).all()
    assert (scored["ci_low"] <= scored["auc"] + 1e-9).all() and (scored["auc"] <= scored["ci_high"] + 1e-9).all()
    predictions = pd.read_parquet(run / "results/predictions/race_detection/cxr-a/resnet18/none/seed0/cxr-b.parquet")
    manifest = pd.read_parquet(run / "results/cxr-b/manifest.parquet")
    assert len(predictions) == (manifest["split"] == "test").sum()
    assert np.allclose(predictions[["prob_Asian", "prob_Black", "prob_White"]].sum(axis=1), 1.0, atol=1e-5)
    markdown = (run / "results/tables/race_detection.md").read_text()
    assert "| cxr-a resnet18 (seed 0) to cxr-b |" in markdown


def test_models_have_a_training_log_and_the_figures_are_drawn(run):
    log = pd.read_csv(run / "results/models/race_detection/cxr-a/resnet18/none/seed0/train_log.csv")
    assert list(log["epoch"]) == list(range(1, len(log) + 1)) and len(log) >= 1
    assert {"train_loss", "val_loss", "val_auc", "lr", "seconds", "images_per_second"} <= set(log.columns)
    for name in ("filter_auc.png", "filter_samples.png"):
        assert (run / "results/figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_counts_agree_with_manifest_and_quarantine(run):
    summary = pd.read_csv(run / "results/cxr-a/summary.csv")
    manifest = pd.read_parquet(run / "results/cxr-a/manifest.parquet")
    quarantine = pd.read_csv(run / "results/cxr-a/quarantine.csv")
    by = summary.set_index(["group", "value"])
    kept_files = private_csv(run, "cxr-a", "sources")["file_id"].nunique()
    assert by.loc[("files", "found"), "count"] == kept_files + len(quarantine)
    assert by.loc[("kept", "all"), "count"] == len(manifest)
    assert by.loc[("kept", "all"), "patients"] == manifest["patient_id"].nunique()
    excluded_patients = set(quarantine["patient_id"].dropna()) - set(manifest["patient_id"])
    assert len(excluded_patients) > 0
    assert by.loc[("files", "found"), "patients"] == manifest["patient_id"].nunique() + len(excluded_patients)
    for race, count in manifest["race"].value_counts().items():
        assert by.loc[("race", race), "count"] == count
    excluded = summary[summary["value"].str.startswith("excluded: ")]
    assert len(excluded) > 0 and (excluded["patients"] > 0).all()  # excluded patients are counted
    assert summary.loc[summary["group"] == "quarantine", "count"].sum() == len(quarantine)


def test_report_is_self_contained_with_tables_figures_captions_and_the_config(run, report):
    html, items = report
    assert not re.search(r"""<(script|img|link)[^>]+(src|href)=["']https?://""", html)  # nothing fetched
    assert set(items) == {
        "results/config.yaml", "results/tables/race_detection.csv",
        "results/figures/filter_auc.png", "results/figures/filter_samples.png",
    }
    payloads = {}
    for path, item in items.items():
        payloads[path] = embedded(item)
        assert payloads[path] == (run / path).read_bytes(), path
        caption = (REPO / "workflow/report" / f"{Path(path).stem}.rst").read_text().split()[:4]
        assert " ".join(caption) in " ".join(item["caption"].split()), path
    config = yaml.safe_load(payloads["results/config.yaml"])
    assert config["experiments"][1]["perturbations"] == ["lpf-d2"]
    assert config["training"]["epochs"] == TINY["training"]["epochs"]
    assert config["pseudonym_salt"] == "<redacted>"
    assert TINY["pseudonym_salt"] not in html
    assert not any(TINY["pseudonym_salt"].encode() in payload for payload in payloads.values())


def test_every_dataset_has_a_descriptor_of_its_manifest_and_cache(run):
    from readrace.data.cache import cache_digest, descriptor_cache_path, read_descriptor

    for name, dataset in TINY["datasets"].items():
        path = run / f"results/{name}/dataset.json"
        descriptor = read_descriptor(path)
        manifest = pd.read_parquet(run / f"results/{name}/manifest.parquet")
        size = dataset["preprocess"]["size"]
        assert descriptor["modality"] == dataset["modality"]
        assert (descriptor["n_images"], descriptor["n_patients"]) == (len(manifest), manifest["patient_id"].nunique())
        assert descriptor["cache"]["shape"] == [len(manifest), size, size] and descriptor["cache"]["dtype"] == "float16"
        assert descriptor["cache"]["sha256"] == cache_digest(descriptor_cache_path(path, descriptor))
        assert descriptor["units"] == {"patient": "patient", "study": "study"}


def test_a_changed_cohort_retrains_its_model_instead_of_reusing_the_old_one(run, tmp_path):
    """The defect: after a finished run, a strength-0 control restored the signal model from
    its finished checkpoint (same rows, splits and labels) and reported validation AUC 1.0."""
    changed = tmp_path / "changed"
    shutil.copytree(run, changed, symlinks=True)  # copy2 keeps the mtimes: nothing else is stale
    config = _tiny_copy()
    config["datasets"]["cxr-a"]["options"]["signal"] = {"strength": 0.0}
    configfile = changed / "no-signal.yaml"
    configfile.write_text(yaml.safe_dump(config))
    log = "results/models/race_detection/cxr-a/resnet18/none/seed0/train_log.csv"
    result = run_snakemake(changed, "--cores", "2", log, configfile=configfile)
    assert result.returncode == 0, result.stderr[-4000:]
    before, after = pd.read_csv(run / log), pd.read_csv(changed / log)
    print(f"validation AUC by epoch: signal {before['val_auc'].round(3).tolist()}, "
          f"no signal {after['val_auc'].round(3).tolist()}")
    assert before["val_auc"].max() > 0.9
    assert not after["val_auc"].equals(before["val_auc"])
    assert after["val_auc"].mean() < 0.7
