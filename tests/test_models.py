"""readrace.models: torchvision backbones adapted to one-channel images."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from readrace.models import ARCHITECTURES, build_model


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_takes_one_channel_and_returns_n_classes(arch):
    torch.manual_seed(0)
    n_classes = 2 if arch.startswith("dense") else 3
    model = build_model(arch, n_classes).eval()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 1
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, n_classes)
    assert torch.isfinite(out).all()


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50, densenet121, efficientnet_b0"):
        build_model("vgg16", 2)


def _offline(monkeypatch, torch_home):
    """Point TORCH_HOME at ``torch_home`` and route HTTPS to a closed local port (no network)."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_imagenet_weights_offline_raise_a_clear_error(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError) as info:
        build_model("resnet18", 3, pretrained="imagenet")
    message = str(info.value)
    assert "resnet18" in message
    assert "offline" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message


def test_imagenet_weights_from_the_cache_sum_the_rgb_kernels(monkeypatch, tmp_path):
    # A stand-in for the ImageNet file at the path torchvision reads it from: random weights,
    # but the real loading code path (no download happens when the file is there).
    _offline(monkeypatch, tmp_path)
    torch.manual_seed(1)
    rgb = torchvision.models.resnet18()
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(rgb.state_dict(), checkpoints / "resnet18-f37072fd.pth")

    model = build_model("resnet18", 2, pretrained="imagenet")

    assert torch.equal(model.conv1.weight, rgb.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    assert model.fc.out_features == 2
    # Known answer: on a grey image the one-channel network computes what the RGB network
    # computes on that image copied into R, G and B (compared before the new final layer).
    model.fc, rgb.fc = nn.Identity(), nn.Identity()
    model.eval(), rgb.eval()
    grey = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(grey), rgb(grey.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)


def test_imagenet_densenet_weights_load_through_torchvisions_key_mapping(monkeypatch, tmp_path):
    # The DenseNet file predates PyTorch 0.4: legacy key names ("norm.1") that torchvision
    # remaps on load, and no BatchNorm batch counters.
    _offline(monkeypatch, tmp_path)
    torch.manual_seed(2)
    rgb = torchvision.models.densenet121()
    legacy = {k.replace("norm1", "norm.1").replace("conv1", "conv.1"): v
              for k, v in rgb.state_dict().items() if not k.endswith("num_batches_tracked")}
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(legacy, checkpoints / "densenet121-a639ec97.pth")

    model = build_model("densenet121", 3, pretrained="imagenet")

    assert torch.equal(model.features.conv0.weight, rgb.features.conv0.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.features.denseblock1.denselayer1.norm1.weight,
                       rgb.features.denseblock1.denselayer1.norm1.weight)
    assert model.classifier.out_features == 3
