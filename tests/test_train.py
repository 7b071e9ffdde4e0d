"""readrace.transforms.augment and readrace.training: augmentation, training, the lifecycle of
its files, resumption, replaceable parts, prediction.

Training runs are tiny (32x32 images, resnet18, CPU, 1-2 epochs) and shared through
module-scoped fixtures, so the file trains only a handful of times.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import readrace.training.engine as engine
from readrace.training.batches import RowsDataset
from readrace.training.checkpoint import CHECKPOINT_FILE, LOG_FILE, MODEL_FILE, StaleCheckpointError, array_digest
from readrace.training.config import TrainConfig
from readrace.training.engine import LOG_COLUMNS, fit
from readrace.training.inference import load_model, predict
from readrace.training.parts import (
    MulticlassObjective,
    MultilabelObjective,
    ShuffledBatches,
    TrainingParts,
    macro_auc,
    mean_label_auc,
)
from readrace.transforms.augment import RandomAffine
from readrace.transforms.sample import Compose, ImageTransform, augmentation_transform

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


def test_mean_label_auc_known_answer():
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    scores = np.array([[0.9, 0.5], [0.8, 0.1], [0.2, 0.5], [0.1, 0.9]])
    # label 0 ranked perfectly (AUC 1); label 1: positives 0.1, 0.9 against 0.5, 0.5 (AUC 0.5)
    assert mean_label_auc(y, scores) == pytest.approx((1 + 0.5) / 2)
    # A label with one value only has no AUC and leaves the mean.
    assert mean_label_auc(np.array([[1, 1], [1, 1], [0, 1], [0, 1]]), scores) == pytest.approx(1.0)


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
CONFIG = TrainConfig(arch="resnet18", n_classes=2, epochs=2, batch_size=32, lr=1e-3, seed=0, device="cpu")
PERTURB = ImageTransform(faint_noise, stream="perturb", id="faint-noise")
# The paper's pipeline: the perturbation at training and evaluation, augmentation at training.
TRANSFORMS = dict(train_transform=Compose([PERTURB, augmentation_transform()]), eval_transform=PERTURB)
TASK = {"name": "disk", "type": "multiclass", "target": "disk", "classes": ["no", "yes"], "levels": ["image"]}


def run_fit(images, labels, out, config=CONFIG, train=TRAIN, val=VAL, **kwargs):
    """fit as a caller uses it: the data fingerprint is the digest of the pixels it reads."""
    kwargs = {**TRANSFORMS, "task": TASK, "progress": False, **kwargs}
    kwargs.setdefault("data_fingerprint", array_digest(images, np.concatenate([train, val])))
    return fit(images, labels, train, val, config, out, **kwargs)


@pytest.fixture(scope="module")
def data():
    return planted_images(176)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """A complete run, its directory as a job killed between committing the finished
    checkpoint and deleting it leaves it (so that its final state can be compared)."""
    images, labels = data
    out = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "_discard_checkpoint", lambda path: None)
        result = run_fit(images, labels, out)
    return result, out


@pytest.fixture(scope="module")
def killed(data, tmp_path_factory):
    """The directory of a run killed after its first epoch."""
    images, labels = data
    out = tmp_path_factory.mktemp("killed")
    result = run_fit(images, labels, out, stop_after_epochs=1)
    assert not result.finished and result.epochs_completed == 1 and (out / CHECKPOINT_FILE).exists()
    return out


def _copy_run(source, target):
    for name in (CHECKPOINT_FILE, MODEL_FILE, LOG_FILE):
        shutil.copy(source / name, target / name)


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


def _differ(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_learns_a_planted_signal(data, uninterrupted):
    images, labels = data
    result, out = uninterrupted
    assert result.finished and not result.stopped_early and result.epochs_completed == 2
    assert result.origin == "trained"
    assert result.log["val_auc"].max() > 0.9
    assert result.best_val_auc == result.log["val_auc"].max()
    probs = predict(result.model, images, TEST, transform=PERTURB, device="cpu")
    assert probs.shape == (len(TEST), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert macro_auc(labels[TEST], probs) > 0.9
    # model.pt holds the same best weights and its config.
    model, meta = load_model(out / MODEL_FILE)
    assert meta["arch"] == "resnet18" and meta["n_classes"] == 2 and meta["config"]["epochs"] == 2
    assert meta["best_epoch"] == result.best_epoch
    np.testing.assert_array_equal(predict(model, images, TEST, transform=PERTURB, device="cpu"), probs)


def test_model_file_records_what_the_model_is(data, uninterrupted):
    images, _ = data
    result, out = uninterrupted
    # weights_only: model.pt holds plain types only.
    saved = torch.load(out / MODEL_FILE, weights_only=True)
    assert saved["task"] == TASK
    assert saved["perturbation"] == "faint-noise"
    assert saved["train_transform"] == f"faint-noise+{RandomAffine()!r}"
    assert saved["fingerprint"] == result.fingerprint
    assert saved["data_fingerprint"] == array_digest(images, np.arange(128))
    assert saved["best_val_auc"] == result.best_val_auc and saved["best_epoch"] == result.best_epoch
    assert saved["config"]["lr"] == CONFIG.lr and saved["config"]["batch_size"] == CONFIG.batch_size
    assert saved["parts"] == {"model": "readrace.models.build_model", "objective": "multiclass",
                              "optimizer": "readrace.training.parts.adamw",
                              "scheduler": "readrace.training.parts.cosine_per_epoch",
                              "sampler": "shuffled-batches-32", "privacy": "none"}


def test_predict_keeps_the_order_of_rows(data, uninterrupted):
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


def test_resumed_run_ends_identical_to_uninterrupted_run(data, uninterrupted, killed, tmp_path):
    images, labels = data
    _, reference = uninterrupted
    _copy_run(killed, tmp_path)
    assert pd.read_csv(tmp_path / LOG_FILE)["epoch"].tolist() == [1]

    with pytest.MonkeyPatch.context() as patch:  # keep the final checkpoint, to compare it
        patch.setattr(engine, "_discard_checkpoint", lambda path: None)
        resumed = run_fit(images, labels, tmp_path)
    assert resumed.finished and resumed.epochs_completed == 2 and resumed.origin == "resumed"

    ours = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=False)
    theirs = torch.load(reference / CHECKPOINT_FILE, weights_only=False)
    for key in ("model", "optimizer", "scheduler", "best_model", "epoch", "best_epoch",
                "best_val_auc", "bad_epochs", "finished", "fingerprint"):
        _assert_same_tensors(ours[key], theirs[key], key)
    assert torch.equal(ours["rng"]["torch"], theirs["rng"]["torch"])
    assert set(ours["rng"]["streams"]) == {"shuffle", "augment", "perturb"}
    for key in ("shuffle", "augment", "perturb"):
        assert torch.equal(ours["rng"]["streams"][key], theirs["rng"]["streams"][key]), key
    _assert_same_tensors(torch.load(tmp_path / MODEL_FILE)["state_dict"],
                         torch.load(reference / MODEL_FILE)["state_dict"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / LOG_FILE)[DETERMINISTIC_COLUMNS],
                                  pd.read_csv(reference / LOG_FILE)[DETERMINISTIC_COLUMNS])

    # A resume under another config is refused rather than mixed into this run.
    with pytest.raises(StaleCheckpointError, match="lr"):
        run_fit(images, labels, tmp_path, config=TrainConfig(**{**vars(CONFIG), "lr": 1e-2}))


def test_a_finished_run_leaves_no_checkpoint_and_a_rerun_trains_afresh(data, uninterrupted, tmp_path):
    """snakemake --forcerun, or a rerun because an input changed, must retrain."""
    images, labels = data
    first_reference, _ = uninterrupted
    first = run_fit(images, labels, tmp_path)
    assert first.finished and first.origin == "trained"
    assert not (tmp_path / CHECKPOINT_FILE).exists()
    assert (tmp_path / MODEL_FILE).exists() and (tmp_path / LOG_FILE).exists()
    stale_log = _digest(tmp_path / LOG_FILE)

    again = run_fit(images, labels, tmp_path)
    assert again.origin == "trained"
    assert _digest(tmp_path / LOG_FILE) != stale_log  # rewritten with this run's timings
    assert not (tmp_path / CHECKPOINT_FILE).exists()
    # Training is deterministic on CPU: the rerun reproduces the run.
    assert again.finished and again.epochs_completed == 2 and again.best_epoch == first.best_epoch
    _assert_same_tensors(again.model.state_dict(), first.model.state_dict())
    _assert_same_tensors(again.model.state_dict(), first_reference.model.state_dict())
    pd.testing.assert_frame_equal(again.log[DETERMINISTIC_COLUMNS], first.log[DETERMINISTIC_COLUMNS])


class KilledInTheFirstStep(MulticlassObjective):
    id = "killed"

    def loss(self, logits, targets):
        raise RuntimeError("killed in the first step")


def test_a_fresh_run_deletes_the_outputs_of_an_earlier_run_before_training(data, uninterrupted, tmp_path):
    """Killed before its first epoch ends, a rerun must not leave the old model looking current."""
    images, labels = data
    _, reference = uninterrupted
    for name in (MODEL_FILE, LOG_FILE):
        shutil.copy(reference / name, tmp_path / name)
    with pytest.raises(RuntimeError, match="killed in the first step"):
        run_fit(images, labels, tmp_path, parts=TrainingParts(objective=KilledInTheFirstStep()))
    assert not (tmp_path / MODEL_FILE).exists() and not (tmp_path / LOG_FILE).exists()


def test_a_job_killed_after_its_finished_checkpoint_restores_its_outputs(data, uninterrupted, tmp_path):
    """The rerun of a job killed between the finished checkpoint and its deletion finds the
    checkpoint, and model.pt and train_log.csv gone (Snakemake deletes them before a rerun)."""
    images, labels = data
    _, reference = uninterrupted
    (tmp_path / CHECKPOINT_FILE).write_bytes((reference / CHECKPOINT_FILE).read_bytes())
    result = run_fit(images, labels, tmp_path)
    assert result.finished and result.epochs_completed == 2 and result.origin == "restored"
    assert not (tmp_path / CHECKPOINT_FILE).exists()
    _assert_same_tensors(torch.load(tmp_path / MODEL_FILE)["state_dict"],
                         torch.load(reference / MODEL_FILE)["state_dict"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / LOG_FILE), pd.read_csv(reference / LOG_FILE))
    assert torch.load(tmp_path / MODEL_FILE)["fingerprint"] == result.fingerprint


def test_other_pixels_under_the_same_rows_and_labels_retrain(data, uninterrupted, killed, tmp_path):
    images, labels = data
    reference, reference_dir = uninterrupted
    other = images.copy()
    other[TRAIN] = np.clip(other[TRAIN].astype(np.float32) + 0.05, 0, 1).astype(np.float16)
    # Neither an unfinished nor a finished checkpoint of the old pixels is taken up.
    for source in (killed, reference_dir):
        _copy_run(source, tmp_path)
        with pytest.raises(StaleCheckpointError, match="data changed"):
            run_fit(other, labels, tmp_path)
    # The caller then deletes the checkpoint and trains from scratch: another model.
    (tmp_path / CHECKPOINT_FILE).unlink()
    retrained = run_fit(other, labels, tmp_path)
    assert retrained.origin == "trained"
    assert _differ(retrained.model.state_dict(), reference.model.state_dict())


def test_array_digest_sees_the_pixels_of_its_rows_only():
    images = np.random.default_rng(0).random((10, 4, 6)).astype(np.float16)
    rows = np.array([7, 1, 2])
    digest = array_digest(images, rows)
    assert digest == array_digest(images.copy(), [1, 2, 7])  # row order does not matter
    outside = images.copy()
    outside[0, 2, 3] += 0.25
    assert array_digest(outside, rows) == digest
    inside = images.copy()
    inside[7, 2, 3] += 0.25
    assert array_digest(inside, rows) != digest
    assert array_digest(images, [1, 2]) != digest
    assert array_digest(images.astype(np.float32), rows) != digest


@pytest.mark.parametrize("change, what", [
    (dict(task={**TASK, "classes": ["yes", "no"]}), "task"),
    (dict(eval_transform=ImageTransform(faint_noise, stream="perturb", id="other-noise")), "transforms"),
    (dict(train_transform=PERTURB), "transforms"),
    (dict(parts=TrainingParts(sampler=lambda config: ShuffledBatches(16))), "parts"),
    (dict(val=VAL[1:]), "rows"),
    (dict(labels="flipped"), "labels"),
    (dict(data_fingerprint="another cache"), "data"),
])
def test_a_checkpoint_of_another_run_is_refused(data, killed, tmp_path, change, what):
    images, labels = data
    _copy_run(killed, tmp_path)
    if change.pop("labels", None):
        labels = labels.copy()
        labels[TRAIN[:5]] = 1 - labels[TRAIN[:5]]
    with pytest.raises(StaleCheckpointError, match=f"{what} changed"):
        run_fit(images, labels, tmp_path, **change)


def test_no_signal_when_labels_are_shuffled_and_early_stopping(data, tmp_path):
    images, labels = data
    shuffled = np.random.default_rng(1).permutation(labels)
    config = TrainConfig(**{**vars(CONFIG), "patience": 1})
    result = run_fit(images, shuffled, tmp_path, config=config, train_transform=None, eval_transform=None)
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
        run_fit(array, labels, out, config=config, train=np.arange(48), val=np.arange(48, 64))
        states[name] = torch.load(out / MODEL_FILE)["state_dict"]
    for name in runs:
        _assert_same_tensors(states[name], states["preloaded"], name)


def test_memmap_pickles_as_its_file_not_its_pixels(tmp_path):
    # What DataLoader workers started by spawn or forkserver receive.
    path = tmp_path / "cache.npy"
    np.save(path, np.arange(4 * 64 * 64, dtype=np.float16).reshape(4, 64, 64))
    dataset = RowsDataset(np.load(path, mmap_mode="r"))
    blob = pickle.dumps(dataset)
    assert len(blob) < 1000  # the pixels alone are 32 kB
    copy = pickle.loads(blob)
    assert isinstance(copy.images, np.memmap)
    assert torch.equal(copy[np.array([1, 3])], dataset[np.array([1, 3])])


def test_config_rejects_unknown_architecture():
    with pytest.raises(ValueError, match="resnet18"):
        TrainConfig(arch="alexnet")


# --------------------------------------------------------------------------------------------
# Replaceable parts


class CountingSampler:
    """Batches of 16 in row order (no shuffle), counting the epochs it has cut; the count is
    its state, so a resumed run must restore it."""

    id = "counting-16"
    stream = "shuffle"

    def __init__(self) -> None:
        self.epochs_cut = 0
        self.batch_sizes: list[int] = []

    def batches(self, rows, generator):
        self.epochs_cut += 1
        batches = [np.sort(rows[i:i + 16]) for i in range(0, len(rows), 16)]
        self.batch_sizes += [len(b) for b in batches]
        return batches

    def state_dict(self):
        return {"epochs_cut": self.epochs_cut}

    def load_state_dict(self, state):
        self.epochs_cut = state["epochs_cut"]


class CountingObjective(MulticlassObjective):
    """Multiclass, counting its losses; scores by accuracy, so the log shows which score it is."""

    id = "counting-accuracy"

    def __init__(self) -> None:
        self.losses = 0

    def loss(self, logits, targets):
        self.losses += 1
        return super().loss(logits, targets)

    def score(self, targets, probabilities):
        return float((probabilities.argmax(axis=1) == targets).mean())


def test_a_custom_sampler_and_objective_are_used_and_the_sampler_state_is_checkpointed(data, tmp_path):
    images, labels = data
    train, val = np.arange(48), np.arange(48, 64)
    sampler, objective = CountingSampler(), CountingObjective()
    parts = TrainingParts(objective=objective, sampler=lambda config: sampler)
    killed = run_fit(images, labels, tmp_path, train=train, val=val, parts=parts, stop_after_epochs=1)
    assert sampler.epochs_cut == 1 and sampler.batch_sizes == [16, 16, 16]  # not the config's 32
    assert objective.losses == 3 + 1  # three training batches, one validation loss
    probs = predict(killed.model, images, val, transform=PERTURB, device="cpu")
    assert killed.log["val_auc"].iloc[0] == pytest.approx(float((probs.argmax(axis=1) == labels[val]).mean()))

    resumed_sampler = CountingSampler()
    resumed_parts = TrainingParts(objective=objective, sampler=lambda config: resumed_sampler)
    resumed = run_fit(images, labels, tmp_path, train=train, val=val, parts=resumed_parts)
    assert resumed.origin == "resumed" and resumed.epochs_completed == 2
    assert resumed_sampler.epochs_cut == 2  # restored to 1, then one more epoch
    parts_ids = torch.load(tmp_path / MODEL_FILE)["parts"]
    assert parts_ids["sampler"] == "counting-16" and parts_ids["objective"] == "counting-accuracy"


class CountingPrivacy:
    """A stand-in for DP-SGD: wraps nothing, 'spends' 0.5 epsilon per step."""

    id = "counting-privacy"

    def __init__(self) -> None:
        self.wrapped = 0
        self.steps = 0

    def wrap(self, model, optimizer):
        self.wrapped += 1
        return model, optimizer

    def after_step(self, batch_size):
        self.steps += 1

    def epsilon(self):
        return 0.5 * self.steps

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_a_privacy_hook_wraps_once_counts_steps_and_its_budget_is_logged_and_checkpointed(data, tmp_path):
    images, labels = data
    train, val = np.arange(64), np.arange(64, 80)  # two batches of 32 per epoch
    privacy = CountingPrivacy()
    run_fit(images, labels, tmp_path, train=train, val=val, parts=TrainingParts(privacy=privacy),
            stop_after_epochs=1)
    assert privacy.wrapped == 1 and privacy.steps == 2

    resumed_privacy = CountingPrivacy()
    result = run_fit(images, labels, tmp_path, train=train, val=val, parts=TrainingParts(privacy=resumed_privacy))
    assert result.origin == "resumed" and resumed_privacy.wrapped == 1 and resumed_privacy.steps == 4
    log = pd.read_csv(tmp_path / LOG_FILE)
    assert list(log.columns) == [*LOG_COLUMNS, "epsilon"] and log["epsilon"].tolist() == [1.0, 2.0]
    assert torch.load(tmp_path / MODEL_FILE)["parts"]["privacy"] == "counting-privacy"


def test_multilabel_objective_trains_and_predicts_independent_probabilities(data, tmp_path):
    images, disk = data
    noise_label = np.random.default_rng(2).integers(0, 2, len(disk))
    labels = np.stack([disk, noise_label], axis=1)
    objective = MultilabelObjective()
    config = TrainConfig(**{**vars(CONFIG), "epochs": 1})
    result = run_fit(images, labels, tmp_path, config=config, parts=TrainingParts(objective=objective))
    probs = predict(result.model, images, TEST, transform=PERTURB, device="cpu", objective=objective)
    assert probs.shape == (len(TEST), 2) and ((probs > 0) & (probs < 1)).all()
    assert not np.allclose(probs.sum(axis=1), 1.0)  # sigmoids, not a softmax
    assert result.log["val_auc"].iloc[0] == pytest.approx(
        mean_label_auc(labels[VAL], predict(result.model, images, VAL, transform=PERTURB, device="cpu",
                                            objective=objective)))
    logits = torch.tensor([[2.0, -1.0]])
    assert objective.loss(logits, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(
        float(np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))])))
    with pytest.raises(ValueError, match="multilabel labels must be"):
        objective.targets(disk, 2, TRAIN)


# --------------------------------------------------------------------------------------------
# The race-detection caller


def test_an_image_model_retrains_when_the_cache_changes_under_the_same_manifest(data, tmp_path):
    from readrace.tasks import race_task
    from readrace.training.checkpoint import array_digest
    from readrace.training.image_models import predict_image_model, train_image_model

    images, labels = data
    splits = np.array(["train"] * 96 + ["validation"] * 32 + ["test"] * 48)
    manifest = pd.DataFrame({
        "image_id": [f"{k:016x}" for k in range(176)], "patient_id": [f"{k:016x}" for k in range(176)],
        "study_id": [f"{k:016x}" for k in range(176)], "race": np.array(["Black", "White"])[labels],
        "split": splits, "cache_index": np.arange(176),
    })
    training = {"pretrained": "none", "epochs": 1, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4,
                "patience": 1, "augment": False}
    execution = {"device": "cpu", "num_workers": 0, "preload_max_gb": 1.0, "predict_batch_size": 64}
    task = race_task("ct")

    def train(pixels):
        return train_image_model(manifest, pixels, dataset="ct-a", task=task, arch="resnet18", perturbation="noise-0.1",
                                 seed=0, training=training, execution=execution, out_dir=tmp_path,
                                 cache_digest=array_digest(pixels, np.arange(len(pixels))), progress=False)

    first = train(images)
    assert first.origin == "trained" and not (tmp_path / CHECKPOINT_FILE).exists()
    brighter = images.copy()
    brighter[TRAIN] = np.clip(brighter[TRAIN].astype(np.float32) + 0.05, 0, 1).astype(np.float16)
    second = train(brighter)
    assert second.origin == "trained" and second.fingerprint != first.fingerprint
    assert _differ(second.model.state_dict(), first.model.state_dict())

    _, meta = load_model(tmp_path / MODEL_FILE)
    assert meta["task"] == task.to_dict() and meta["task"]["type"] == "multiclass"
    assert meta["perturbation"] == "noise-0.1" and meta["fingerprint"] == second.fingerprint
    keys = {"kind": "race_detection", "model": "m", "perturbation": "noise-0.1", "test_dataset": "ct-a"}
    units = {"patient": "patient", "study": "patient"}
    predictions = predict_image_model(tmp_path / MODEL_FILE, manifest, brighter, keys=keys, units=units,
                                      execution=execution)
    assert len(predictions.table) == 48 and predictions.task == task
    assert [level.name for level in predictions.levels] == ["slice", "patient"]
    np.testing.assert_allclose(predictions.table[["prob_Black", "prob_White"]].sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="trained under 'noise-0.1'"):
        predict_image_model(tmp_path / MODEL_FILE, manifest, brighter, keys={**keys, "perturbation": "none"},
                            units=units, execution=execution)
