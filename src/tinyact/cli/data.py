"""``tinyact data …``: generate, list, check and cache video datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer
from rich.table import Table

from tinyact.console import console
from tinyact.errors import DatasetError

app = typer.Typer(
    help="Videos -> clips: generate synthetic actions, make manifests, check and cache clips.",
    no_args_is_help=True,
)

Layout = Literal["kinetics", "folder", "list"]


@app.command()
def synth(
    out: Path = typer.Option(..., help="Output folder (written in the Kinetics-400 CVDF layout)."),
    classes: int = typer.Option(None, help="Number of action classes (2-12) [default: 10]."),
    clips_per_class: int = typer.Option(None, help="Clips per class over all splits [default: 20]."),
    seed: int = typer.Option(None, help="Random seed; the same seed gives the same files [default: 0]."),
    size: int = typer.Option(None, help="Frame height in pixels; frames are 4:3 [default: 128]."),
    workers: int = typer.Option(None, help="Worker processes; 0 = one per core [default: 0]."),
    profile: str = typer.Option("benchmark", help="benchmark: the 12-class set as H.264 files in the Kinetics "
                                "layout; pretrain: the 25-class pretraining corpus (many views and camera styles) "
                                "as ready-to-train uint8 shards."),
    clips: int = typer.Option(None, help="pretrain profile: clips in all [default: 20000]."),
    config: Path = typer.Option(None, help="YAML file with SynthConfig (or, for --profile pretrain, CorpusConfig) fields."),
) -> None:
    """Generate synthetic human actions: the benchmark set (real H.264 mp4, held-out test actors, preview.png) or
    the pretraining corpus (--profile pretrain; resumable)."""
    from tinyact.data.synth import SynthConfig, generate

    if profile == "pretrain":
        from tinyact.data.synth.corpus import CorpusConfig
        from tinyact.data.synth.corpus_files import build_corpus, write_corpus_preview

        corpus_cfg = CorpusConfig.from_yaml(config, out=out, clips=clips, seed=seed, size=size, workers=workers)
        index = build_corpus(corpus_cfg)
        preview = write_corpus_preview(corpus_cfg, corpus_cfg.out / "preview.png")
        console.print(f"corpus of {corpus_cfg.clips} clips in {corpus_cfg.out} (index {index}); contact sheet: {preview}")
        return
    if profile != "benchmark":
        raise typer.BadParameter("use benchmark or pretrain", param_hint="--profile")
    cfg = SynthConfig.from_yaml(
        config, out=out, classes=classes, clips_per_class=clips_per_class, seed=seed, size=size, workers=workers
    )
    counts = generate(cfg)
    table = Table(title=f"synthetic dataset in {cfg.out}")
    for column in ("split", "clips"):
        table.add_column(column)
    for split, n in counts.items():
        table.add_row(split, str(n))
    console.print(table)
    console.print(f"contact sheet: {cfg.out / 'preview.png'}")


@app.command()
def manifest(
    data: Path = typer.Option(..., help="Dataset root folder."),
    out: Path = typer.Option(..., help="Manifest CSV to write (put it in the dataset root to keep paths relative)."),
    layout: str = typer.Option("kinetics", help="kinetics (CVDF copy), folder (ROOT/<class>/<video>) or list."),
    split_file: Path = typer.Option(None, help="folder layout: CSV path,split (paths relative to the root)."),
    annotations: list[str] = typer.Option(
        None, help="list layout: SPLIT=FILE of 'path label' lines, repeatable (e.g. train=train_list.txt)."
    ),
    labels: Path = typer.Option(None, help="list layout: label names, one per line, for numeric labels."),
    balanced: bool = typer.Option(False, help="Same number of clips per class in each split (the paper's sampling)."),
    per_class: int = typer.Option(None, help="With --balanced: at most this many clips per class and split."),
    seed: int = typer.Option(0, help="Seed for balanced sampling and the folder layout's stratified split."),
) -> None:
    """Make the manifest CSV (path,label,split,clip_id,…) that every later stage reads; print per-class counts."""
    from tinyact.data.layouts import parse_annotations, read_layout
    from tinyact.data.manifest import Manifest, balance

    entries, report = read_layout(layout, data, split_file=split_file, annotations=parse_annotations(annotations),
                                  labels=labels, seed=seed)
    if not entries:
        raise DatasetError(f"no usable clips found in {data} ({report.missing} listed but missing)")
    if balanced:
        entries = balance(entries, per_class=per_class, seed=seed)
    result = Manifest(entries, data.resolve())
    result.write(out)
    _print_counts(result)
    console.print(f"wrote {len(result)} clips to {out}")
    if report.missing:
        missing_csv = report.write(out.with_name(out.stem + ".missing.csv"))
        console.print(f"[yellow]{report.missing} listed clip(s) missing or unusable: see {missing_csv}[/]")


def _print_counts(result) -> None:
    from tinyact.data.manifest import SPLITS, format_counts

    table = Table(title="clips per class")
    table.add_column("label")
    for split in SPLITS:
        table.add_column(split, justify="right")
    rows = format_counts(result)
    for row in rows:
        table.add_row(*row)
    totals = [str(sum(int(r[i + 1]) for r in rows)) for i in range(len(SPLITS))]
    table.add_row("[bold]total", *totals)
    console.print(table)


@app.command()
def cache(
    manifest: Path = typer.Option(..., help="Manifest CSV (from `tinyact data manifest`)."),
    out: Path = typer.Option(..., help="Cache folder; an interrupted build resumes when run again."),
    size: int = typer.Option(None, help="Crop size in pixels [default: 224]."),
    frames: int = typer.Option(None, help="Frames per clip T [default: 16]."),
    strategy: str = typer.Option(None, help="uniform, dense or multi [default: uniform]."),
    workers: int = typer.Option(0, help="Decoder processes; 0 = one per core."),
    config: Path = typer.Option(None, help="YAML file with ClipSampling fields (options override it)."),
) -> None:
    """Decode every clip once into memory-mapped uint8 shards; bad files are listed in OUT/skipped.csv."""
    from tinyact.data.cache import build_cache
    from tinyact.data.manifest import Manifest
    from tinyact.data.video import ClipSampling

    sampling = ClipSampling.from_yaml(config, size=size, num_frames=frames, strategy=strategy)
    result_manifest = Manifest.read(manifest)
    sampling.save(out)
    result = build_cache(result_manifest, out, sampling, workers=workers)
    total = result.cached + result.already_done
    console.print(
        f"cache {out}: {result.cached} clips decoded now, {result.already_done} already done, "
        f"{result.skipped} skipped now ({total} of {len(result_manifest)} handled)"
    )
    if result.skipped:
        console.print(f"[yellow]skipped files and reasons: {out / 'skipped.csv'}[/]")


@app.command()
def probe(video: str = typer.Argument(..., help="Video file or URL.")) -> None:
    """Print a video's size, codec, frame count, duration and frame rate (no frames decoded)."""
    from tinyact.data.video import probe_video

    info = probe_video(video)
    console.print_json(
        json.dumps(
            {
                "path": info.path,
                "width": info.width,
                "height": info.height,
                "codec": info.codec,
                "frames": info.num_frames,
                "duration_s": round(info.duration, 3),
                "fps": round(info.fps, 3),
                "variable_frame_rate": info.variable_frame_rate,
            }
        )
    )


@app.command()
def check(
    manifest: Path = typer.Option(..., help="Manifest CSV to check."),
    out: Path = typer.Option(None, help="CSV report of bad files [default: next to the manifest]."),
    frames: int = typer.Option(16, help="Frames a clip needs (shorter videos are reported)."),
    workers: int = typer.Option(0, help="Processes; 0 = one per core."),
) -> None:
    """Try to read a clip from every video of a manifest and report those that fail (like mmaction's check_videos);
    exit status 1 when any failed."""
    from tinyact.data.check import check_manifest
    from tinyact.data.manifest import Manifest

    loaded = Manifest.read(manifest)
    out = out or manifest.with_name(manifest.stem + ".bad.csv")
    bad = check_manifest(loaded, frames=frames, workers=workers, report=out)
    if bad:
        console.print(f"[bold red]{len(bad)} of {len(loaded)} videos failed[/]; see {out}")
        raise typer.Exit(code=1)
    else:
        console.print(f"all {len(loaded)} videos decode")
