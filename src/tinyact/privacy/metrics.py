"""Image-quality metrics for reconstruction attacks: PSNR and SSIM, in torch (no extra dependency).

Both take clips or frames in ``[0, 1]`` with shape ``[..., 3, H, W]`` (e.g. ``[N, T, 3, H, W]``) and return one
number per leading item (per clip), so a table can report the mean and the spread over clips.

SSIM follows Wang, Bovik, Sheikh & Simoncelli (2004), "Image quality assessment: from error visibility to
structural similarity", with their defaults: an 11×11 Gaussian window of σ = 1.5, ``K1 = 0.01``,
``K2 = 0.03``, data range 1. It is computed per colour channel and per frame on the *valid* part of the image
(no padding; a 64×64 frame gives a 54×54 SSIM map), averaged over the map, the channels and the frames of a
clip. This is the convention of ``pytorch_msssim``'s ``ssim`` and of MATLAB's reference code; scikit-image's
``structural_similarity(gaussian_weights=True)`` pads and crops instead and can differ in the third decimal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() < 3:
        raise ValueError(f"expected [..., C, H, W], got shape {tuple(pred.shape)}")


def mse_per_item(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per leading item: ``[N, ...] -> [N]`` (float64)."""
    _check_pair(pred, target)
    diff = pred.double() - target.double()
    return diff.pow(2).flatten(1).mean(dim=1)


def psnr_per_item(pred: torch.Tensor, target: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """PSNR (dB) per leading item of ``[N, ...]`` data in ``[0, peak]``: ``[N]``; ``inf`` where identical."""
    mse = mse_per_item(pred, target)
    return 10.0 * torch.log10(peak**2 / mse)  # mse 0 -> inf, as a PSNR of identical images should be


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian ``[size]`` (float64); SSIM applies it separably along H and W."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Valid separable Gaussian filter of ``[M, 1, H, W]``."""
    size = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, size))  # along W
    return F.conv2d(x, window.view(1, 1, size, 1))  # along H


def ssim_per_item(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    batch: int = 256,
) -> torch.Tensor:
    """Mean SSIM per leading item of ``[N, ..., C, H, W]`` data: ``[N]`` (float64), 1.0 where identical.

    Frames smaller than the window are refused (a valid-only SSIM map would be empty).
    """
    _check_pair(pred, target)
    h, w = pred.shape[-2:]
    if h < window or w < window:
        raise ValueError(f"frames {h}×{w} are smaller than the {window}×{window} SSIM window")
    n = pred.shape[0]
    g = gaussian_window(window, sigma)  # float64: E[x²] - E[x]² cancels badly in float32 (1e-4 off on flat images)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    # Every (item, frame, channel) plane becomes one single-channel image: [N, ..., C, H, W] -> [M, 1, H, W].
    x_all = pred.reshape(n, -1, h, w)
    y_all = target.reshape(n, -1, h, w)
    planes = x_all.shape[1]
    out = torch.empty(n, dtype=torch.float64)
    step = max(1, batch // planes)
    for start in range(0, n, step):
        x = x_all[start : start + step].reshape(-1, 1, h, w).double()
        y = y_all[start : start + step].reshape(-1, 1, h, w).double()
        mu_x, mu_y = _blur(x, g), _blur(y, g)
        sxx = _blur(x * x, g) - mu_x**2
        syy = _blur(y * y, g) - mu_y**2
        sxy = _blur(x * y, g) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
        count = x.shape[0] // planes
        out[start : start + count] = ssim_map.reshape(count, -1).mean(dim=1)
    return out


def reconstruction_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Summary of a reconstruction of ``[N, T, 3, H, W]`` clips in ``[0, 1]``: mean/std of per-clip PSNR and
    SSIM, and the PSNR of the pooled MSE (which does not let a few near-perfect clips dominate the mean)."""
    p = psnr_per_item(pred, target)
    s = ssim_per_item(pred, target)
    pooled = float(mse_per_item(pred, target).mean())
    finite = p[torch.isfinite(p)]
    return {
        "psnr": float(p.mean()),
        "psnr_std": float(finite.std()) if finite.numel() > 1 else 0.0,
        "psnr_pooled": float("inf") if pooled == 0 else float(10 * torch.log10(torch.tensor(1.0 / pooled))),
        "ssim": float(s.mean()),
        "ssim_std": float(s.std()) if s.numel() > 1 else 0.0,
        "clips": int(pred.shape[0]),
    }
