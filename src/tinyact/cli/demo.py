"""``tinyact demo``: the whole system on this machine (README command 1)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tinyact.console import console


def demo(
    duration: float = typer.Option(None, "--duration", help="Seconds the edge agent runs [default: 30]."),
    out: Path = typer.Option(None, help="Run folder for summary.json and the databases [default: $TINYACT_HOME/demo]."),
    serve: bool = typer.Option(False, "--serve", help="Keep the edge agent, the cloud and both web pages running afterwards (Ctrl-C stops)."),
    cameras: int = typer.Option(None, help="Simulated cameras [default: 5]."),
    interval: float = typer.Option(None, help="Seconds between two clips of one camera [default: 2; the paper: 10]."),
    data: Path = typer.Option(None, help="Synthetic dataset folder, generated if missing [default: $TINYACT_HOME/synth]."),
    classes: int = typer.Option(None, help="Action classes to generate [default: 10]."),
    clips_per_class: int = typer.Option(None, help="Clips per class [default: 20]."),
    encoder: str = typer.Option(None, help="zoo:NAME (a pretrained encoder), a model.pt (e.g. a KD student), or "
                                "scratch (train the paper's autoencoder briefly) [default: zoo:everyday-64]."),
    config: Path = typer.Option(None, help="YAML file with DemoConfig fields (options override it)."),
) -> None:
    """Run TinyAct end to end on this machine: synthetic videos, the pretrained encoder fine-tuned briefly on them,
    a classifier, the cloud service (SQLite), and an edge agent reading 5 simulated cameras whose true actions are
    known."""
    from tinyact.demo import DemoConfig, run_demo

    cfg = DemoConfig.from_yaml(config, out=out, data=data, classes=classes, clips_per_class=clips_per_class,
                               duration_s=duration, cameras=cameras, interval_s=interval,
                               encoder=encoder)

    def ready(urls: dict) -> None:
        console.print(f"edge page:        {urls['edge']}  (sign in with token {urls['edge_token']})")
        console.print(f"cloud dashboard:  {urls['cloud_dashboard']}  (viewer token {urls['cloud_viewer_token']})")

    run_demo(cfg, serve=serve, on_ready=ready, on_summary=lambda s: print_summary(s, cfg.out, serving=serve))


def print_summary(s: dict, out: Path, serving: bool = False) -> None:
    """The end-of-run table, the URLs and where summary.json is."""
    table = Table(title="TinyAct demo: summary")
    table.add_column("what")
    table.add_column("value", justify="right")
    acc = s["accuracy"]
    rows = [
        ("cameras", str(len(s["cameras"]))),
        ("clips captured", str(s["clips_captured"])),
        ("clips delivered to the cloud", str(s["clips_delivered"])),
        ("rows in the cloud database", str(s["cloud_rows"])),
        ("duplicates / lost", f"{s['duplicates']} / {s['lost']}"),
        ("accuracy (held-out actors)", "–" if acc is None else f"{acc:.1%} of {s['accuracy_clips']} clips"
         + (" (95 % interval {:.0%}–{:.0%})".format(*s["accuracy_interval95"]) if s.get("accuracy_interval95") else "")
         + (f" (chance {s['chance']:.0%})" if s.get("chance") else "")),
        ("bytes sent", f"{s['bytes_sent']:,}"),
        ("bytes per clip (JSON, latent as " + s["wire_dtype"] + ")", str(s["bytes_per_clip"])),
        ("the same 16 frames as H.264 (bytes)", str(s.get("h264_bytes_per_clip"))),
        ("latency p50 / p95 (ms)", f"{s['latency_ms']['p50']} / {s['latency_ms']['p95']}"),
        ("encode per clip (ms)", str(s["encode_ms_per_clip"])),
        ("elapsed (s)", str(s["elapsed_s"])),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(accuracy_note(s), highlight=False)
    note = "" if serving else "   [dim](stopped now; `tinyact demo --serve` keeps them running)[/]"
    console.print(f"edge page:        {s['urls']['edge']}{note}")
    console.print(f"cloud dashboard:  {s['urls']['cloud_dashboard']}  (viewer token {s['urls']['cloud_viewer_token']})")
    console.print(f"summary: {out / 'summary.json'}")


def accuracy_note(s: dict) -> str:
    """Why the accuracy is what it is, and what the columns mean, in a few lines under the table."""
    encoder = s.get("encoder", {})
    clf = s.get("classifier", {})
    if encoder.get("spec", "scratch") == "scratch":
        why = (f"the encoder was trained here for {encoder.get('epochs')} epoch(s) on the demo's clips without "
               "labels (the paper's autoencoder): expect close to chance; the run shows the plumbing")
    else:
        tuned = encoder.get("finetuned")
        how = (f"fine-tuned here on the training actors' windows for {tuned['epochs']} epochs (val probe "
               f"{tuned['before']:.0%} -> {tuned['after']:.0%})" if tuned else "frozen, never trained on these clips")
        why = (f"the pretrained encoder {encoder.get('spec')} ({how}) and a "
               f"{clf.get('kind', 'classifier')} fitted on the latents of the training actors' clips, one 2 s window "
               "at a time as the cameras send them; the cameras play clips of other actors. Its test accuracy on "
               "such windows before the run: "
               + (f"{clf['test_metrics']['top1']:.0%}" if "top1" in clf.get("test_metrics", {}) else "n/a"))
    return ("[dim]accuracy counts clips whose 16 frames show one action (a clip spanning two playlist items is "
            f"left out); {why}. latency: capture to result at the edge; encode: the edge's encoder time per "
            "clip in a batch of all cameras.[/]")
