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

from tinyact.teachers.base import (
    ModuleTeacher,
    Preprocess,
    Teacher,
    TeacherError,
    TeacherOutput,
    resample_frames,
)
from tinyact.teachers.cached import CachedLogits, cache_teacher
from tinyact.teachers.hf import load_hf_teacher
from tinyact.teachers.inproject import InProjectTeacher, load_inproject_spec, load_inproject_teacher
from tinyact.teachers.labels import LabelMap, map_labels, normalize_label
from tinyact.teachers.loaders import load_teacher, parse_spec, register_teacher_scheme
from tinyact.teachers.options import read_label_file

__all__ = [
    "CachedLogits",
    "InProjectTeacher",
    "LabelMap",
    "ModuleTeacher",
    "Preprocess",
    "Teacher",
    "TeacherError",
    "TeacherOutput",
    "cache_teacher",
    "load_hf_teacher",
    "load_inproject_teacher",
    "load_teacher",
    "map_labels",
    "normalize_label",
    "parse_spec",
    "read_label_file",
    "register_teacher_scheme",
    "resample_frames",
]


register_teacher_scheme("inproject", load_inproject_spec)
