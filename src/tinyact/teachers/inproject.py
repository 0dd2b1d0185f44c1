"""The in-project teacher as a :class:`~tinyact.teachers.Teacher`: a :class:`~tinyact.models.teacher3d.Teacher3D`
trained by ``tinyact train teacher``, loaded from the ``inproject:PATH`` spec.

::

    clips uint8 [B, T, 3, H, W] ─► resample_clips (nearest frames in time, bilinear in space)
        ─► Teacher3D.predict_uint8 (its own normalisation) ─► TeacherOutput(logits [B, C], embedding [B, D])
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import torch
import torch.nn.functional as F

from tinyact.models.checkpoint import load_model
from tinyact.models.teacher3d import Teacher3D
from tinyact.teachers.base import Teacher, TeacherError, TeacherOutput, resample_frames


class InProjectTeacher:
    """A trained :class:`Teacher3D` behind the :class:`tinyact.teachers.Teacher` interface (``inproject:PATH``).

    ``__call__(clips uint8 [B, T, 3, H, W])`` resamples the clips to the frames and size the teacher was
    trained on (nearest frames in time, bilinear in space) and returns ``TeacherOutput(logits, embedding)``.
    """

    def __init__(self, model: Teacher3D, device: str | torch.device = "cpu") -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.label_names = list(model.config.label_names) or [str(i) for i in range(model.config.num_classes)]
        self.num_frames = model.config.num_frames
        self.size = model.config.input_size
        self.embedding_dim: int | None = model.embedding_dim

    def to(self, device: str | torch.device) -> InProjectTeacher:
        """Move the network to ``device``; returns ``self``."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def __call__(self, clips: torch.Tensor) -> TeacherOutput:
        """uint8 ``[B, T, 3, H, W]`` -> logits ``[B, C]`` and embedding ``[B, D]``."""
        clips = resample_clips(clips.to(self.device), self.num_frames, self.size)
        logits, embedding = self.model.predict_uint8(clips)
        return TeacherOutput(logits=logits, embedding=embedding)


def resample_clips(clips: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    """uint8 ``[B, T, 3, H, W]`` -> ``[B, frames, 3, size, size]`` (:func:`resample_frames`, bilinear resize)."""
    clips = resample_frames(clips, frames)  # the one time rule: nearest frame at segment centres
    b, _, c, h, w = clips.shape
    if (h, w) != (size, size):
        flat = clips.reshape(b * frames, c, h, w).float()  # [B, T, 3, H, W] -> [B*T, 3, H, W]
        flat = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=min(h, w) > size)
        clips = flat.round_().clamp_(0, 255).to(torch.uint8).reshape(b, frames, c, size, size)
    return clips


def load_inproject_teacher(path: str, device: str | None = None) -> InProjectTeacher:
    """The teacher in ``path``: a ``model.pt`` from ``tinyact train teacher``, or its run folder.

    Args:
        path: model file or run folder.
        device: where it runs; ``None`` = CUDA when present, else CPU.

    Raises:
        TeacherError: the file holds another kind of model.
    """
    file = Path(path)
    if file.is_dir():
        file = file / "model.pt"
    model, _ = load_model(file)
    if not isinstance(model, Teacher3D):
        raise TeacherError(f"{file} holds a {type(model).__name__}, not an in-project teacher (Teacher3D)")
    return InProjectTeacher(model, device or ("cuda" if torch.cuda.is_available() else "cpu"))


def load_inproject_spec(target: str, device: str | None = None) -> Teacher:
    """Loader of the ``inproject:PATH[?device=cpu]`` scheme; ``device`` (``load_teacher(spec, device=…)``)
    overrides the spec's, and ``auto`` means CUDA when present."""
    path, _, query = target.partition("?")
    options = dict(parse_qsl(query)) if query else {}
    chosen = device or options.get("device")
    return load_inproject_teacher(path, device=None if chosen == "auto" else chosen)
