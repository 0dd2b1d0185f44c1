"""Teachers for knowledge distillation: one small interface over cached logits, Hugging Face video
classifiers, TorchScript files and importable modules.

Example::

    from tinyact.teachers import load_teacher, cache_teacher, CachedLogits

    teacher = load_teacher("hf:/models/videomae-base-finetuned-kinetics")
    out = teacher(clips)                    # clips uint8 [B, T, 3, H, W] -> out.logits [B, 400]
    cache_teacher(teacher, manifest, None, "runs/kd/teacher.npz")
    cached = CachedLogits.load("runs/kd/teacher.npz").for_dataset(manifest.label_names)
    logits, embeddings = cached.lookup(clip_ids)
"""

from urllib.parse import parse_qsl

from tinyact.teachers.base import (
    ModuleTeacher,
    Preprocess,
    Teacher,
    TeacherError,
    TeacherOutput,
    resample_frames,
)
from tinyact.teachers.cached import CachedLogits, cache_teacher
from tinyact.teachers.labels import LabelMap, map_labels, normalize_label
from tinyact.teachers.loaders import (
    load_hf_teacher,
    load_teacher,
    parse_spec,
    read_label_file,
    register_teacher_scheme,
)

__all__ = [
    "CachedLogits",
    "LabelMap",
    "ModuleTeacher",
    "Preprocess",
    "Teacher",
    "TeacherError",
    "TeacherOutput",
    "cache_teacher",
    "load_hf_teacher",
    "load_teacher",
    "map_labels",
    "normalize_label",
    "parse_spec",
    "read_label_file",
    "register_teacher_scheme",
    "resample_frames",
]


def _load_inproject(target: str, device: str | None = None) -> Teacher:
    """``inproject:PATH[?device=cpu]``: a Teacher3D from ``tinyact train teacher`` (its model.pt or run folder).
    ``device`` (``load_teacher(spec, device=…)``) overrides the spec's."""
    from tinyact.training.teacher import load_inproject_teacher

    path, _, query = target.partition("?")
    options = dict(parse_qsl(query)) if query else {}
    chosen = device or options.get("device")
    return load_inproject_teacher(path, device=None if chosen == "auto" else chosen)  # None: CUDA when present


register_teacher_scheme("inproject", _load_inproject)
