"""Known-answer tests of readrace.transforms.perturbations on synthetic images with known spectra."""

from __future__ import annotations

import math

import pytest
import torch

from readrace.transforms.perturbation_ids import PerturbationId, parse_perturbation_id
from readrace.transforms.perturbations import KNOWN_FORMS, Perturbation, parse_perturbation

H = W = 64


def cosine(ky: int, kx: int, height: int = H, width: int = W) -> torch.Tensor:
    """cos(2 pi (ky y / H + kx x / W)): a pure frequency at bin (ky, kx), i.e. that many
    cycles per image along each axis."""
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    return torch.cos(2 * math.pi * (ky * y / height + kx * x / width))


def as_batch(image: torch.Tensor) -> torch.Tensor:
    """Rescale a 2-D image to [0, 1] and make it a (1, 1, H, W) batch."""
    image = (image - image.min()) / (image.max() - image.min())
    return image[None, None]


def amplitude(batch: torch.Tensor, ky: int, kx: int) -> float:
    """|FFT| / (H W) of the first image at bin (ky, kx): 0.25 for (cos + 1) / 2 at its k."""
    image = batch[0, 0].double()
    height, width = image.shape
    return (torch.fft.fft2(image).abs() / (height * width))[ky % height, kx % width].item()


@pytest.fixture
def two_cosines() -> torch.Tensor:
    # k=3 along x and k=20 along y; both reach exactly +-1 on the 64 grid, so after the
    # filters' min-max rescale a surviving single cosine is exactly (cos + 1) / 2.
    return as_batch(cosine(0, 3) + cosine(20, 0))


@pytest.mark.parametrize(
    ("pid", "keeps_3", "keeps_20"),
    [
        ("lpf-d10", True, False),
        ("hpf-d10", False, True),
        ("bpf-d10-50", False, True),
        ("notch-d10-50", True, False),
        ("bpf-d2-10", True, False),
        ("notch-d2-10", False, True),
    ],
)
def test_fourier_filters_keep_and_remove_the_right_cosine(pid, keeps_3, keeps_20, two_cosines):
    out = parse_perturbation(pid)(two_cosines)
    assert amplitude(out, 0, 3) == pytest.approx(0.25 if keeps_3 else 0.0, abs=1e-9)
    assert amplitude(out, 20, 0) == pytest.approx(0.25 if keeps_20 else 0.0, abs=1e-9)
    # The survivor is the only frequency left (apart from the mean of the rescaled image).
    spectrum = torch.fft.fft2(out[0, 0]).abs() / (H * W)
    spectrum[0, 0] = 0
    assert spectrum.sum().item() == pytest.approx(0.5, abs=1e-9)
    assert out.min().item() == pytest.approx(0.0) and out.max().item() == pytest.approx(1.0)


def test_rescale_is_per_image(two_cosines):
    # Two images in one batch with different contrast come out with identical content.
    batch = torch.cat([two_cosines, 0.1 * two_cosines + 0.3])
    out = parse_perturbation("lpf-d10")(batch)
    torch.testing.assert_close(out[0], out[1], atol=1e-12, rtol=0)


@pytest.mark.parametrize(("ky", "kx"), [(0, 5), (5, 0), (3, 4), (-4, 3)])
def test_d_is_a_diameter_and_the_mask_is_a_circle(ky, kx):
    # All four frequencies have radius exactly 5 cycles per image: diameter 10.
    image = as_batch(cosine(ky, kx) + cosine(1, 0))  # k=1 keeps the output non-constant
    assert amplitude(parse_perturbation("lpf-d11")(image), ky, kx) > 0.1
    assert amplitude(parse_perturbation("lpf-d10")(image), ky, kx) > 0.1  # on the circle: kept
    assert amplitude(parse_perturbation("lpf-d9")(image), ky, kx) < 1e-9
    assert amplitude(parse_perturbation("hpf-d10")(image), ky, kx) < 1e-9
    assert amplitude(parse_perturbation("hpf-d9")(image), ky, kx) > 0.1


def test_non_square_radius_is_in_cycles_per_image_along_each_axis():
    # 5 cycles along the 32-pixel axis and 5 cycles along the 64-pixel axis: both radius 5.
    image = cosine(5, 0, 32, 64) + cosine(0, 5, 32, 64) + cosine(1, 0, 32, 64)
    batch = as_batch(image)
    kept = parse_perturbation("lpf-d11")(batch)
    removed = parse_perturbation("lpf-d9")(batch)
    assert kept.shape == (1, 1, 32, 64)
    for ky, kx in [(5, 0), (0, 5)]:
        assert amplitude(kept, ky, kx) == pytest.approx(1 / 12)  # 3 cosines spanning [-3, 3]
        assert amplitude(removed, ky, kx) < 1e-9


