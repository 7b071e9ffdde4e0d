"""readrace.transforms.sample: transforms of the whole sample, with explicit random streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from readrace.transforms.augment import RandomAffine
from readrace.transforms.perturbations import parse_perturbation
from readrace.transforms.sample import (
    Compose,
    ImageTransform,
    Transform,
    augmentation_transform,
    perturb_and_augment,
    perturbation_transform,
)


def _sample(seed: int = 0) -> dict:
    image = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
    return {"image": image, "index": np.array([2, 5, 9]), "mask": image > 0.5}


def _generators() -> dict[str, torch.Generator]:
    return {"perturb": torch.Generator().manual_seed(1), "augment": torch.Generator().manual_seed(2)}


def test_a_perturbation_transform_is_the_perturbation_on_the_image_with_its_stream():
    sample = _sample()
    out = perturbation_transform("noise-0.1")(sample, _generators())
    expected = parse_perturbation("noise-0.1")(sample["image"], generator=torch.Generator().manual_seed(1))
    assert torch.equal(out["image"], expected)
    # The other keys pass through; the input sample is left as it was.
    assert out["index"] is sample["index"] and out["mask"] is sample["mask"]
    assert torch.equal(sample["image"], _sample()["image"])


def test_a_transform_draws_only_from_its_own_stream():
    generators = _generators()
    before = {name: g.get_state() for name, g in generators.items()}
    perturbation_transform("noise-0.1")(_sample(), generators)
    assert not torch.equal(generators["perturb"].get_state(), before["perturb"])
    assert torch.equal(generators["augment"].get_state(), before["augment"])
    with pytest.raises(KeyError, match="augment"):
        augmentation_transform()(_sample(), {"perturb": torch.Generator()})


def test_compose_applies_in_order_with_joined_ids_and_streams():
    sample, generators = _sample(), _generators()
    train = Compose([perturbation_transform("lpf-d4"), augmentation_transform()])
    assert isinstance(train, Transform)
    assert train.id == f"lpf-d4+{RandomAffine()!r}"
    assert train.streams == ("perturb", "augment")
    expected = RandomAffine()(parse_perturbation("lpf-d4")(sample["image"]),
                              generator=torch.Generator().manual_seed(2))
    assert torch.equal(train(sample, generators)["image"], expected)


def test_an_empty_compose_is_the_identity_and_one_part_keeps_its_id():
    sample = _sample()
    identity = Compose([])
    assert identity.id == "none" and identity.streams == ()
    assert torch.equal(identity(sample, {})["image"], sample["image"])
    assert Compose([perturbation_transform("blur-2")]).id == "blur-2"


def test_the_paper_pipeline_perturbs_both_and_augments_training_only():
    train, evaluate = perturb_and_augment("hpf-d8")
    assert evaluate.id == "hpf-d8" and evaluate.streams == ("perturb",)
    assert train.id == f"hpf-d8+{RandomAffine()!r}" and train.streams == ("perturb", "augment")
    train, evaluate = perturb_and_augment("hpf-d8", augment=False)
    assert train is evaluate


def test_a_function_without_an_id_is_named_by_its_qualified_name():
    def darken(x, generator=None):
        return x / 2

    transform = ImageTransform(darken, stream="perturb")
    assert transform.id.endswith("test_a_function_without_an_id_is_named_by_its_qualified_name.<locals>.darken")
    assert torch.equal(transform(_sample(), {"perturb": None})["image"], _sample()["image"] / 2)
