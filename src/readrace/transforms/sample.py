"""Transforms that see the whole sample, as MONAI's dictionary transforms do.

A :class:`Sample` is a plain dict holding a batch and what is known about it::

    sample = {"image": x, "index": rows}      # x: float (B, 1, H, W) in [0, 1], on the device
    sample = perturbation_transform("lpf-d10")(sample, generators)

``"image"`` and ``"index"`` (the cache rows of the batch, in the order of ``"image"``) are
always there; later stages add keys (``"mask"``, labels, ...) so that lung masks, grid cells
and occlusion plug into the same hook as the filters.

A :class:`Transform` maps a sample to a new sample. Its randomness is explicit: it is handed
``generators``, a mapping from stream names to ``torch.Generator``, and draws only from the
streams it names in ``streams`` (``("perturb",)`` for a perturbation, ``("augment",)`` for
augmentation). The training engine owns, seeds and checkpoints every stream, so a resumed
run draws exactly what an uninterrupted one draws, and adding a random transform never
shifts the draws of another.

The engine applies a train-time transform to every training batch and an eval-time transform
(with freshly seeded generators, so that it is the same at every evaluation) to validation
and test batches. :func:`perturb_and_augment` builds the paper's pair: the perturbation then
augmentation for training, the perturbation alone for evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NotRequired, Protocol, TypedDict, runtime_checkable

import numpy as np
import torch

from readrace.transforms.augment import RandomAffine
from readrace.transforms.perturbation_ids import needs_masks, parse_perturbation_id
from readrace.transforms.perturbations import FILL, parse_perturbation

__all__ = [
    "Sample",
    "Generators",
    "Transform",
    "ImageTransform",
    "RegionFill",
    "Compose",
    "perturbation_transform",
    "augmentation_transform",
    "perturb_and_augment",
]


class Sample(TypedDict):
    """A batch and what is known about it (a plain dict at run time)."""

    image: torch.Tensor  # float (B, 1, H, W), values in [0, 1], on the training device
    index: np.ndarray | torch.Tensor  # int64 (B,): the cache rows of the images, in order
    mask: NotRequired[torch.Tensor]


#: Random streams by name; a transform draws only from the streams it declares.
Generators = Mapping[str, torch.Generator]

#: ``fn(x, generator=None) -> x`` on a ``(B, C, H, W)`` batch: every perturbation of
#: :mod:`readrace.transforms.perturbations`, and :class:`RandomAffine`.
ImageFunction = Callable[..., torch.Tensor]


@runtime_checkable
class Transform(Protocol):
    """``transform(sample, generators) -> sample``, drawing only from ``streams``."""

    #: Names what the transform does, parameters included: it goes into the fingerprint of a
    #: trained model and into model.pt.
    id: str
    #: The generator streams it draws from (empty for a deterministic transform).
    streams: tuple[str, ...]

    def __call__(self, sample: Sample, generators: Generators) -> Sample: ...


class ImageTransform:
    """Lifts an image function ``fn(x, generator=None)`` onto ``sample["image"]``.

    ``fn`` receives the generator of ``stream`` (also when it is deterministic and ignores
    it); the other keys of the sample pass through unchanged. ``id`` defaults to ``fn.id``
    (perturbations have one), else to ``repr(fn)`` for objects and the qualified name for
    functions.
    """

    def __init__(self, fn: ImageFunction, stream: str, id: str | None = None) -> None:
        self.fn = fn
        self.stream = stream
        self.streams = (stream,)
        self.id = id if id is not None else _default_id(fn)

    def __call__(self, sample: Sample, generators: Generators) -> Sample:
        return {**sample, "image": self.fn(sample["image"], generator=generators[self.stream])}

    def __repr__(self) -> str:
        return f"ImageTransform({self.fn!r}, stream={self.stream!r}, id={self.id!r})"


class Compose:
    """Applies ``transforms`` in order; with none, the identity (id ``"none"``).

    Its id joins the ids of its parts with ``+``; a Compose of one transform has that
    transform's id, so wrapping changes no fingerprint.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = tuple(transforms)
        self.id = "+".join(t.id for t in self.transforms) or "none"
        self.streams = tuple(dict.fromkeys(s for t in self.transforms for s in t.streams))

    def __call__(self, sample: Sample, generators: Generators) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, generators)
        return sample

    def __repr__(self) -> str:
        return f"Compose({list(self.transforms)!r})"


