"""The race-detection table: long CSV, and a Markdown rendering laid out like the paper's Table 3.

The CSV has one row per (model, level, class) of every race-detection model on every test
dataset: the model's id and coordinate (train_dataset, arch, perturbation, seed), the test
dataset, and the scores' columns (:data:`readrace.evaluation.scoring.SCORE_COLUMNS`). The
Markdown keeps the paper's sections: internal validation and external validation of the
chest-radiograph models (one column per class), binary (Black or White) detection in the
other modalities (the AUC at every level, each named for what it is, as "0.92 (slice;
0.91-0.93)"), and, beyond the paper's Table 3, every perturbed model's macro AUC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from readrace.evaluation.scoring import SCORE_COLUMNS
from readrace.labels import task_classes

TABLE_COLUMNS: tuple[str, ...] = (
    "model", "train_dataset", "test_dataset", "arch", "perturbation", "seed", *SCORE_COLUMNS,
)
#: A model on a test set; its levels keep the task's order (slice before patient), so they
#: are never sorted by name.
_MODEL_KEY = ["train_dataset", "test_dataset", "arch", "perturbation", "seed"]


def gather_scores(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate per-model score files into the long table, in a stable order."""
    frames = [pd.read_csv(path) for path in paths]
    if not frames:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    table = pd.concat(frames, ignore_index=True)[list(TABLE_COLUMNS)]
    return table.sort_values(_MODEL_KEY, kind="stable").reset_index(drop=True)


def _cell(row: pd.Series) -> str:
    if pd.isna(row["auc"]):
        return "n/a"
    return f"{row['auc']:.3f} ({row['ci_low']:.3f}-{row['ci_high']:.3f})"


def _model(row: pd.Series) -> str:
    return f"{row['train_dataset']} {row['arch']} (seed {row['seed']})"


def _class_rows(table: pd.DataFrame, classes: list[str], external: bool) -> list[str]:
    lines = []
    for _, group in table.groupby([*_MODEL_KEY, "level"], sort=True):
        first = group.iloc[0]
        by_class = group.set_index("class")
        name = _model(first) + (f" to {first['test_dataset']}" if external else "")
        cells = [_cell(by_class.loc[c]) if c in by_class.index else "n/a" for c in [*classes, "macro"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(table: pd.DataFrame, modalities: Mapping[str, str]) -> str:
    """The table as Markdown; ``modalities`` maps each dataset to its task modality."""
    modality = table["train_dataset"].map(modalities)
    unperturbed = table[table["perturbation"] == "none"]
    internal = unperturbed["train_dataset"] == unperturbed["test_dataset"]
    cxr = unperturbed[modality[unperturbed.index] == "cxr"]
    other = unperturbed[modality[unperturbed.index] != "cxr"]

    lines = [
        "# Race detection",
        "",
        "AUC (95% CI from a bootstrap over patients) of one-vs-rest race classification on the",
        "test split; laid out like Table 3 of Gichoya et al. 2022. Every class has an AUC, whether",
        "or not the model ever predicts it.",
    ]
    classes = list(task_classes("cxr"))
    header = "| Model | " + " | ".join([*classes, "Macro"]) + " |"
    rule = "|" + "---|" * (len(classes) + 2)
    for title, rows, external in (
        ("Primary race detection in chest radiographs (internal validation)", cxr[internal[cxr.index]], False),
        ("External validation of chest-radiograph models", cxr[~internal[cxr.index]], True),
    ):
        if len(rows):
            lines += ["", f"## {title}", "", header, rule, *_class_rows(rows, classes, external)]

    if len(other):
        lines += [
            "",
            "## Race detection in other modalities: binary (Black or White)",
            "",
            "| Model | AUC |",
            "|---|---|",
        ]
        for _, group in other[other["class"] == "Black"].groupby(_MODEL_KEY, sort=True):
            first = group.iloc[0]
            name = _model(first)
            if first["train_dataset"] != first["test_dataset"]:
                name += f" to {first['test_dataset']}"
            cells = [
                f"{row['auc']:.3f} ({row['level']}; {row['ci_low']:.3f}-{row['ci_high']:.3f})"
                for _, row in group.iterrows()
            ]
            lines.append(f"| {name} | " + ", ".join(cells) + " |")
        by_study = sorted(set(other.loc[other["bootstrap_unit"] == "study", "test_dataset"]))
        if by_study:
            lines += ["", f"The intervals on {', '.join(by_study)} resample studies: the dataset has no patient ids."]

    perturbed = table[(table["perturbation"] != "none") & (table["class"] == "macro")]
    if len(perturbed):
        lines += [
            "",
            "## Perturbed images (macro AUC; the same perturbation at train and test time)",
            "",
            "| Model | Tested on | Perturbation | Level | Macro AUC |",
            "|---|---|---|---|---|",
        ]
        for _, row in perturbed.iterrows():
            lines.append(
                f"| {_model(row)} | {row['test_dataset']} | {row['perturbation']} | {row['level']} | {_cell(row)} |"
            )
    return "\n".join(lines) + "\n"
