"""Unit tests of readrace.segmentation and the segmentation kind (no Snakemake)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from readrace.evaluation.metrics import bootstrap_mean
from readrace.experiments import check_experiments, expand_experiments, segmentation
from readrace.ingest.adapters.synthetic import SyntheticAdapter
from readrace.ingest.preprocess import resize_square, window_hu
from readrace.segmentation.figures import plot_mask_overlays, sample_rows
from readrace.segmentation.ct import ct_lung_masks, hounsfield, lung_volume
from readrace.segmentation.masks import MISSING, MaskError, check_masks, has_mask, missing_rows, to_grid
from readrace.segmentation.quality import count_lungs, hd95, implausible_masks, mask_quality
from readrace.segmentation.truth import truth_masks
from readrace.segmentation.unet import (
    SegmentationObjective,
    UNetBuilder,
    dice_scores,
    keep_largest,
    predict_masks,
    train_unet,
    training_data,
)
from readrace.synthetic import anatomy
from readrace.synthetic.cohort import generate_cohort
from readrace.synthetic.spec import CohortSpec

EXECUTION = {"device": "cpu", "preload_max_gb": 1.0}


def two_lungs(size: int = 32, shift: int = 0) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[6:26, 4 + shift:13 + shift] = 1
    mask[6:26, 19 + shift:28 + shift] = 1
    return mask


# ------------------------------------------------------------------------------ masks


def test_to_grid_keeps_the_images_geometry():
    native = np.zeros((200, 100), np.uint8)
    native[50:150, 25:75] = 7  # any nonzero value is lung
    grid = to_grid(native, 20)
    assert grid.dtype == np.uint8 and set(np.unique(grid)) == {0, 1}
    # The whole field resized to the square grid: rows 5-15 of 20, columns 5-15 of 20.
    assert grid[5:15, 5:15].all() and grid.sum() == 100
    image = resize_square(native[None].astype(np.float32), 20)[0]
    assert np.array_equal(grid, (image >= 3.5).astype(np.uint8))
    with pytest.raises(MaskError, match="2-D"):
        to_grid(np.zeros((2, 4, 4)), 4)


def test_missing_rows_are_flagged_and_checked_whole():
    masks = np.concatenate([two_lungs()[None], missing_rows(1, 32)])
    assert has_mask(masks).tolist() == [True, False]
    images = np.zeros(masks.shape, np.float16)
    check_masks(masks, images, "truth.npy", truth=True)
    with pytest.raises(MaskError, match="0 or 1"):
        check_masks(masks, images, "masks.npy")
    masks[1, 0, 0] = 0
    with pytest.raises(MaskError, match="row 1 is partly"):
        check_masks(masks, images, "truth.npy", truth=True)
    with pytest.raises(MaskError, match="shape"):
        check_masks(masks[:1], images, "masks.npy")


def test_synthetic_adapter_and_truth_masks_carry_the_cohort_masks(tmp_path):
    truth = generate_cohort(CohortSpec("cxr", n_patients=4, seed=3), tmp_path / "cohort", progress=False)
    adapter = SyntheticAdapter(tmp_path / "cohort", {})
    images = truth[truth["kind"] == "image"]
    path, uid = images["path"].iloc[0], images["SOPInstanceUID"].iloc[0]
    native = adapter.lung_mask(path)
    assert np.array_equal(native, np.load(tmp_path / f"cohort/masks/{uid}.npy"))
    broken = truth.loc[truth["kind"] != "image", "path"].iloc[0]
    assert adapter.lung_mask(broken) is None
    sources = pd.DataFrame({"path": [path, broken], "frame": [0, 0]})
    masks = truth_masks(adapter, sources, 16, tmp_path / "truth.npy")
    assert np.array_equal(np.load(tmp_path / "truth.npy"), masks)
    assert np.array_equal(masks[0], to_grid(native, 16)) and not has_mask(masks[1:]).any()


# ------------------------------------------------------------------------------ CT


def test_hounsfield_inverts_the_cache_window():
    hu = np.array([-1000.0, -400.0, 0.0])
    window = {"center": -600, "width": 1500}
    assert np.allclose(hounsfield(window_hu(hu, **window), window), hu, atol=1e-3)


def test_ct_lungs_from_hounsfield_units_match_the_phantom():
    volume, truth = anatomy.chest_ct((64, 64), 6.0, 12, bmi=25.0, sex="F", rng=np.random.default_rng(0))
    masks = lung_volume(volume)
    assert dice_scores(masks.reshape(1, -1), truth.reshape(1, -1))[0] > 0.9
    # Through the windowed cache, series by series, slices in any cache order.
    window = {"center": -600, "width": 1500}
    order = np.random.default_rng(1).permutation(12)
    cache = window_hu(volume, **window)[order]
    manifest = pd.DataFrame({"series_id": "s", "slice_index": order, "cache_index": np.arange(12)})
    settings = dict(segmentation.DEFAULT_HU)
    masks = ct_lung_masks(manifest, cache, window, settings)
    assert np.array_equal(masks, lung_volume(volume, **settings)[order])
    with pytest.raises(MaskError, match="outside the cache window"):
        ct_lung_masks(manifest, cache, window, {**settings, "threshold_hu": -1500})
    # Outside air is removed: a threshold below every tissue finds nothing.
    assert lung_volume(volume, threshold_hu=-1100).sum() == 0


def test_lungmask_reads_its_weights_from_a_local_file_only(tmp_path, monkeypatch):
    """lungmask's own architecture, randomly initialised (no network), saved as a weights
    file: the method's masks have the cache's shape and dtype and follow its rows; a missing
    file or package is a config error naming the key."""
    pytest.importorskip("lungmask", reason="the lungmask extra is not installed")
    from lungmask.resunet import UNet as LungmaskUNet

    from readrace.segmentation import lungmask as lungmask_module
    from readrace.segmentation.lungmask import lungmask_masks

    torch.manual_seed(0)
    network = LungmaskUNet(n_classes=3, padding=True, depth=5, up_mode="upsample", batch_norm=True, residual=False)
    weights = tmp_path / "r231-random.pth"
    torch.save(network.state_dict(), weights)
    volume, _ = anatomy.chest_ct((32, 32), 6.0, 4, bmi=25.0, sex="F", rng=np.random.default_rng(0))
    window = {"center": -600, "width": 1500}
    order = np.random.default_rng(1).permutation(8)  # two series of 4 slices, rows shuffled
    series = np.concatenate([volume, volume[::-1]])
    cache = window_hu(series, **window)[order]
    manifest = pd.DataFrame({"series_id": np.where(order < 4, "a", "b"), "slice_index": order % 4,
                             "cache_index": np.arange(8)})
    settings = {**segmentation.DEFAULT_LUNGMASK, "weights": str(weights)}
    # The real network on two slices of one series (each slice costs a 256-px forward pass).
    masks = lungmask_masks(manifest[(manifest["series_id"] == "a") & (manifest["slice_index"] < 2)], cache, window,
                           settings)
    assert masks.shape == cache.shape and masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1}
    # Row for row: each series reaches lungmask as its HU volume in slice order, and each
    # cache row gets its own slice's mask back. (A randomly initialised network finds no
    # lungs, so the order is checked with an inferer that marks the first slice it is given
    # and whose HU it is.)
    class FirstSlice:
        def apply(self, hu: np.ndarray) -> np.ndarray:
            out = np.zeros(hu.shape, np.uint8)
            out[0] = 2 * (hu[0] < -400)
            return out

    monkeypatch.setattr(lungmask_module, "inferer", lambda settings, device="cpu": FirstSlice())
    aligned = lungmask_masks(manifest, cache, window, settings)
    first = (manifest["slice_index"] == 0).to_numpy()
    assert np.array_equal(aligned[first], (hounsfield(cache[first], window) < -400).astype(np.uint8))
    assert aligned[first].any() and not aligned[~first].any()
    monkeypatch.undo()
    # The key and the path are named when the file is missing.
    config = config_with({"kind": "segmentation", "ct": ["c"], "ct_method": "lungmask",
                          "lungmask": {"weights": str(tmp_path / "absent.pth")}})
    assert check_experiments(config) == [f"experiments.0.lungmask.weights: lungmask weights file "
                                         f"{tmp_path / 'absent.pth'} does not exist (readrace reads lungmask's "
                                         f"weights from this local file only, never from the network)"]
    config["experiments"][0]["lungmask"]["weights"] = str(weights)
    assert check_experiments(config) == []
    assert segmentation.mask_sources(config)["c"].model.path == "segmentation/c/lungmask/seed0"
    with pytest.raises(MaskError, match="absent.pth does not exist"):
        lungmask_masks(manifest, cache, window, {**settings, "weights": str(tmp_path / "absent.pth")})


# ------------------------------------------------------------------------------ quality


def test_dice_and_hd95_know_their_answers():
    truth = np.stack([two_lungs(), two_lungs(), np.zeros((32, 32), np.uint8)])
    shifted = np.stack([two_lungs(), two_lungs(shift=2), np.zeros((32, 32), np.uint8)])
    dice = dice_scores(shifted, truth)
    assert dice[0] == 1.0 and dice[2] == 1.0  # both empty: nothing to find, nothing found
    assert dice[1] == pytest.approx(2 * 2 * 20 * 7 / (2 * 2 * 20 * 9))
    distances = hd95(shifted, truth)
    assert distances[0] == 0.0 and distances[1] == pytest.approx(2.0) and np.isnan(distances[2])


def test_bootstrap_mean_resamples_patients():
    values = np.array([1.0, 1.0, 1.0, 0.0, np.nan])
    patients = np.array(["a", "a", "a", "b", "c"])
    stats = bootstrap_mean(values, patients, n_boot=500, seed=0)
    assert stats["value"] == 0.75 and stats["n_images"] == 4 and stats["n_patients"] == 2
    # Two patients: a resample holds a only, b only or both (mean 0.75).
    assert stats["ci_low"] == 0.0 and stats["ci_high"] == 1.0
    assert bootstrap_mean(values, patients, n_boot=500, seed=0) == stats
    constant = bootstrap_mean(np.full(6, 0.9), np.arange(6), n_boot=100)
    assert constant["ci_low"] == pytest.approx(0.9) and constant["ci_high"] == pytest.approx(0.9)


def test_implausible_masks_rules():
    masks = np.stack([two_lungs(), two_lungs(), two_lungs(), np.zeros((32, 32), np.uint8), two_lungs()])
    masks[1, :, 16:] = 0  # one lung
    masks[2, 2:30, 2:30] = 1  # a huge blob
    manifest = pd.DataFrame({"image_id": list("abcde"), "patient_id": list("ppqqr"), "series_id": list("abcde"),
                             "slice_index": None, "split": "test", "cache_index": np.arange(5)})
    quality = mask_quality(manifest, masks, None, False, 0.05)
    assert quality["lungs"].tolist() == [2, 1, 1, 0, 2] and not quality["scored"].any()
    found = implausible_masks("d", "unet", "cxr", quality, masks, manifest, dict(segmentation.DEFAULT_QUALITY))
    reasons = found.groupby("id")["reason"].apply(sorted).to_dict()
    assert reasons == {"b": ["one lung"], "c": ["area", "one lung"], "d": ["empty"]}


def test_mask_quality_scores_only_the_held_out_rows_with_truth():
    masks = np.stack([two_lungs()] * 3)
    truth = np.stack([two_lungs(), two_lungs(shift=1), MISSING * np.ones((32, 32), np.uint8)])
    manifest = pd.DataFrame({"image_id": list("abc"), "patient_id": list("abc"), "series_id": list("abc"),
                             "slice_index": None, "split": ["train", "test", "test"], "cache_index": [0, 1, 2]})
    quality = mask_quality(manifest, masks, truth, True, 0.05)
    assert quality["scored"].tolist() == [False, True, False]
    assert quality["dice"].iloc[1] < 1.0 and quality["dice"].isna().tolist() == [True, False, True]
    assert count_lungs(two_lungs(), 0.05) == 2


# ------------------------------------------------------------------------------ U-Net


def test_keep_largest_removes_islands_and_fills_holes():
    mask = two_lungs()
    mask[0, 0] = 1
    mask[10, 7] = 0
    kept = keep_largest(mask, 2)
    assert kept[0, 0] == 0 and kept[10, 7] == 1 and count_lungs(kept, 0.05) == 2


def test_the_objective_refuses_rows_without_truth_and_scores_dice():
    objective = SegmentationObjective()
    masks = np.stack([two_lungs(), missing_rows(1, 32)[0]])
    assert objective.targets(masks, 2, np.array([0])).dtype == np.uint8
    with pytest.raises(MaskError, match="no ground-truth mask"):
        objective.targets(masks, 2, np.array([0, 1]))
    logits = torch.from_numpy(np.stack([1 - two_lungs(), two_lungs()])[None].astype(np.float32)) * 10
    assert objective.score(masks[:1], objective.probabilities(logits).numpy()) == 1.0
    assert objective.loss(logits, torch.from_numpy(masks[:1])).item() < 0.1


def test_unet_training_is_reproducible_and_learns(tmp_path):
    rng = np.random.default_rng(0)
    masks = np.stack([two_lungs(shift=int(s)) for s in rng.integers(-2, 3, 12)])
    images = (0.8 - 0.5 * masks + 0.05 * rng.standard_normal(masks.shape)).astype(np.float16)
    manifest = pd.DataFrame({"split": ["train"] * 8 + ["validation"] * 4, "cache_index": np.arange(12)})
    data = training_data([("toy", manifest, images, masks)])
    settings = {**segmentation.DEFAULT_UNET, "channels": [4, 8], "strides": [2], "epochs": 8, "batch_size": 4,
                "lr": 0.01, "patience": 8}
    first = train_unet(data, settings, 0, EXECUTION, tmp_path / "a", ["digest"], progress=False)
    second = train_unet(data, settings, 0, EXECUTION, tmp_path / "b", ["digest"], progress=False)
    assert first.log["train_loss"].tolist() == second.log["train_loss"].tolist()
    assert first.best_val_auc > 0.9  # the engine's score column holds the validation Dice
    predicted = predict_masks(tmp_path / "a/model.pt", images, settings, device="cpu")
    assert predicted.dtype == np.uint8 and dice_scores(predicted, masks).mean() > 0.9
    # The control, that the workflow test's Dice >= 0.9 can fail: a U-Net that has not learnt
    # (one epoch at a vanishing learning rate), without the clean-up that would tidy its noise.
    untrained = {**settings, "epochs": 1, "lr": 1.0e-7, "largest_components": 0}
    train_unet(data, untrained, 0, EXECUTION, tmp_path / "c", ["digest"], progress=False)
    control = predict_masks(tmp_path / "c/model.pt", images, untrained, device="cpu")
    assert dice_scores(control, masks).mean() < 0.8
    assert UNetBuilder((4, 8), (2,), 1).id == "monai-unet-c4-8-s2-r1"


# ------------------------------------------------------------------------------ the kind


def config_with(*blocks: dict) -> dict:
    dataset = {"adapter": "synthetic", "preprocess": {"size": 64}, "split": {"train": 0.6, "validation": 0.1, "test": 0.3}}
    return {
        "experiments": list(blocks),
        "datasets": {"a": {**dataset, "modality": "cxr"}, "b": {**dataset, "modality": "cxr"},
                     "c": {**dataset, "modality": "ct"}, "m": {**dataset, "modality": "mammo"}},
    }


def test_mask_sources_default_to_every_radiograph_dataset():
    config = config_with({"kind": "segmentation", "train": ["a"], "ct": ["c"]})
    sources = segmentation.mask_sources(config)
    assert sorted(sources) == ["a", "b", "c"]
    assert sources["a"].model.path == "segmentation/a/unet/seed0" and sources["a"].held_out
    assert sources["b"].model == sources["a"].model and not sources["b"].held_out
    assert sources["c"].model.path == "segmentation/c/hu/seed0"
    assert all(source.truth for source in sources.values())  # synthetic: ground truth everywhere
    assert segmentation.SegmentationModel.from_path("segmentation/a+b/unet/seed3").datasets == ["a", "b"]
    assert len(expand_experiments(config)["segmentation"]) == 2
    assert check_experiments(config) == []


def test_the_kind_names_what_is_wrong():
    config = config_with({"kind": "segmentation", "train": ["c", "x"], "ct": ["a"], "truth": ["m"]},
                         {"kind": "segmentation", "train": ["b"], "apply": ["b"]})
    problems = "\n".join(check_experiments(config))
    assert "experiments.0.train: 'c' is a ct dataset, not cxr" in problems
    assert "experiments.0.train: 'x' is not a dataset" in problems
    assert "experiments.0.ct: 'a' is a cxr dataset, not ct" in problems
    assert "experiments.0.truth: 'm' is not segmented by this block" in problems
    assert "experiments.1: 'b' is already segmented by experiments.0" in problems
    config["datasets"]["b"] = {**config["datasets"]["b"], "adapter": "generic", "options": {}}
    config["experiments"] = [{"kind": "segmentation", "train": ["b"]}]
    assert "experiments.0.train: 'b' has no ground-truth lung masks" in "\n".join(check_experiments(config))


def test_the_overlay_figure_draws_non_empty_masks(tmp_path):
    masks = np.stack([two_lungs(), np.zeros((32, 32), np.uint8), two_lungs(shift=1)])
    assert sample_rows(masks, 4, 0).tolist() == [0, 2]
    images = (0.8 - 0.5 * masks).astype(np.float16)
    plot_mask_overlays([("cxr", images, masks), ("ct", images, masks)], tmp_path / "masks.png", n_samples=3)
    assert (tmp_path / "masks.png").stat().st_size > 1000