def test_mask_is_cached_per_grid_and_device():
    lpf = parse_perturbation("lpf-d10")
    first = lpf.mask(64, 64, "cpu")
    assert lpf.mask(64, 64, "cpu") is first
    assert lpf.mask(32, 64, "cpu") is not first
    # Centred spectrum: DC at (H // 2, W // 2); the circle of diameter 10 holds the
    # 81 bins with ky^2 + kx^2 <= 25.
    assert first[32, 32] == 1 and first[32, 37] == 1 and first[32, 38] == 0
    assert int(first.sum()) == 81


@pytest.mark.parametrize("pid", ["hpf-d10", "bpf-d10-50", "lpf-d10", "notch-d10-50"])
def test_constant_image_gives_zeros_without_nan(pid):
    out = parse_perturbation(pid)(torch.full((2, 1, H, W), 0.37))
    assert not torch.isnan(out).any()
    assert torch.equal(out, torch.zeros_like(out))


def test_noise_is_reproducible_with_the_same_generator():
    x = torch.full((3, 1, 32, 32), 0.5)
    noise = parse_perturbation("noise-0.1")
    a = noise(x, generator=torch.Generator().manual_seed(7))
    b = noise(x, generator=torch.Generator().manual_seed(7))
    c = noise(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # Standard deviation in intensity units (no clamping happens around 0.5 at 5 sigma).
    assert (a - x).std().item() == pytest.approx(0.1, rel=0.05)
    clamped = noise(torch.zeros(1, 1, 32, 32), generator=torch.Generator().manual_seed(0))
    assert clamped.min().item() == 0.0 and clamped.max().item() > 0.0


def test_res_output_has_only_low_frequencies():
    x = torch.rand(4, 1, H, W, generator=torch.Generator().manual_seed(0))
    out = parse_perturbation("res-8")(x)
    power = torch.fft.fft2(out[:, 0]).abs() ** 2
    power[:, 0, 0] = 0
    k = torch.fft.fftfreq(W, 1 / W).abs()
    above_nyquist_of_8 = (k[:, None] > 4) | (k[None, :] > 4)
    above_8 = (k[:, None] > 8) | (k[None, :] > 8)
    # White noise has 98% of its power above 4 cycles per image; after res-8 only the
    # bilinear interpolation's small images remain there.
    assert (power[:, above_nyquist_of_8].sum() / power.sum()).item() < 0.15
    assert (power[:, above_8].sum() / power.sum()).item() < 0.05


def test_res_reproduces_a_linear_ramp_between_the_outer_block_centres():
    # Area-averaging a ramp gives the ramp's values at the 8 block centres (pixels 3.5,
    # 11.5, ..., 59.5); bilinear interpolation of a linear function is exact between them
    # and holds the end values outside them.
    ramp = (torch.arange(W, dtype=torch.float64) / (W - 1)).expand(1, 1, H, W)
    out = parse_perturbation("res-8")(ramp)
    torch.testing.assert_close(out[..., 4:60], ramp[..., 4:60])
    torch.testing.assert_close(out[..., :4], ramp[..., 3:4].add(0.5 / (W - 1)).expand(1, 1, H, 4))
    # N equal to the grid is the identity; N above it is refused.
    torch.testing.assert_close(parse_perturbation("res-64")(ramp), ramp)
    with pytest.raises(ValueError, match="res-128"):
        parse_perturbation("res-128")(ramp)


def test_blur_known_answers():
    blur = parse_perturbation("blur-2")
    assert blur.radius == 6
    kernel = blur.kernel(dtype=torch.float64)
    assert kernel.shape == (13,) and kernel.sum().item() == pytest.approx(1.0)
    assert kernel[6] / kernel[8] == pytest.approx(math.exp(0.5))  # offset 2 = one sigma
    # A constant image stays constant (edges replicated, kernel normalised).
    flat = torch.full((1, 1, 32, 32), 0.4)
    torch.testing.assert_close(blur(flat), flat)
    # A centred impulse becomes the outer product of the 1-D kernel.
    impulse = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    impulse[0, 0, 16, 16] = 1
    expected = torch.zeros_like(impulse)
    expected[0, 0, 10:23, 10:23] = kernel[:, None] * kernel[None, :]
    torch.testing.assert_close(blur(impulse), expected)
    # Away from the borders a cosine is scaled by the kernel's frequency response, which
    # is close to the continuous Gaussian's exp(-2 pi^2 sigma^2 f^2) (f in cycles/pixel).
    omega = 2 * math.pi * 4 / W
    offsets = torch.arange(-6, 7, dtype=torch.float64)
    gain = (kernel * torch.cos(omega * offsets)).sum().item()
    assert gain == pytest.approx(math.exp(-2 * math.pi**2 * 2**2 * (4 / W) ** 2), rel=0.02)
    wave = as_batch(cosine(0, 4))  # (cos + 1) / 2
    expected_wave = 0.5 + 0.5 * gain * cosine(0, 4)
    torch.testing.assert_close(blur(wave)[0, 0, :, 6:-6], expected_wave[:, 6:-6])


def test_boneclip_clips_at_f_and_rescales():
    x = torch.tensor([0.0, 0.3, 0.6, 0.9, 1.0]).view(1, 1, 1, 5)
    out = parse_perturbation("boneclip-0.6")(x)
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 0.5, 1.0, 1.0, 1.0]))


