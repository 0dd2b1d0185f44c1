"""``KDStudent``: the paper's knowledge-distillation student, an autoencoder with a classifier head on its latent.

::

    x normalised [B, T, 3, H, W] ─► encoder ─► z [B, latent] ─┬─► MLPResNet head ─► logits [B, C] (+ embedding [B, D])
                                                               ├─► decoder ─► x̂ [B, T, 3, H, W]
                                                               └─► feature(z or embedding, e_t) ─► scalar (optional)

``encode`` makes it usable wherever an encoder is expected (latent extraction). The optional ``feature``
module is the feature-KD term's learned projection (:class:`tinyact.training.distill.FeatureDistillation`):
it lives here because its weights train and checkpoint with the student's.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from tinyact.data.transforms import NormStats
from tinyact.models.autoencoder3d import VideoAutoEncoder3D
from tinyact.models.mlp_resnet import MLPResNetClassifier

FeatureSource = Literal["latent", "head"]


class KDStudent(nn.Module):
    """Autoencoder + MLPResNet head (+ feature-KD projection).

    Args:
        autoencoder: the encoder/decoder; its ``config.normalization`` is the student's input normalisation.
        head: classifier on the latent ``z``.
        feature: ``feature(student_feature, teacher_embedding) -> scalar loss`` or ``None`` (no feature KD).
        feature_source: which student feature ``feature`` sees: the latent ``z`` (what the cloud receives) or
            the head's embedding.
    """

    def __init__(self, autoencoder: VideoAutoEncoder3D, head: MLPResNetClassifier, feature: nn.Module | None,
                 feature_source: FeatureSource = "latent") -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.head = head
        self.feature = feature
        self.feature_source = feature_source

    @property
    def normalization(self) -> NormStats:
        """The statistics the student's input is normalised with: its autoencoder's (as extraction and the edge do)."""
        return self.autoencoder.config.normalization

    def encoder_modules(self) -> list[nn.Module]:
        """The modules a ``frozen`` set-up fixes: the autoencoder's encoder."""
        return self.autoencoder.encoder_modules()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B, T, 3, H, W]`` -> latent ``[B, latent_dim]``."""
        return self.autoencoder.encode(x)

    def forward(self, x: torch.Tensor, teacher_embedding: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``x`` normalised ``[B, T, 3, H, W]`` -> ``logits`` ``[B, C]``, ``z`` ``[B, latent]``, ``recon``
        ``[B, T, 3, H, W]`` (and ``feature``, the feature-KD loss, when a teacher embedding is given)."""
        z, recon = self.autoencoder(x)
        logits, embedding = self.head(z, return_embedding=True)
        out = {"logits": logits, "z": z, "recon": recon}
        if self.feature is not None and teacher_embedding is not None:
            source = z if self.feature_source == "latent" else embedding
            out["feature"] = self.feature(source, teacher_embedding)
        return out
