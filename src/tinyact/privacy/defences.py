"""What travels, and what a defender can do to it: wire round trips and latent-space defences.

:func:`wire_roundtrip` passes every latent through :func:`tinyact.wire.encode_latent` /
:func:`~tinyact.wire.decode_latent` exactly as the edge and the cloud do, so attacks are evaluated on the
values an eavesdropper actually sees.

Defences applied on the edge before sending (the cloud classifier is then trained on defended latents too):

- ``noise:<σ>``: add Gaussian noise of standard deviation ``σ · s``, where ``s`` is the mean per-dimension
  standard deviation of the clean latents of the defender's calibration set (so ``σ = 1`` is noise as large
  as the signal's spread, an SNR of about 0 dB per dimension); a fresh draw for every clip;
- ``quant:<bits>``: symmetric per-vector quantisation to ``2^(bits-1) - 1`` levels each side of zero
  (``bits = 8`` is the wire's int8; ``bits = 2`` leaves {-1, 0, +1} × scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyact.wire import WireDtype, decode_latent, encode_latent


def wire_roundtrip(latents: np.ndarray, dtype: WireDtype) -> np.ndarray:
    """Encode and decode each row of ``latents`` ``[N, D]`` with the wire format ``dtype`` -> float32 ``[N, D]``."""
    return np.stack([decode_latent(encode_latent(row, dtype)) for row in np.asarray(latents, np.float32)])


def quantize_per_vector(latents: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric per-row quantisation to ``bits`` bits (``2^(bits-1) - 1`` levels each side), dequantised."""
    if bits < 2:
        raise ValueError("bits must be >= 2")
    x = np.asarray(latents, dtype=np.float32)
    levels = 2 ** (bits - 1) - 1
    peak = np.max(np.abs(x), axis=1, keepdims=True)
    scale = np.where(peak > 0, peak / levels, 1.0).astype(np.float32)
    return (np.clip(np.round(x / scale), -levels, levels) * scale).astype(np.float32)


@dataclass(frozen=True)
class Defence:
    """One defence setting: ``kind`` ``none``, ``noise`` (strength σ) or ``quant`` (strength = bits)."""

    kind: str
    strength: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> Defence:
        """``"none"``, ``"noise:0.5"`` or ``"quant:3"``."""
        if spec == "none":
            return cls("none")
        kind, _, value = spec.partition(":")
        if kind not in {"noise", "quant"} or not value:
            raise ValueError(f"defence {spec!r}: expected none, noise:<sigma> or quant:<bits>")
        return cls(kind, float(value))

    @property
    def name(self) -> str:
        if self.kind == "none":
            return "none"
        return f"noise σ={self.strength:g}" if self.kind == "noise" else f"quant {int(self.strength)} bit"

    def apply(self, latents: np.ndarray, scale: float, seed: int) -> np.ndarray:
        """Defended copy of ``latents`` ``[N, D]``; ``scale`` is :func:`latent_scale` of the calibration set."""
        x = np.asarray(latents, dtype=np.float32)
        if self.kind == "none":
            return x.copy()
        if self.kind == "noise":
            rng = np.random.default_rng(seed)
            return (x + rng.normal(0.0, self.strength * scale, size=x.shape)).astype(np.float32)
        return quantize_per_vector(x, int(self.strength))


def latent_scale(latents: np.ndarray) -> float:
    """Mean per-dimension standard deviation of ``latents`` ``[N, D]`` (the unit of the noise defence)."""
    return float(np.mean(np.std(np.asarray(latents, np.float64), axis=0)))
