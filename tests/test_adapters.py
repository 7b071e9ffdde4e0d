"""Adapters: the file listing (tree or file list) and the study table of the synthetic cohort."""

from __future__ import annotations

import pytest

from readrace.data.pseudonym import pseudonymize
from readrace.ingest.adapters import DatasetError, make_adapter
from readrace.ingest.listing import list_files, shard_of
from readrace.synthetic import CohortSpec, generate_cohort


@pytest.fixture(scope="module")
def ct_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ct")
    generate_cohort(CohortSpec("ct", n_patients=6, seed=2), root, progress=False)
    return root


def test_tree_listing_finds_every_file_including_non_dicom(ct_root):
    files = make_adapter("synthetic", ct_root, {}).files()
    on_disk = sorted(str(p.relative_to(ct_root)) for p in (ct_root / "dicom").rglob("*") if p.is_file())
    assert files == on_disk
    assert any(not f.endswith(".dcm") for f in files)  # the stray text file is listed too


def test_file_list_option_selects_files_relative_or_absolute(ct_root, tmp_path):
    every = make_adapter("synthetic", ct_root, {}).files()
    listing = tmp_path / "files.txt"
    listing.write_text(f"# a comment\n{every[0]}\n\n{ct_root / every[5]}\n")
    assert make_adapter("synthetic", ct_root, {"file_list": str(listing)}).files() == [every[0], every[5]]


@pytest.mark.parametrize(
    ("content", "message"),
    [("/elsewhere/x.dcm\n", "is not under the dataset root"), ("a.dcm\na.dcm\n", "listed twice")],
)
def test_bad_file_list_names_the_file_and_problem(ct_root, tmp_path, content, message):
    listing = tmp_path / "files.txt"
    listing.write_text(content)
    with pytest.raises(DatasetError, match=message):
        make_adapter("synthetic", ct_root, {"file_list": str(listing)}).files()
    with pytest.raises(DatasetError, match="does not exist"):
        make_adapter("synthetic", ct_root, {"file_list": str(tmp_path / "missing.txt")}).files()


def test_mis_pointed_root_and_missing_table_are_named(tmp_path):
    with pytest.raises(DatasetError, match="is not a folder"):
        make_adapter("synthetic", tmp_path / "nowhere", {})
    with pytest.raises(DatasetError, match="missing table .*patients.csv"):
        make_adapter("synthetic", tmp_path, {}).study_table()
    with pytest.raises(DatasetError, match="unknown adapter 'mimic'"):
        make_adapter("mimic", tmp_path, {})


def test_ct_series_stay_in_one_shard_and_shards_are_stable(ct_root):
    files = list_files(make_adapter("synthetic", ct_root, {}), "ct", 3, "salt-for-tests")
    assert files["file_id"].tolist() == [pseudonymize(p, "salt-for-tests", "file") for p in files["path"]]
    folders = files.assign(folder=files["path"].str.rsplit("/", n=1).str[0])
    assert folders.groupby("folder")["shard"].nunique().max() == 1
    assert files["shard"].nunique() > 1
    assert shard_of("dicom/p00001/s01/se01", 3) == shard_of("dicom/p00001/s01/se01", 3)


def test_study_table_has_demographics_for_every_study(ct_root):
    table = make_adapter("synthetic", ct_root, {}).study_table()
    assert {"patient_key", "study_key", "race", "ethnicity", "sex", "age", "bmi"} <= set(table.columns)
    assert table[["patient_key", "study_key"]].duplicated().sum() == 0
    assert table["race"].notna().all()
