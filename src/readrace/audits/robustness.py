"""Adversarial robustness by subgroup: FGSM and PGD (torchattacks) against the race model
and the clinical model, each perturbed batch measured by BOTH models.

Inputs to the attacks are the cache's pixels in [0, 1]; the fixed normalisation of
:mod:`readrace.training.device` is INSIDE the attacked module (:class:`AttackTarget`), so
the epsilon ball and the [0, 1] clamp are in intensity units (eps = k/255 of the range),
which the paper's code got wrong (it clamped normalised tensors). Every test image is
attacked, and an attack's success rate is the share of the images the model classified
correctly before the attack that it misclassifies after (the paper's code skipped images
already wrong and reported no rate). The clinical model is attacked on one label
(``finding``, default "No Finding"), called present when its probability is at least 0.5.

:func:`attack_rows` writes one row per (attack, epsilon, attacked model, measuring model,
image); :func:`summarise` turns them into AUC and success rate per race group with
patient-bootstrap intervals; :func:`smallest_flipping_epsilon` compares, across race
groups, each image's smallest epsilon that flips it (Kruskal-Wallis).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torchattacks
from scipy import stats
from torch import nn

from readrace.data.subsets import Subset
from readrace.evaluation.metrics import PatientBootstrap, percentile_interval, resampled_auc, resampled_mean, roc_auc
from readrace.tasks import Task
from readrace.training.device import normalize, resolve_device
from readrace.training.inference import load_model

ATTACKS: tuple[str, ...] = ("fgsm", "pgd")
MODELS: tuple[str, ...] = ("race", "clinical")
ROW_COLUMNS = ("attack", "epsilon", "attacked", "measured", "image_id", "patient_id", "race", "truth",
               "score", "correct_clean", "correct")


class AttackTarget(nn.Module):
    """A trained network as torchattacks sees it: [0, 1] pixels in, class logits out.

    ``output`` None: the network's own (multiclass) logits. An integer: one label of a
    multilabel network as a two-class problem, logits ``(0, z)``, so that cross-entropy on
    0/1 targets is that label's binary cross-entropy."""

    def __init__(self, network: nn.Module, output: int | None = None) -> None:
        super().__init__()
        self.network = network
        self.output = output
        # torchattacks puts the model back into the mode it found it in: a module left in
        # training mode would score later batches with BatchNorm's batch statistics.
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(normalize(x)).float()
        if self.output is None:
            return logits
        z = logits[:, self.output]
        return torch.stack([torch.zeros_like(z), z], dim=1)


def make_attack(name: str, target: nn.Module, epsilon: float, steps: int, alpha_ratio: float) -> torchattacks.Attack:
    """FGSM, or PGD of ``steps`` steps of ``alpha_ratio * epsilon / steps`` from a random start."""
    if name == "fgsm":
        return torchattacks.FGSM(target, eps=epsilon)
    if name == "pgd":
        return torchattacks.PGD(target, eps=epsilon, alpha=alpha_ratio * epsilon / max(steps, 1), steps=steps,
                                random_start=True)
    raise ValueError(f"unknown attack {name!r}; expected one of {', '.join(ATTACKS)}")


