"""``tinyact teacher …``: run a teacher over a manifest once and cache its logits for distillation."""

from __future__ import annotations

from pathlib import Path

import typer

from tinyact.console import console

app = typer.Typer(help="Teachers for knowledge distillation: cache their logits, inspect them.", no_args_is_help=True)


@app.command()
def cache(
    teacher: str = typer.Option(
        ..., help="Teacher spec: hf:FOLDER, torchscript:FILE, python:MODULE:FACTORY[?k=v&…] (see docs/DISTILLATION.md)."
    ),
    manifest: Path = typer.Option(..., help="Manifest CSV (tinyact data manifest)."),
    out: Path = typer.Option(..., help="Output .npz (clip_ids, logits, label_names, optional embeddings)."),
    size: int = typer.Option(None, help="Decode clips at this square size (default: the teacher's input size)."),
    frames: int = typer.Option(None, help="Frames per decoded clip (default: the teacher's frame count)."),
    batch_size: int = typer.Option(8, help="Clips per teacher call."),
    cache_dir: Path = typer.Option(None, help="Clip cache folder (tinyact data cache) to read instead of decoding."),
    split: list[str] = typer.Option(None, help="Only these splits (repeatable) (default: all)."),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1 … (default: the spec's, else CUDA when present)."),
    workers: int = typer.Option(0, help="DataLoader worker processes for decoding."),
) -> None:
    """Run TEACHER once over every clip of MANIFEST and write its logits (resumable: rerun to continue)."""
    from tinyact.data.manifest import Manifest
    from tinyact.data.video import ClipSampling
    from tinyact.teachers import cache_teacher, load_teacher

    entries = Manifest.read(manifest)
    if split:
        entries = entries.split(*split)
    model = load_teacher(teacher, device=device)
    sampling = ClipSampling(num_frames=frames or model.num_frames, size=size or model.size)
    console.print(
        f"teacher: {len(model.label_names) or 'dataset'} classes, {model.num_frames} frames at {model.size} px; "
        f"decoding {sampling.num_frames} frames at {sampling.size} px"
    )
    result = cache_teacher(
        model, entries, sampling, out, cache_dir=cache_dir, batch_size=batch_size, workers=workers, teacher_spec=teacher
    )
    label_map = result.label_map(entries.label_names)
    console.print(f"wrote {out}: {len(result)} clips x {result.num_classes} classes"
                  + (f", embeddings {result.embedding_dim}-d" if result.embedding_dim else ""))
    console.print(f"labels: {label_map.summary()}")


@app.command()
def show(path: Path = typer.Argument(..., help="A cached-logits .npz.")) -> None:
    """Summarise a cached-logits file."""
    import numpy as np

    from tinyact.teachers import CachedLogits

    cached = CachedLogits.load(path)
    top = np.bincount(cached.logits.argmax(1), minlength=cached.num_classes)
    console.print(f"{path}: {len(cached)} clips, {cached.num_classes} classes, teacher {cached.teacher or '?'}")
    console.print(f"embeddings: {cached.embedding_dim or 'none'}")
    for i in np.argsort(-top)[:5]:
        console.print(f"  {cached.label_names[i]}: top-1 for {top[i]} clips")
