"""Knowledge-distillation losses: the paper's composite loss, its β warm-up, and feature-level KD.

The paper's student loss (Hinton et al. logit KD plus the autoencoder's reconstruction term)::

    L = α · CE(z_s, y)  +  β · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))  +  γ · MSE(x̂, x)

with α = β = γ = 0.5 and T = 4 by default. KL is taken *from the teacher to the student* (the teacher's
softened distribution is the target) with ``batchmean`` reduction, i.e. summed over classes and averaged over
the batch; the ``T²`` factor keeps the soft-target gradients on the same scale as the CE gradients when T
changes (Hinton et al., §2). The reconstruction target ``x`` is the clip in ``[0, 1]`` (the decoder ends in a
sigmoid), while the encoder's input is the ImageNet-normalised clip.

Beyond the paper, :class:`FeatureDistillation` adds ``δ · ‖P(e_s) − e_t‖²`` (or a cosine distance) between
the student's embedding through a learned projection ``P`` and the teacher's embedding.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tinyact.errors import TinyActError


def beta_schedule(epoch: int, warmup_epochs: int, beta: float) -> float:
    """β for 0-based ``epoch``: a linear ramp from 0 over the first ``warmup_epochs``, then ``beta``.

    ``beta_schedule(0, 20, 0.5) == 0.0``, ``beta_schedule(10, 20, 0.5) == 0.25``, ``beta_schedule(e, 20, 0.5)
    == 0.5`` for ``e >= 20``; ``warmup_epochs <= 0`` means no warm-up.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if warmup_epochs <= 0 or epoch >= warmup_epochs:
        return float(beta)
    return float(beta) * epoch / warmup_epochs


def kd_kl_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``KL(softmax(z_t/T) ‖ softmax(z_s/T))`` with ``batchmean`` reduction (no T² factor).

    Both logits are float ``[B, C]`` over the same classes; the teacher side carries no gradient.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ; "
            "map the teacher's classes onto the dataset's first (tinyact.teachers.map_labels)"
        )
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / temperature, dim=1)
    # kl_div(input=log q, target=log p, log_target=True) = Σ p (log p − log q): KL(teacher ‖ student).
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)


class DistillationLoss(nn.Module):
    """The paper's composite KD loss.

    Args:
        alpha: weight of the cross-entropy with the ground-truth labels.
        beta: weight of the distillation term (the value after warm-up; set ``loss_fn.beta`` each epoch from
            :func:`beta_schedule`, or pass ``beta=`` per call).
        gamma: weight of the reconstruction MSE.
        temperature: softening temperature T (> 0).

    Call as ``loss_fn(student_logits, teacher_logits, labels, reconstruction, target)``:

    - ``student_logits`` float ``[B, C]``; ``teacher_logits`` float ``[B, C]`` on the same classes, or ``None``
      (no teacher: the ``kd`` term is 0, which gives the CE-only baseline);
    - ``labels`` int64 ``[B]``;
    - ``reconstruction`` and ``target`` float ``[B, T, 3, H, W]`` with ``target`` in ``[0, 1]``, or both
      ``None`` (classifier-only training: ``recon`` is 0).

    Returns a dict of scalar tensors: ``total`` (the weighted sum, differentiable), ``ce``, ``kd``
    (``T² · KL``, the term β multiplies) and ``recon`` (the MSE), the last three unweighted.
    """

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, gamma: float = 0.5, temperature: float = 4.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise TinyActError(f"distillation temperature must be > 0, got {temperature}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.temperature = float(temperature)
        self._target_checked = False

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, temperature={self.temperature}"

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
        reconstruction: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        *,
        beta: float | None = None,
    ) -> dict[str, torch.Tensor]:
        beta = self.beta if beta is None else float(beta)
        zero = student_logits.new_zeros((), dtype=torch.float32)
        ce = F.cross_entropy(student_logits.float(), labels)
        if teacher_logits is None:
            kd = zero
        else:
            t = self.temperature
            kd = t * t * kd_kl_divergence(student_logits, teacher_logits.to(student_logits.device), t)
        if (reconstruction is None) != (target is None):
            raise ValueError("pass both reconstruction and target, or neither")
        if reconstruction is None or target is None:
            recon = zero
        else:
            if not self._target_checked:
                # Once per loss object: a normalised target (values < 0) is the classic silent mistake here.
                low, high = float(target.min()), float(target.max())
                if low < -1e-3 or high > 1 + 1e-3:
                    raise TinyActError(
                        f"reconstruction target must be the clip in [0, 1] (got values in [{low:.2f}, {high:.2f}]); "
                        "pass tinyact.data.transforms.to_unit(clips), not the normalised encoder input"
                    )
                self._target_checked = True
            recon = F.mse_loss(reconstruction.float(), target.float())
        total = self.alpha * ce + beta * kd + self.gamma * recon
        return {"total": total, "ce": ce, "kd": kd, "recon": recon}


FeatureLossKind = Literal["mse", "cosine"]


class FeatureDistillation(nn.Module):
    """Feature-level KD (the δ term): distance between ``P(e_s)`` and the teacher embedding ``e_t``.

    Args:
        student_dim: student embedding size (``MLPResNetClassifier.embedding_dim``).
        teacher_dim: teacher embedding size (``Teacher.embedding_dim``).
        kind: ``"mse"`` – mean squared error over batch and features (``‖P(e_s) − e_t‖²`` divided by
            ``B · teacher_dim``, so δ does not depend on the teacher's width); ``"cosine"`` –
            ``mean(1 − cos(P(e_s), e_t))``.
        normalize_teacher: standardise each teacher embedding over its features (zero mean, unit variance,
            no learned scale) before the MSE, because teacher embeddings come on arbitrary scales (a ViT's
            pre-logits can be in the tens) and would otherwise swamp the other terms. Ignored for cosine.

    ``P`` is a learned ``Linear(student_dim, teacher_dim)``; optimise its parameters with the student's.
    ``forward(student_embedding [B, student_dim], teacher_embedding [B, teacher_dim])`` returns the unweighted
    scalar loss; the trainer multiplies it by δ.
    """

    def __init__(
        self, student_dim: int, teacher_dim: int, kind: FeatureLossKind = "mse", normalize_teacher: bool = True
    ) -> None:
        super().__init__()
        if kind not in ("mse", "cosine"):
            raise TinyActError(f"feature distillation kind must be 'mse' or 'cosine', got {kind!r}")
        self.kind = kind
        self.normalize_teacher = normalize_teacher
        self.proj = nn.Linear(student_dim, teacher_dim)

    def forward(self, student_embedding: torch.Tensor, teacher_embedding: torch.Tensor) -> torch.Tensor:
        projected = self.proj(student_embedding.float())  # [B, student_dim] -> [B, teacher_dim]
        teacher = teacher_embedding.detach().float().to(projected.device)
        if projected.shape != teacher.shape:
            raise ValueError(
                f"projected student embedding {tuple(projected.shape)} vs teacher embedding {tuple(teacher.shape)}"
            )
        if self.kind == "cosine":
            return (1.0 - F.cosine_similarity(projected, teacher, dim=1)).mean()
        if self.normalize_teacher:
            teacher = F.layer_norm(teacher, teacher.shape[1:])
        return F.mse_loss(projected, teacher)
