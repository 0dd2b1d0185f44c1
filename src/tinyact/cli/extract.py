"""``tinyact extract``: encode every clip of a manifest into one latents file (the input of every classifier)."""

from __future__ import annotations

from pathlib import Path

import typer

from tinyact.console import console


def extract(
    checkpoint: Path = typer.Option(Path("zoo:everyday-64"), help="Encoder: zoo:NAME (a pretrained encoder shipped "
                                    "with TinyAct) or a model file (model.pt from `tinyact train ae` / `train kd`)."),
    manifest: Path = typer.Option(..., help="Manifest CSV (from `tinyact data manifest`)."),
    out: Path = typer.Option(..., help="Latents file to write (.npz); an interrupted run resumes when run again."),
    size: int = typer.Option(None, help="Crop size in pixels [default: the size the encoder was trained at]."),
    frames: int = typer.Option(None, help="Frames per clip T [default: the encoder's]."),
    batch_size: int = typer.Option(8, help="Clips per encoder call."),
    cache: Path = typer.Option(None, help="Clip cache folder to read from (used when its sampling matches)."),
    workers: int = typer.Option(0, help="Decoder processes (0 = decode in this process)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    resume: bool = typer.Option(True, help="Reuse the rows of an interrupted run with the same encoder."),
) -> None:
    """Encode every clip of MANIFEST with the encoder (the pretrained zoo encoder by default) into OUT (latents, labels, splits, encoder hash)."""
    from tinyact.data.manifest import Manifest
    from tinyact.training.extract import extract_latents
    from tinyact.zoo import encoder_sampling, load_model_spec

    model, info = load_model_spec(checkpoint)
    config = info.get("config") or {}
    trained_size = config.get("input_size", [112, 112])
    sampling = encoder_sampling(info.get("zoo"), frames or int(config.get("num_frames", 16)), size or int(min(trained_size)))
    result = extract_latents(
        model, Manifest.read(manifest), sampling, out, cache_dir=cache, batch_size=batch_size,
        encoder_hash=str(info["hash"]), resume=resume, device=device, workers=workers,
    )
    skipped = len(result.meta.get("skipped", {}))
    counts = {split: int((result.splits == split).sum()) for split in ("train", "val", "test")}
    console.print(
        f"wrote {out}: {len(result)} clips x {result.dim} ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
        f"encoder {result.encoder_hash}" + (f", [yellow]{skipped} skipped[/]" if skipped else "")
    )
