"""The KD losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from tinyact.errors import TinyActError
from tinyact.training.distill import DistillationLoss, FeatureDistillation, beta_schedule, kd_kl_divergence

# Teacher logits [2 ln 3, 0] at T = 2 soften to p_t = [3/4, 1/4]; student logits [0, 0] give p_s = [1/2, 1/2].
KL_T_S = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(teacher ‖ student) = 0.130812
KL_S_T = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # the other direction = 0.143841


def _pair():
    student = torch.zeros(1, 2)
    teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
    return student, teacher


def test_kl_direction_is_teacher_to_student():
    student, teacher = _pair()
    value = kd_kl_divergence(student, teacher, temperature=2.0).item()
    assert value == pytest.approx(KL_T_S, abs=1e-6)
    assert abs(value - KL_S_T) > 1e-2


def test_t_squared_scaling_and_weighted_total():
    student, teacher = _pair()
    labels = torch.tensor([0])
    recon, target = torch.full((1, 2, 3, 4, 4), 0.5), torch.full((1, 2, 3, 4, 4), 0.25)
    loss = DistillationLoss(alpha=0.3, beta=0.7, gamma=2.0, temperature=2.0)
    out = loss(student, teacher, labels, recon, target)
    assert set(out) == {"total", "ce", "kd", "recon"}
    assert out["ce"].item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert out["kd"].item() == pytest.approx(4.0 * KL_T_S, abs=1e-6)  # T² = 4
    assert out["recon"].item() == pytest.approx(0.0625, abs=1e-7)
    expected = 0.3 * math.log(2.0) + 0.7 * 4.0 * KL_T_S + 2.0 * 0.0625
    assert out["total"].item() == pytest.approx(expected, abs=1e-6)
    # per-call β override (the warm-up) changes only the weight of kd
    warm = loss(student, teacher, labels, recon, target, beta=0.0)
    assert warm["total"].item() == pytest.approx(0.3 * math.log(2.0) + 2.0 * 0.0625, abs=1e-6)


def test_batchmean_averages_over_the_batch():
    student, teacher = _pair()
    # second row: student == teacher contributes 0, so the batch mean is half the first row's KL
    students = torch.cat([student, torch.tensor([[1.0, -1.0]])])
    teachers = torch.cat([teacher, torch.tensor([[1.0, -1.0]])])
    assert kd_kl_divergence(students, teachers, 2.0).item() == pytest.approx(KL_T_S / 2, abs=1e-6)


def test_zero_kd_when_student_equals_teacher_and_gradients_flow():
    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    out = DistillationLoss()(logits, logits.clone(), torch.randint(0, 5, (6,)))
    assert out["kd"].item() == pytest.approx(0.0, abs=1e-6)
    assert out["recon"].item() == 0.0
    student = torch.randn(6, 5, requires_grad=True)
    teacher = torch.randn(6, 5, requires_grad=True)
    DistillationLoss(alpha=0.0)(student, teacher, torch.zeros(6, dtype=torch.long))["total"].backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None  # the teacher is a fixed target


def test_no_teacher_is_ce_only():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    out = DistillationLoss(alpha=1.0)(logits, None, torch.tensor([0]))
    expected_ce = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert out["kd"].item() == 0.0 and out["total"].item() == pytest.approx(expected_ce, abs=1e-6)


def test_normalised_target_is_rejected():
    with pytest.raises(TinyActError, match=r"\[0, 1\]"):
        DistillationLoss()(torch.zeros(1, 2), None, torch.tensor([0]), torch.zeros(1, 3), torch.full((1, 3), -1.8))
    with pytest.raises(ValueError, match="differ"):
        DistillationLoss()(torch.zeros(1, 2), torch.zeros(1, 3), torch.tensor([0]))


def test_beta_warmup_schedule():
    values = [beta_schedule(e, 20, 0.5) for e in (0, 1, 10, 19, 20, 50)]
    assert values == pytest.approx([0.0, 0.025, 0.25, 0.475, 0.5, 0.5])
    assert beta_schedule(0, 0, 0.5) == 0.5
    with pytest.raises(ValueError):
        beta_schedule(-1, 20, 0.5)


def test_feature_distillation_mse_and_cosine():
    torch.manual_seed(0)
    feat = FeatureDistillation(4, 3, kind="mse", normalize_teacher=False)
    with torch.no_grad():
        feat.proj.weight.copy_(torch.eye(3, 4))
        feat.proj.bias.zero_()
    student = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    teacher = torch.tensor([[1.0, 2.0, 5.0]])
    assert feat(student, teacher).item() == pytest.approx(4.0 / 3.0)  # (3 - 5)² averaged over 3 features
    cos = FeatureDistillation(4, 3, kind="cosine")
    with torch.no_grad():
        cos.proj.weight.copy_(torch.eye(3, 4))
        cos.proj.bias.zero_()
    assert cos(student, 2 * student[:, :3]).item() == pytest.approx(0.0, abs=1e-6)  # same direction
    assert cos(torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0.0, 1.0, 0]])).item() == pytest.approx(1.0)
    # normalised teacher: a teacher on a large scale gives the same loss as its standardised version
    norm = FeatureDistillation(4, 3)
    big = torch.tensor([[100.0, 200.0, 400.0]])
    assert norm(student, big).item() == pytest.approx(norm(student, big / 100).item(), rel=1e-5)
    # P is learned: one optimiser step reduces the loss
    opt = torch.optim.SGD(norm.parameters(), lr=0.005)
    before = norm(student, big)
    before.backward()
    opt.step()
    assert norm(student, big).item() < before.item()
    with pytest.raises(TinyActError):
        FeatureDistillation(4, 3, kind="l1")  # type: ignore[arg-type]