class RegionFill:
    """Sets one region of each image to :data:`~readrace.transforms.perturbations.FILL`; the
    region is given per image by a mask aligned with the cache, row for row.

    ``keep="inside"`` keeps the masked pixels and fills the rest (``lung``), ``"outside"``
    fills the masked pixels (``nonlung``, ``occlude-salient``). The mask of a batch is
    ``sample["mask"]`` when a stage put it there, else the rows ``sample["index"]`` of
    ``masks`` (``(N, H, W)`` uint8, 1 inside, 0 outside; moved to the image's device once).
    Deterministic.
    """

    streams: tuple[str, ...] = ()

    def __init__(self, id: str, keep: str, masks: np.ndarray | torch.Tensor | None = None) -> None:
        if keep not in ("inside", "outside"):
            raise ValueError(f"keep must be 'inside' or 'outside', got {keep!r}")
        self.id, self.keep = id, keep
        self._masks = None if masks is None else torch.as_tensor(np.asarray(masks, dtype=np.uint8))
        self._on: dict[torch.device, torch.Tensor] = {}

    def _batch_mask(self, sample: Sample) -> torch.Tensor:
        image = sample["image"]
        if "mask" in sample:
            mask = sample["mask"]
        elif self._masks is None:
            raise ValueError(f"perturbation {self.id!r}: the sample has no 'mask' and no masks were given")
        else:
            if image.device not in self._on:
                self._on[image.device] = self._masks.to(image.device)
            index = torch.as_tensor(np.asarray(sample["index"]), device=image.device, dtype=torch.long)
            mask = self._on[image.device][index]
        if (mask > 1).any():
            # The segmentation stage's ground-truth caches mark a row without a mask with 255.
            raise ValueError(f"perturbation {self.id!r}: a mask of the batch is missing (values above 1); "
                             "an image without a lung mask cannot be masked")
        mask = mask.to(image.device).bool()
        if mask.ndim == 3:
            mask = mask[:, None]
        if mask.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"perturbation {self.id!r}: masks of {tuple(mask.shape[-2:])} px for images of "
                f"{tuple(image.shape[-2:])} px (masks must be on the cache's grid)"
            )
        return mask

    def __call__(self, sample: Sample, generators: Generators) -> Sample:
        image = sample["image"]
        mask = self._batch_mask(sample)
        keep = mask if self.keep == "inside" else ~mask
        fill = torch.full((), FILL, dtype=image.dtype, device=image.device)
        return {**sample, "image": torch.where(keep, image, fill)}

    def __repr__(self) -> str:
        return f"RegionFill({self.id!r}, keep={self.keep!r})"


#: How each masked perturbation uses its mask.
_REGION_KEEP = {"lung": "inside", "nonlung": "outside", "occlude-salient": "outside"}


def perturbation_transform(pid: str, masks: np.ndarray | None = None) -> Transform:
    """The perturbation named by ``pid`` (``lpf-d10``, ``noise-0.1``, ``patch-0-1``, ...), on
    stream ``"perturb"``.

    ``lung``, ``nonlung`` and ``occlude-salient`` read a mask per image: ``masks`` is the
    mask array aligned with the cache (the lung masks of the dataset, or a model's salient
    regions), or None when every sample brings its own ``"mask"``.
    """
    if needs_masks(pid) is not None:
        parse_perturbation_id(pid)
        return RegionFill(pid, _REGION_KEEP[pid], masks)
    return ImageTransform(parse_perturbation(pid), stream="perturb", id=pid)


def augmentation_transform(augment: RandomAffine | None = None) -> ImageTransform:
    """Training-time augmentation (default ``RandomAffine()``), on stream ``"augment"``."""
    augment = augment if augment is not None else RandomAffine()
    return ImageTransform(augment, stream="augment", id=repr(augment))


def perturb_and_augment(perturbation: str | Transform, augment: bool = True) -> tuple[Transform, Transform]:
    """``(train, eval)`` transforms of the paper's pipeline.

    Evaluation sees the perturbation alone (validation and test alike); training sees the
    perturbation, then :class:`RandomAffine` augmentation when ``augment``.
    """
    if isinstance(perturbation, str):
        perturbation = perturbation_transform(perturbation)
    train = Compose([perturbation, augmentation_transform()]) if augment else perturbation
    return train, perturbation


def _default_id(fn: Any) -> str:
    if hasattr(fn, "id"):
        return str(fn.id)
    if hasattr(fn, "__qualname__"):
        return f"{fn.__module__}.{fn.__qualname__}"
    return repr(fn)