def test_identity():
    x = torch.rand(2, 1, 8, 8)
    assert parse_perturbation("none")(x) is x


ALL_IDS = [
    "none", "lpf-d10", "hpf-d100", "bpf-d10-50", "notch-d10-50",
    "res-32", "noise-0.1", "blur-2", "blur-0.5", "boneclip-0.6",
]  # fmt: skip


@pytest.mark.parametrize("pid", ALL_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_shape_dtype_device_and_range_are_preserved(pid, dtype):
    x = torch.rand(3, 1, 48, 40, generator=torch.Generator().manual_seed(2)).to(dtype)
    out = parse_perturbation(pid)(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    assert not torch.isnan(out).any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("pid", ALL_IDS)
def test_cuda_matches_cpu(pid):
    x = torch.rand(3, 1, 48, 40, generator=torch.Generator().manual_seed(2))
    perturb = parse_perturbation(pid)
    gpu = perturb(x.cuda(), generator=torch.Generator("cuda").manual_seed(0))
    assert gpu.device.type == "cuda" and gpu.dtype == x.dtype
    if not pid.startswith("noise"):
        torch.testing.assert_close(gpu.cpu(), perturb(x), atol=1e-5, rtol=0)


def test_every_known_form_round_trips():
    examples = {
        "none": "none", "lpf-d{D}": "lpf-d10", "hpf-d{D}": "hpf-d100",
        "bpf-d{D1}-{D2}": "bpf-d10-50", "notch-d{D1}-{D2}": "notch-d10-50",
        "res-{N}": "res-32", "noise-{S}": "noise-0.1", "blur-{S}": "blur-2",
        "boneclip-{F}": "boneclip-0.6", "patch-{R}-{C}": "patch-0-2", "occlude-{R}-{C}": "occlude-1-1",
    }  # fmt: skip
    masked = {"lung", "nonlung", "occlude-salient"}  # built with their masks (test_localisation.py)
    assert set(examples) | masked == set(KNOWN_FORMS)
    for pid in examples.values():
        perturbation = parse_perturbation(pid)
        assert isinstance(perturbation, Perturbation)
        assert perturbation.id == pid
        assert parse_perturbation(perturbation.id).id == pid


@pytest.mark.parametrize(
    ("pid", "reason"),
    [
        ("lpf-d10x", "positive integer"),
        ("lpf-d0", "positive integer"),
        ("lpf-d-3", "positive integer"),
        ("hpf-d010", "leading zeros"),
        ("hpf-10", "diameter"),
        ("bpf-d50-10", "D1 must be smaller than D2"),
        ("notch-d10", "D1"),
        ("res-0", "positive integer"),
        ("noise-0", "positive"),
        ("noise-0.10", "redundant zeros"),
        ("noise-1e-3", "plain decimal"),
        ("blur-2.0", "redundant zeros"),
        ("boneclip-1", "between 0 and 1"),
        ("boneclip-0", "between 0 and 1"),
        ("patch-4", "R, C the row and column"),
        ("occlude-4", "R, C the row and column"),
        ("patch-3-0", "must be 0, 1 or 2"),
        ("occlude-01-1", "must be 0, 1 or 2"),
        ("lungs", "unknown"),
        ("sharpen-2", "unknown"),
        ("NONE", "unknown"),
        ("", "unknown"),
    ],
)
def test_bad_ids_raise_value_error_naming_the_id(pid, reason):
    with pytest.raises(ValueError) as info:
        parse_perturbation(pid)
    message = str(info.value)
    assert repr(pid) in message and reason in message
    assert "lpf-d{D}" in message  # lists the known forms
    # Config validation checks ids with the torch-free parser: the same message.
    with pytest.raises(ValueError) as info:
        parse_perturbation_id(pid)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        ("none", PerturbationId("none", ())),
        ("lpf-d10", PerturbationId("lpf", (10,))),
        ("hpf-d100", PerturbationId("hpf", (100,))),
        ("bpf-d10-50", PerturbationId("bpf", (10, 50))),
        ("notch-d25-50", PerturbationId("notch", (25, 50))),
        ("res-32", PerturbationId("res", (32,))),
        ("noise-0.1", PerturbationId("noise", (0.1,))),
        ("blur-2", PerturbationId("blur", (2.0,))),
        ("boneclip-0.6", PerturbationId("boneclip", (0.6,))),
    ],
)
def test_id_grammar_gives_name_and_parameters(pid, expected):
    parsed = parse_perturbation_id(pid)
    assert parsed == expected
    assert all(type(a) is type(b) for a, b in zip(parsed.params, expected.params))  # ints stay ints


def test_non_string_id_is_a_type_error():
    with pytest.raises(TypeError, match="a perturbation id is a string, got int"):
        parse_perturbation(10)
