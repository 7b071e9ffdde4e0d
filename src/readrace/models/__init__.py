"""Classification networks for race detection: torchvision backbones for one-channel images.

The paper trained standard ImageNet architectures (ResNet34, DenseNet121, EfficientNet-B0,
...). Medical images here are single-channel, so the first convolution is replaced by a
one-channel convolution whose kernel is the sum of the three RGB kernels: the adapted network
computes exactly what the original computes on the grey image copied into R, G and B, which is
how ImageNet weights are usually applied to radiographs, without tripling the input.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path

import torch
import torchvision
from torch import nn

#: Architectures ``build_model`` knows, by their torchvision names.
ARCHITECTURES: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "densenet121",
    "efficientnet_b0",
    "small_cnn",
)

#: Segmentation networks (readrace.segmentation.unet builds them, with their channels: a
#: TrainingParts model builder, not :func:`build_model`).
SEGMENTATION_ARCHITECTURES: tuple[str, ...] = ("unet",)

#: Architectures built here rather than by torchvision (no ImageNet weights exist for them).
LOCAL_ARCHITECTURES: tuple[str, ...] = ("small_cnn",)

#: Values accepted for ``pretrained``.
PRETRAINED: tuple[str, ...] = ("imagenet",)

#: Seconds a weights download may wait on the network. Compute nodes without internet often
#: drop packets instead of refusing them, and torch.hub sets no timeout of its own.
DOWNLOAD_TIMEOUT_S = 30.0


def build_model(arch: str, n_classes: int, pretrained: str | None = None) -> nn.Module:
    """Build a torchvision classifier for ``(B, 1, H, W)`` images with ``n_classes`` logits.

    Parameters
    ----------
    arch:
        One of :data:`ARCHITECTURES`.
    n_classes:
        Number of output logits (the task's classes, in ``readrace.labels`` order).
    pretrained:
        ``None`` for random initialisation (drawn from torch's global RNG: seed it first),
        or ``"imagenet"`` for torchvision's default ImageNet weights. These are read from
        ``$TORCH_HOME/hub/checkpoints`` and downloaded there when missing; a failed download
        raises :class:`RuntimeError` saying which file to put where.

    The final layer is always freshly initialised with ``n_classes`` outputs.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    if pretrained is not None and pretrained not in PRETRAINED:
        raise ValueError(f"unknown pretrained weights {pretrained!r}; expected None or 'imagenet'")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if arch in LOCAL_ARCHITECTURES:
        if pretrained is not None:
            raise ValueError(f"{arch} has no pretrained weights; train it with pretrained=None")
        return SmallCNN(n_classes)

    weights = torchvision.models.get_model_weights(arch).DEFAULT if pretrained else None
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            model = torchvision.models.get_model(arch, weights=weights)
    except OSError as err:  # URLError, HTTPError, socket timeouts: no way to the weights host
        target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        raise RuntimeError(
            f"ImageNet weights for {arch} could not be had offline: downloading {weights.url} "
            f"failed ({err}). Download it where there is network access and put it at "
            f"{target} ($TORCH_HOME/hub/checkpoints/), or train with pretrained=None."
        ) from err

    _replace_first_conv(model, arch)
    _replace_classifier(model, arch, n_classes)
    return model


@contextmanager
def _socket_timeout(seconds: float):
    """Temporarily give sockets without an explicit timeout this one (restored afterwards)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if previous is None else previous)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _one_channel(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of ``conv`` taking one input channel, its kernel the sum over the input channels."""
    new = nn.Conv2d(
        1,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _replace_first_conv(model: nn.Module, arch: str) -> None:
    if arch.startswith("resnet"):
        model.conv1 = _one_channel(model.conv1)
    elif arch.startswith("densenet"):
        model.features.conv0 = _one_channel(model.features.conv0)
    elif arch.startswith("efficientnet"):
        model.features[0][0] = _one_channel(model.features[0][0])
    else:  # pragma: no cover - guarded by ARCHITECTURES
        raise AssertionError(arch)


def _replace_classifier(model: nn.Module, arch: str, n_classes: int) -> None:
    if arch.startswith("resnet"):
        model.fc = nn.Linear(model.fc.in_features, n_classes)
    elif arch.startswith("densenet"):
        model.classifier = nn.Linear(model.classifier.in_features, n_classes)
    elif arch.startswith("efficientnet"):
        model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, n_classes)
    else:  # pragma: no cover - guarded by ARCHITECTURES
        raise AssertionError(arch)


def without_classifier(model: nn.Module, arch: str) -> nn.Module:
    """A copy of ``model`` whose final linear layer is the identity: it returns the
    penultimate features (the pooled backbone output) in place of logits."""
    import copy

    features = copy.deepcopy(model)
    if arch.startswith("resnet"):
        features.fc = nn.Identity()
    elif arch.startswith("densenet"):
        features.classifier = nn.Identity()
    elif arch.startswith("efficientnet"):
        features.classifier[-1] = nn.Identity()
    else:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    return features


class SmallCNN(nn.Module):
    """A small convolutional classifier (about 24 k parameters at the default widths).

    Three stride-2 conv-BatchNorm-ReLU stages, global average pooling and a linear layer:
    the low-capacity end of the membership audit's model-size comparison, and a network
    that trains in seconds on a CPU (strided convolutions rather than pooling: a quarter of
    the work of the first layer at 64 px). BatchNorm like the torchvision models, so that
    DP-SGD replaces it in the same way (opacus' ModuleValidator.fix).
    """

    def __init__(self, n_classes: int, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU()]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def parameter_count(arch: str, n_classes: int) -> int:
    """The number of trainable parameters of ``build_model(arch, n_classes)`` (no weights read)."""
    return sum(p.numel() for p in build_model(arch, n_classes).parameters() if p.requires_grad)


def build_group_norm_model(arch: str, n_classes: int, pretrained: str | None = None) -> nn.Module:
    """:func:`build_model` with every BatchNorm replaced as opacus requires for DP-SGD
    (``opacus.validators.ModuleValidator.fix``: GroupNorm with min(32, C) groups), whose
    per-sample gradients do not mix the samples of a batch."""
    from opacus.validators import ModuleValidator  # only DP-SGD runs need opacus

    model = ModuleValidator.fix(build_model(arch, n_classes, pretrained))
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise ValueError(f"{arch} cannot be trained with DP-SGD after replacing BatchNorm: {errors[0]}")
    return model


def model_builder(builder_id: str):
    """The model builder a model.pt names (its ``parts["model"]``), so that a model trained
    with GroupNorm for DP-SGD is rebuilt with GroupNorm."""
    builders = {f"{f.__module__}.{f.__qualname__}": f for f in (build_model, build_group_norm_model)}
    if builder_id not in builders:
        raise ValueError(f"unknown model builder {builder_id!r}; known: {', '.join(builders)}")
    return builders[builder_id]
