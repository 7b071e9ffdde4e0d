"""Where and in what precision the network runs, and the fixed input normalisation.

- GPU: bfloat16 autocast, channels-last memory format, cuDNN autotuning. CPU: float32
  throughout; the kernels used are deterministic for a given thread count.
- Inputs: pixels in [0, 1] after the transforms, then ``(x - 0.5) / 0.25``. Fixed rather
  than dataset statistics so that a model sees identically scaled inputs on every external
  test set and no statistic is computed from data; the values are near ImageNet's grey-level
  mean and spread (about 0.45 and 0.23), which suits the pretrained first convolution.
"""

from __future__ import annotations

import torch
from torch import nn

NORM_MEAN = 0.5
NORM_STD = 0.25


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """The fixed input normalisation ``(x - NORM_MEAN) / NORM_STD``."""
    return (x - NORM_MEAN) / NORM_STD


def autocast(device: torch.device) -> torch.autocast:
    """bfloat16 autocast on CUDA (float32's exponent range: no loss scaling); off on CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def to_model_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Normalised, and channels-last on CUDA, the layout its convolution kernels prefer."""
    x = normalize(x)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``; on CUDA, channels-last with cuDNN autotuning."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    return model
