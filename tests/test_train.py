"""readrace.transforms.augment and readrace.training.engine: augmentation, training, resumption, prediction.

Training runs are tiny (32x32 images, resnet18, CPU, 1-3 epochs) and shared through
module-scoped fixtures, so the file trains only a handful of times.
"""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from readrace.transforms.augment import RandomAffine
from readrace.training.engine import (
    CHECKPOINT_FILE,
    LOG_COLUMNS,
    LOG_FILE,
    MODEL_FILE,
    TrainConfig,
    _RowsDataset,
    fit,
    load_model,
    macro_auc,
    predict,
)

# Columns of train_log.csv that are functions of the seed (the others are wall-clock times).
DETERMINISTIC_COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc", "lr"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the runs compared bit for bit then do not depend on the core
    count, and tiny models on shared cores run faster than with spinning thread pools."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# Augmentation


def test_augment_with_no_rotation_zoom_or_flip_is_the_identity():
    x = torch.rand(3, 1, 20, 28, generator=torch.Generator().manual_seed(0))
    out = RandomAffine(degrees=0, scale=(1, 1), hflip=0)(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, x, rtol=0, atol=1e-5)


def test_augment_flip_equals_torch_flip():
    x = torch.rand(3, 1, 20, 28, generator=torch.Generator().manual_seed(0))
    out = RandomAffine(degrees=0, scale=(1, 1), hflip=1.0)(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, torch.flip(x, dims=[-1]), rtol=0, atol=1e-5)


def test_augment_zoom_of_a_ramp_has_the_known_slope():
    # x[..., j] = j; a zoom by 2 about the centre c samples the input at c + (j - c) / 2,
    # and bilinear interpolation of a linear ramp is exact.
    h, w = 8, 16
    ramp = torch.arange(w, dtype=torch.float32).expand(2, 1, h, w).contiguous()
    out = RandomAffine(degrees=0, scale=(2, 2), hflip=0)(ramp)
    c = (w - 1) / 2
    expected = c + (torch.arange(w, dtype=torch.float32) - c) / 2
    torch.testing.assert_close(out, expected.expand(2, 1, h, w), rtol=0, atol=1e-4)


def test_augment_matrices_are_rotations_and_zooms_within_range_in_pixel_units():
    h, w = 20, 40
    augment = RandomAffine(degrees=10, scale=(0.9, 1.1), hflip=0.5)
    theta = augment.matrices(256, h, w, generator=torch.Generator().manual_seed(3))
    d = torch.diag(torch.tensor([w / 2, h / 2], dtype=torch.float64))
    m = d @ theta[:, :, :2] @ torch.linalg.inv(d)  # back to pixel units
    zoom = 1 / torch.linalg.det(m).abs().sqrt()
    flip = torch.sign(torch.linalg.det(m))  # -1 for a flipped image
    # A scaled rotation (times a flip) satisfies m^T m = I / zoom^2: no shear on a 2:1 image.
    gram = m.transpose(1, 2) @ m * zoom[:, None, None] ** 2
    torch.testing.assert_close(gram, torch.eye(2, dtype=torch.float64).expand(256, 2, 2))
    unflipped = m @ torch.diag_embed(torch.stack([flip, torch.ones_like(flip)], dim=1))
    angle = torch.rad2deg(torch.atan2(unflipped[:, 1, 0], unflipped[:, 0, 0]))
    assert angle.abs().max() <= 10 and angle.abs().max() > 9
    assert zoom.min() >= 0.9 - 1e-9 and zoom.max() <= 1.1 + 1e-9
    assert 0.35 < (flip < 0).double().mean() < 0.65
    assert torch.equal(theta[:, :, 2], torch.zeros(256, 2, dtype=torch.float64))


