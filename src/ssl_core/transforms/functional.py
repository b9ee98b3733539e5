"""Pure tensor functions of the augmentations, on whole batches.

Images are float N×3×H×W in [0, 1] unless said otherwise; a per-image factor is an N-tensor.
They follow torchvision's definitions (grayscale uses ITU-R 601 luma; blur is a separable
Gaussian with reflect padding) and are tested against its functional ops image by image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LUMA = (0.2989, 0.587, 0.114)


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Any decoded image as uint8 RGB: grayscale is repeated, alpha is dropped, 16 bits
    (torchvision decodes 16-bit PNGs to uint16) are scaled to 8: round(value · 255 / 65535)."""
    if image.dtype == torch.uint16:  # 65535 = 255 · 257; value / 257 is never half-way
        image = (image.to(torch.int32) + 128).div_(257, rounding_mode="floor").to(torch.uint8)
    if image.dim() == 2:
        image = image.unsqueeze(0)
    channels = image.shape[0]
    if channels == 3:
        return image
    if channels == 1:
        return image.expand(3, -1, -1).contiguous()
    if channels == 2:  # gray + alpha
        return image[:1].expand(3, -1, -1).contiguous()
    if channels == 4:
        return image[:3].contiguous()
    raise ValueError(f"cannot make RGB from an image with {channels} channels")


def blur_kernel_size(image_size: tuple[int, int]) -> int:
    """About a tenth of the image side, odd, at least 3 (the SimCLR paper's choice)."""
    return max(3, int(0.1 * min(image_size)) // 2 * 2 + 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """N×1×H×W luma."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """In place: x · factor, clamped to [0, 1]."""
    return x.mul_(_per_image(factor)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """In place: blend with the image's mean gray level, mean + factor · (x - mean)."""
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return x.sub_(mean).mul_(_per_image(factor)).add_(mean).clamp_(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """In place: blend with the image's grayscale version."""
    gray = grayscale(x)
    return x.sub_(gray).mul_(_per_image(factor)).add_(gray).clamp_(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` (fraction of a turn) in HSV space, as torchvision does."""
    r, g, b = x.unbind(1)
    value = torch.maximum(torch.maximum(r, g), b)  # faster than a max over the channel dim
    delta = value - torch.minimum(torch.minimum(r, g), b)
    gray = delta == 0
    sat = delta / torch.where(gray, torch.ones_like(value), value)
    delta = torch.where(gray, torch.ones_like(delta), delta)
    hue = torch.where(
        value == r,
        (g - b) / delta,
        torch.where(value == g, 2.0 + (b - r) / delta, 4.0 + (r - g) / delta),
    )
    hue = torch.where(gray, torch.zeros_like(hue), hue)
    hue = (hue / 6.0 + shift.view(-1, 1, 1)).remainder(1.0) * 6.0
    # HSV -> RGB without branches: channel c is v - v·s·clamp(min(k, 4 - k), 0, 1) with
    # k = (n_c + 6h) mod 6 and n = 5, 3, 1 for R, G, B.
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1)
    k = (n + hue.unsqueeze(1)).remainder(6.0)
    weight = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return value.unsqueeze(1) * (1.0 - sat.unsqueeze(1) * weight)


def gaussian_kernels(sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """N×K normalised 1-D Gaussians, one per sigma."""
    half = (kernel_size - 1) / 2
    x = torch.linspace(-half, half, kernel_size, device=sigmas.device)
    pdf = torch.exp(-0.5 * (x.view(1, -1) / sigmas.view(-1, 1)) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigmas: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Each image blurred with its own sigma: one grouped separable convolution."""
    n, c, h, w = x.shape
    kernels = gaussian_kernels(sigmas, kernel_size).repeat_interleave(c, dim=0)  # (n·c)×K
    pad = kernel_size // 2
    flat = x.reshape(1, n * c, h, w)
    flat = F.pad(flat, (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, kernels.view(n * c, 1, 1, kernel_size), groups=n * c)
    flat = F.conv2d(flat, kernels.view(n * c, 1, kernel_size, 1), groups=n * c)
    return flat.view(n, c, h, w)


def solarize(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert the pixels at or above ``threshold``, as torchvision does on float images."""
    return torch.where(x >= threshold, 1 - x, x)