def _scores(target: AttackTarget, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(target(x), dim=1)


def attack_rows(race_model: str, clinical_model: str, manifest: pd.DataFrame, images: np.ndarray, *,
                finding: str, attacks: list[str], epsilons: list[float], steps: int, alpha_ratio: float,
                batch_size: int, device: str, seed: int) -> pd.DataFrame:
    """Attack every test image of both tasks; ``epsilons`` in units of 1/255."""
    dev = resolve_device(device)
    race_net, race_meta = load_model(race_model, device=str(dev))
    clinical_net, clinical_meta = load_model(clinical_model, device=str(dev))
    for meta, path in ((race_meta, race_model), (clinical_meta, clinical_model)):
        if meta["perturbation"] != "none":
            raise ValueError(f"{path}: trained under {meta['perturbation']!r}; attacks are run on models trained "
                             "without a perturbation")
    race_task, clinical_task = Task.from_dict(race_meta["task"]), Task.from_dict(clinical_meta["task"])
    if finding not in clinical_task.classes:
        raise ValueError(f"{clinical_model}: the attacked finding {finding!r} is not one of its labels")
    label = clinical_task.classes.index(finding)
    targets = {"race": AttackTarget(race_net.float()), "clinical": AttackTarget(clinical_net.float(), label)}
    rows = race_task.rows(Subset.of("test").select(manifest))
    finding_truth = clinical_task.label_matrix(rows)[:, label]
    rows = rows[~np.isnan(finding_truth)]
    truth = {"race": rows["label"].to_numpy(), "clinical": finding_truth[~np.isnan(finding_truth)].astype(np.int64)}
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows.iloc[start:start + batch_size]
        x = torch.from_numpy(np.asarray(images[batch["cache_index"].to_numpy()], dtype=np.float32))[:, None].to(dev)
        y = {name: torch.from_numpy(values[start:start + batch_size]).to(dev) for name, values in truth.items()}
        clean = {name: _scores(target, x) for name, target in targets.items()}
        for attack in attacks:
            for epsilon in epsilons:
                for attacked in MODELS:
                    torch.manual_seed(seed)  # PGD's random start: the same draws on every run
                    adversarial = make_attack(attack, targets[attacked], epsilon / 255.0, steps, alpha_ratio)(x, y[attacked])
                    for measured in MODELS:
                        probs = _scores(targets[measured], adversarial)
                        predicted = probs.argmax(dim=1)
                        correct_clean = clean[measured].argmax(dim=1) == y[measured]
                        frame = pd.DataFrame({
                            "attack": attack, "epsilon": float(epsilon), "attacked": attacked, "measured": measured,
                            "image_id": batch["image_id"].to_numpy(), "patient_id": batch["patient_id"].to_numpy(),
                            "race": batch["race"].to_numpy(), "truth": y[measured].cpu().numpy(),
                            "correct_clean": correct_clean.cpu().numpy(),
                            "correct": (predicted == y[measured]).cpu().numpy(),
                        })
                        probs = probs.cpu().numpy().astype(np.float64)
                        # race: every class's probability (one-vs-rest AUC per group); clinical: the label's.
                        frame["score"] = probs[:, 1] if measured == "clinical" else np.nan
                        for k, name in enumerate(race_task.classes):
                            frame[f"prob_{name}"] = probs[:, k] if measured == "race" else np.nan
                        out.append(frame)
    table = pd.concat(out, ignore_index=True)
    return table


def summarise(rows: pd.DataFrame, race_classes: list[str], n_boot: int, seed: int, confidence: float) -> pd.DataFrame:
    """AUC and attack success rate per (attack, epsilon, attacked, measured, race group),
    with intervals from one patient bootstrap of the test set (group ``all``: every image;
    the race model's AUC there is the macro one-vs-rest AUC)."""
    first = rows.drop_duplicates("image_id")
    bootstrap = PatientBootstrap.of(first["patient_id"].to_numpy(), n_boot, seed)
    code_of = dict(zip(first["patient_id"], bootstrap.codes))
    blocks = [counts for _, counts in bootstrap.blocks()]
    records = []
    for (attack, epsilon, attacked, measured), part in rows.groupby(["attack", "epsilon", "attacked", "measured"], sort=True):
        codes = part["patient_id"].map(code_of).to_numpy()
        race = part["race"].to_numpy()
        truth = part["truth"].to_numpy()
        for group in ["all", *race_classes]:
            member = np.ones(len(part), bool) if group == "all" else race == group
            if not member.any():
                continue
            auc, auc_boot = _group_auc(part, measured, group, race_classes, member, truth, codes, blocks)
            eligible = member & part["correct_clean"].to_numpy()
            flipped = ~part["correct"].to_numpy()
            if eligible.any():
                success = float(flipped[eligible].mean())
                success_boot = np.concatenate([resampled_mean(flipped[eligible], codes[eligible], c) for c in blocks])
            else:
                success, success_boot = float("nan"), np.full(n_boot, np.nan)
            for metric, value, boot in (("auc", auc, auc_boot), ("success_rate", success, success_boot)):
                low, high = percentile_interval(boot, confidence)
                records.append({"attack": attack, "epsilon": epsilon, "attacked": attacked, "measured": measured,
                                "cross_task": attacked != measured, "group": group, "metric": metric, "value": value,
                                "ci_low": low, "ci_high": high, "n_images": int(member.sum()),
                                "n_correct_clean": int(eligible.sum())})
    return pd.DataFrame(records)


def _group_auc(part: pd.DataFrame, measured: str, group: str, race_classes: list[str], member: np.ndarray,
               truth: np.ndarray, codes: np.ndarray, blocks: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """The race model: one-vs-rest AUC of the group's class over every image (``all``: the
    macro mean). The clinical model: its label's AUC within the group."""
    if measured == "race":
        classes = race_classes if group == "all" else [group]
        aucs, boots = [], []
        for name in classes:
            k = race_classes.index(name)
            y, s = truth == k, part[f"prob_{name}"].to_numpy()
            if y.all() or not y.any():
                continue
            aucs.append(roc_auc(y, s))
            boots.append(np.concatenate([resampled_auc(y, s, codes, c) for c in blocks]))
        if not aucs:
            return float("nan"), np.full(sum(c.shape[1] for c in blocks), np.nan)
        return float(np.mean(aucs)), np.nanmean(np.stack(boots), axis=0)
    y, s = truth[member] == 1, part["score"].to_numpy()[member]
    if y.all() or not y.any():
        return float("nan"), np.full(sum(c.shape[1] for c in blocks), np.nan)
    return roc_auc(y, s), np.concatenate([resampled_auc(y, s, codes[member], c) for c in blocks])


def smallest_flipping_epsilon(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per image (correct before the attack, attacked and measured by the same model): the
    smallest epsilon that flips it (inf: none of the grid). Returns (per image, per group
    with a Kruskal-Wallis test across the race groups; ``never`` is ranked above every
    epsilon of the grid)."""
    same = rows[(rows["attacked"] == rows["measured"]) & rows["correct_clean"]]
    flipped = same[~same["correct"]]
    smallest = flipped.groupby(["attack", "attacked", "image_id"])["epsilon"].min()
    images = same.drop_duplicates(["attack", "attacked", "image_id"])[["attack", "attacked", "image_id", "patient_id", "race"]]
    images = images.join(smallest.rename("min_epsilon"), on=["attack", "attacked", "image_id"])
    images["min_epsilon"] = images["min_epsilon"].fillna(np.inf)
    summary = []
    for (attack, attacked), part in images.groupby(["attack", "attacked"]):
        ceiling = part["min_epsilon"][np.isfinite(part["min_epsilon"])].max() if np.isfinite(part["min_epsilon"]).any() else 0.0
        ranked = part["min_epsilon"].replace(np.inf, ceiling + 1.0)
        groups = [ranked[part["race"] == g].to_numpy() for g in sorted(part["race"].unique())]
        testable = len(groups) > 1 and len(np.unique(ranked)) > 1
        p_value = float(stats.kruskal(*groups).pvalue) if testable else float("nan")
        for group, values in zip(sorted(part["race"].unique()), groups):
            raw = part.loc[part["race"] == group, "min_epsilon"]
            summary.append({"attack": attack, "attacked": attacked, "group": group, "n_images": len(values),
                            "median_min_epsilon": float(np.median(raw)), "never_flipped": float(np.isinf(raw).mean()),
                            "kruskal_p": p_value})
    return images, pd.DataFrame(summary)