def test_augment_same_seed_same_output():
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    augment = RandomAffine()
    a = augment(x, generator=torch.Generator().manual_seed(5))
    b = augment(x, generator=torch.Generator().manual_seed(5))
    c = augment(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


# --------------------------------------------------------------------------------------------
# Metric helper


def test_macro_auc_known_answer():
    y = np.array([0, 0, 1, 1, 2, 2])
    scores = np.array([
        # column 0 ranks class 0 first (AUC 1), column 1 ranks class 1 last (AUC 0),
        # column 2 ties everything (AUC 0.5)
        [0.9, 0.5, 0.2],
        [0.8, 0.6, 0.2],
        [0.1, 0.1, 0.2],
        [0.1, 0.2, 0.2],
        [0.1, 0.3, 0.2],
        [0.1, 0.4, 0.2],
    ])
    assert macro_auc(y, scores) == pytest.approx((1 + 0 + 0.5) / 3)
    # A class absent from the labels (here 1) has no AUC and leaves the mean.
    assert macro_auc(np.array([0, 0, 2, 2, 2, 2]), scores) == pytest.approx((1 + 0.5) / 2)


# --------------------------------------------------------------------------------------------
# Training


def planted_images(n: int, size: int = 32, amplitude: float = 0.06, noise: float = 0.1,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy grey images; class 1 carries a faint central disk (amplitude << noise)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disk = (yy**2 + xx**2 < (size / 4) ** 2).astype(np.float64)
    images = 0.5 + noise * rng.standard_normal((n, size, size)) + amplitude * labels[:, None, None] * disk
    return np.clip(images, 0, 1).astype(np.float16), labels


def faint_noise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random perturbation, so that resumption must restore the perturbation generator."""
    return x + 0.01 * torch.randn(x.shape, generator=generator, device=x.device)


TRAIN, VAL, TEST = np.arange(96), np.arange(96, 128), np.arange(128, 176)
CONFIG = TrainConfig(arch="resnet18", n_classes=2, epochs=2, batch_size=32, lr=1e-3, seed=0,
                     device="cpu", augment=True)


@pytest.fixture(scope="module")
def data():
    return planted_images(176)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    images, labels = data
    out = tmp_path_factory.mktemp("uninterrupted")
    result = fit(images, labels, TRAIN, VAL, CONFIG, out, perturbation=faint_noise, progress=False)
    return result, out


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_same_tensors(a, b, where=""):
    """torch.equal on every tensor of two nested structures of dicts, lists and tensors."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_tensors(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}/{i}")
    else:
        assert a == b or (a != a and b != b), where  # NaN-safe


def test_learns_a_planted_signal(data, uninterrupted):
    images, labels = data
    result, out = uninterrupted
    assert result.finished and not result.stopped_early and result.epochs_completed == 2
    assert result.log["val_auc"].max() > 0.9
    assert result.best_val_auc == result.log["val_auc"].max()
    probs = predict(result.model, images, TEST, perturbation=faint_noise, device="cpu")
    assert probs.shape == (len(TEST), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert macro_auc(labels[TEST], probs) > 0.9
    # model.pt holds the same best weights and its config.
    model, meta = load_model(out / MODEL_FILE)
    assert meta["arch"] == "resnet18" and meta["n_classes"] == 2 and meta["config"]["epochs"] == 2
    assert meta["best_epoch"] == result.best_epoch
    np.testing.assert_array_equal(predict(model, images, TEST, perturbation=faint_noise, device="cpu"), probs)


def test_predict_keeps_the_order_of_idx(data, uninterrupted):
    images, _ = data
    result, _ = uninterrupted
    idx = np.array([150, 3, 100, 3, 77])  # unsorted, with a repeat, across batches of 2
    probs = predict(result.model, images, idx, batch_size=2, device="cpu")
    single = np.concatenate([predict(result.model, images, [i], device="cpu") for i in idx])
    np.testing.assert_allclose(probs, single, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(probs[1], probs[3])


def test_log_has_one_row_per_epoch(uninterrupted):
    _, out = uninterrupted
    log = pd.read_csv(out / LOG_FILE)
    assert list(log.columns) == list(LOG_COLUMNS)
    assert log["epoch"].tolist() == [1, 2]
    # Cosine schedule over 2 epochs: full rate, then half of it.
    np.testing.assert_allclose(log["lr"], [1e-3, 5e-4])
    assert (log["images_per_second"] > 0).all()


def test_resumed_run_ends_identical_to_uninterrupted_run(data, uninterrupted, tmp_path):
    images, labels = data
    _, reference = uninterrupted
    killed = fit(images, labels, TRAIN, VAL, CONFIG, tmp_path, perturbation=faint_noise,
                 stop_after_epochs=1, progress=False)
    assert not killed.finished and killed.epochs_completed == 1
    assert pd.read_csv(tmp_path / LOG_FILE)["epoch"].tolist() == [1]

    resumed = fit(images, labels, TRAIN, VAL, CONFIG, tmp_path, perturbation=faint_noise, progress=False)
    assert resumed.finished and resumed.epochs_completed == 2

    ours = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)
    theirs = torch.load(reference / CHECKPOINT_FILE, weights_only=False)
    for key in ("model", "optimizer", "scheduler", "best_model", "epoch", "best_epoch",
                "best_val_auc", "bad_epochs", "finished"):
        _assert_same_tensors(ours[key], theirs[key], key)
    for key in ("torch", "shuffle", "augment", "perturb"):
        assert torch.equal(ours["rng"][key], theirs["rng"][key]), key
    _assert_same_tensors(torch.load(tmp_path / MODEL_FILE)["state_dict"],
                         torch.load(reference / MODEL_FILE)["state_dict"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / LOG_FILE)[DETERMINISTIC_COLUMNS],
                                  pd.read_csv(reference / LOG_FILE)[DETERMINISTIC_COLUMNS])

    # A resume under another config is refused rather than mixed into this run.
    with pytest.raises(ValueError, match="lr"):
        fit(images, labels, TRAIN, VAL, TrainConfig(**{**vars(CONFIG), "lr": 1e-2}), tmp_path,
            progress=False)


def test_fit_on_a_finished_run_trains_no_more(data, uninterrupted):
    images, labels = data
    first, out = uninterrupted
    before = {name: _digest(out / name) for name in (CHECKPOINT_FILE, MODEL_FILE, LOG_FILE)}
    again = fit(images, labels, TRAIN, VAL, CONFIG, out, perturbation=faint_noise, progress=False)
    assert {name: _digest(out / name) for name in before} == before
    assert again.finished and again.epochs_completed == 2 and again.best_epoch == first.best_epoch
    _assert_same_tensors(again.model.state_dict(), first.model.state_dict())
    pd.testing.assert_frame_equal(again.log, first.log)


def test_a_finished_run_restores_the_outputs_snakemake_deleted(data, uninterrupted, tmp_path):
    """A forced rerun or a retry finds checkpoint.pt finished and model.pt, train_log.csv gone."""
    images, labels = data
    _, reference = uninterrupted
    (tmp_path / CHECKPOINT_FILE).write_bytes((reference / CHECKPOINT_FILE).read_bytes())
    result = fit(images, labels, TRAIN, VAL, CONFIG, tmp_path, perturbation=faint_noise, progress=False)
    assert result.finished and result.epochs_completed == 2
    _assert_same_tensors(torch.load(tmp_path / MODEL_FILE)["state_dict"],
                         torch.load(reference / MODEL_FILE)["state_dict"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / LOG_FILE), pd.read_csv(reference / LOG_FILE))


def test_no_signal_when_labels_are_shuffled_and_early_stopping(data, tmp_path):
    images, labels = data
    shuffled = np.random.default_rng(1).permutation(labels)
    config = TrainConfig(**{**vars(CONFIG), "patience": 1})
    result = fit(images, shuffled, TRAIN, VAL, config, tmp_path, progress=False)
    probs = predict(result.model, images, TEST, device="cpu")
    assert macro_auc(shuffled[TEST], probs) < 0.7
    # Early stopping: the best epoch is the first maximum of val_auc, and the run ended
    # after `patience` epochs without improvement or at the last epoch.
    aucs = result.log["val_auc"].tolist()
    assert result.best_epoch == int(np.argmax(aucs)) + 1
    assert len(aucs) == min(config.epochs, result.best_epoch + config.patience)
    assert result.stopped_early == (len(aucs) < config.epochs)


def test_same_seed_same_weights_whichever_data_path(tmp_path):
    """Same seed, same weights: preloaded, memmap read in-process, memmap read by workers."""
    images, labels = planted_images(64, seed=3)
    path = tmp_path / "cache.npy"
    np.save(path, images)
    memmap = np.load(path, mmap_mode="r")
    base = {**vars(CONFIG), "epochs": 1}
    runs = {
        "preloaded": (images, TrainConfig(**base)),
        "memmap": (memmap, TrainConfig(**{**base, "preload_max_gb": 0})),
        "workers": (memmap, TrainConfig(**{**base, "preload_max_gb": 0, "num_workers": 2})),
    }
    states = {}
    for name, (array, config) in runs.items():
        out = tmp_path / name
        fit(array, labels, np.arange(48), np.arange(48, 64), config, out, progress=False)
        states[name] = torch.load(out / MODEL_FILE)["state_dict"]
    for name in runs:
        _assert_same_tensors(states[name], states["preloaded"], name)


def test_memmap_pickles_as_its_file_not_its_pixels(tmp_path):
    # What DataLoader workers started by spawn or forkserver receive.
    path = tmp_path / "cache.npy"
    np.save(path, np.arange(4 * 64 * 64, dtype=np.float16).reshape(4, 64, 64))
    dataset = _RowsDataset(np.load(path, mmap_mode="r"))
    blob = pickle.dumps(dataset)
    assert len(blob) < 1000  # the pixels alone are 32 kB
    copy = pickle.loads(blob)
    assert isinstance(copy.images, np.memmap)
    assert torch.equal(copy[np.array([1, 3])], dataset[np.array([1, 3])])


def test_config_rejects_unknown_architecture():
    with pytest.raises(ValueError, match="resnet18"):
        TrainConfig(arch="alexnet")
