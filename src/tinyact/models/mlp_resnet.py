"""``MLPResNetClassifier``: the paper's residual MLP head on a 1024-d latent (the KD student's classifier).

::

    z [B, in_dim] ─ Linear in_dim→dim ─► x [B, dim]
      ├─ MLPResBlock × depth:  x ← x + Dropout(FC2(Dropout(GELU(FC1(LayerNorm(x))))))
      │                        (FC1 dim→hidden, FC2 hidden→dim)
      ├─ LayerNorm ─► e [B, dim]            (the embedding: ``forward(z, return_embedding=True)``)
      └─ Linear dim→num_classes ─► logits [B, num_classes]

The same class serves as the classifier inside the end-to-end KD model and as the standalone MLP trained
on frozen latents (paper, "Standalone MLP classifier"), so both use identical layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class MLPResNetConfig:
    """Hyper-parameters of :class:`MLPResNetClassifier` (everything needed to rebuild it from a model file)."""

    in_dim: int = 1024
    num_classes: int = 400
    dim: int = 512
    depth: int = 4
    hidden: int | None = None
    dropout: float = 0.1

    @property
    def hidden_dim(self) -> int:
        """FC1 width: ``hidden``, or ``2 × dim`` when not given."""
        return self.hidden if self.hidden is not None else 2 * self.dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLPResNetConfig:
        return cls(**data)


class MLPResBlock(nn.Module):
    """Pre-norm residual MLP block: ``x + Dropout(FC2(Dropout(GELU(FC1(LayerNorm(x))))))``.

    Shapes: ``[B, dim] -> [B, dim]``.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop2(self.fc2(self.drop1(self.act(self.fc1(self.norm(x))))))


class MLPResNetClassifier(nn.Module):
    """Residual MLP classifier on latents.

    Args:
        in_dim: latent size (the autoencoder's ``latent_dim``, 1024 in the paper).
        num_classes: number of output classes.
        dim: width of the residual stream (default 512).
        depth: number of :class:`MLPResBlock` (default 4).
        hidden: FC1 width inside each block (default ``2 × dim``).
        dropout: dropout probability inside each block.

    ``forward(z)`` takes float ``[B, in_dim]`` and returns logits ``[B, num_classes]``; with
    ``return_embedding=True`` it returns ``(logits, embedding)`` where ``embedding`` is the final-LayerNorm
    output ``[B, dim]`` (what feature-level distillation aligns with the teacher).
    """

    def __init__(
        self,
        in_dim: int = 1024,
        num_classes: int = 400,
        dim: int = 512,
        depth: int = 4,
        hidden: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.config = MLPResNetConfig(in_dim, num_classes, dim, depth, hidden, dropout)
        self.proj = nn.Linear(in_dim, dim)
        self.blocks = nn.Sequential(*(MLPResBlock(dim, self.config.hidden_dim, dropout) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    @classmethod
    def from_config(cls, config: MLPResNetConfig) -> MLPResNetClassifier:
        return cls(**config.to_dict())

    @property
    def embedding_dim(self) -> int:
        return self.config.dim

    def forward(
        self, z: torch.Tensor, return_embedding: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if z.dim() != 2 or z.shape[1] != self.config.in_dim:
            raise ValueError(f"expected latents [B, {self.config.in_dim}], got shape {tuple(z.shape)}")
        embedding = self.norm(self.blocks(self.proj(z)))  # [B, in_dim] -> [B, dim]
        logits = self.head(embedding)  # [B, dim] -> [B, num_classes]
        return (logits, embedding) if return_embedding else logits
