"""``tinyact edge …``: write an example config, run the agent, show its status, export / quantise the encoder."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast, get_args

import typer
from rich.table import Table

from tinyact.console import console
from tinyact.errors import ConfigError, TinyActError

if TYPE_CHECKING:
    from collections.abc import Callable

    import uvicorn

    from tinyact.edge.agent import EdgeAgent
    from tinyact.edge.config import EdgeConfig

app = typer.Typer(
    help="Edge device: cameras round-robin -> encoder (one batch per round) -> latents to the cloud.",
    no_args_is_help=True,
)

CONFIG_HELP = "Edge config YAML (`tinyact edge init` writes an example)."


@app.command()
def init(
    out: Path = typer.Option(Path("edge.yaml"), help="Where to write the example config."),
    force: bool = typer.Option(False, help="Overwrite an existing file."),
    bundle: Path = typer.Option(None, help="Bundle (`tinyact bundle`, table1's RUN/bundle): its encoder, frame size "
                                "and frames per clip go into the config."),
) -> None:
    """Write a commented example edge config (secrets stay in environment variables)."""
    from tinyact.edge.config import EXAMPLE_CONFIG

    if out.exists() and not force:
        raise TinyActError(f"{out} exists; pass --force to overwrite it")
    text = EXAMPLE_CONFIG if bundle is None else _config_for_bundle(EXAMPLE_CONFIG, bundle)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    what = "the cameras" if bundle is not None else "the cameras and the encoder checkpoint"
    console.print(f"wrote {out}: edit {what}, then `tinyact edge run --config {out}`", highlight=False)


def _config_for_bundle(example: str, folder: Path) -> str:
    """The example config with the bundle's encoder (``zoo:NAME`` or its encoder file), size and frames."""
    from tinyact.classifiers.bundle import load_bundle

    made = load_bundle(folder)
    lines = []
    for line in example.splitlines():
        key = line.strip().lstrip("# ").split(":", 1)[0]
        if line.startswith("  checkpoint:"):
            line = f"  checkpoint: {made.encoder_spec}   # from the bundle {folder} (encoder hash {made.encoder_hash})"
        elif line.startswith("  #") and key == "input_size" and made.preprocessing.get("size"):
            line = f"  input_size: {made.preprocessing['size']}                    # the bundle's"
        elif line.startswith("  #") and key == "frames_per_clip" and made.preprocessing.get("frames"):
            line = f"  frames_per_clip: {made.preprocessing['frames']}               # the bundle's"
        elif line.startswith("  #") and key == "mirror" and made.preprocessing.get("mirror"):
            line = "  mirror: true                       # the bundle's classifier was fitted on mirrored readings"
        lines.append(line)
    return "\n".join(lines) + "\n"


@app.command()
def run(
    config: Path = typer.Option(..., help=CONFIG_HELP),
    rounds: int = typer.Option(0, help="Stop after this many rounds and flush the outbox (0: run until Ctrl-C)."),
    web: bool = typer.Option(True, help="Serve the local web page at web.address."),
) -> None:
    """Run the agent: capture every interval, encode, send, keep results; Ctrl-C stops (the outbox is kept)."""
    from tinyact.edge.agent import EdgeAgent
    from tinyact.edge.config import EdgeConfig

    cfg = EdgeConfig.from_yaml(config)
    _check_secrets(cfg, web)  # fail now, with every fix in one message, rather than in the sender thread
    agent = EdgeAgent(cfg)
    server = _start_web(cfg, agent) if web and cfg.web.enabled else None
    console.print(f"edge agent [bold]{cfg.device_id}[/]: {len(agent.cameras)} camera(s) every {cfg.schedule.interval_s:g} s "
                  f"-> {cfg.cloud_url if cfg.transport.kind == 'http' else cfg.transport.mqtt_url} ({cfg.transport.kind}); "
                  f"data in {cfg.data_dir}")
    try:
        if rounds:
            problem = agent.check_cloud_model()  # as the long-running mode does at start
            if problem:
                console.print(f"[yellow]{problem}[/]", highlight=False)
            for i in range(rounds):
                started = time.monotonic()
                report = agent.run_round()
                agent.send_due(timeout=cfg.transport.timeout_s)  # clips in backoff wait for a later round
                console.print(f"round {i + 1}: {report['clips']} clip(s), encode {_or_na(report['encode_ms'])} ms, "
                              f"failed cameras: {sorted(report['cameras_failed']) or 'none'}")
                if i + 1 < rounds:
                    time.sleep(max(0.0, cfg.schedule.interval_s - (time.monotonic() - started)))
        else:
            agent.run_forever()
    except KeyboardInterrupt:
        console.print("stopping the edge agent")
    finally:
        if server is not None:
            server.should_exit = True
    agent.stop()
    _print_status(agent.status(), stale=False)


def _check_secrets(cfg: EdgeConfig, web: bool) -> None:
    """Every secret this run needs (device key, local page token) at once: one message names all missing."""
    needed: list[Callable[[], str]] = []
    if cfg.transport.kind == "http":
        needed.append(cfg.device_key)
    if web and cfg.web.enabled:
        needed.append(cfg.web_token)
    problems = []
    for read in needed:
        try:
            read()
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError("; ".join(problems))


def _or_na(value: object, fmt: str = "{}") -> str:
    """``value`` formatted, or ``n/a`` when there is none yet."""
    return "n/a" if value is None else fmt.format(value)


def _start_web(cfg: EdgeConfig, agent: EdgeAgent) -> uvicorn.Server:
    """Serve the edge's local page (:func:`tinyact.edge.web.create_edge_app`) in a thread."""
    import threading

    import uvicorn

    from tinyact.edge.web import create_edge_app

    app = create_edge_app(agent.status, agent.store, cfg.snapshot_dir, cfg.web_token())
    server = uvicorn.Server(uvicorn.Config(app, host=cfg.web.host, port=cfg.web.port, log_level="warning"))
    threading.Thread(target=server.run, name="edge-web", daemon=True).start()
    console.print(f"local page: http://{cfg.web.address}/ (token from ${cfg.web.token_env})")
    return server


@app.command()
def status(
    config: Path = typer.Option(None, help=CONFIG_HELP),
    data_dir: Path = typer.Option(None, help="The agent's data directory (instead of --config)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cameras up/down, clips captured / delivered / pending / dropped, last result per camera, encode latency."""
    from tinyact.edge.config import EdgeConfig
    from tinyact.edge.store import EdgeStore

    if config is not None:
        data_dir = EdgeConfig.from_yaml(config).data_dir
    if data_dir is None:
        raise ConfigError("give --config edge.yaml or --data-dir DIR")
    status_path, db_path = data_dir / "status.json", data_dir / "edge.db"
    if not db_path.is_file():
        raise TinyActError(f"no edge database at {db_path}: has the agent run with this data directory?")
    status: dict = json.loads(status_path.read_text()) if status_path.is_file() else {"cameras": []}
    store = EdgeStore(db_path)
    status["counts"] = {**status.get("counts", {}), **store.counts()}  # the database is the live truth
    latest = store.latest_per_camera()
    held = store.held_summary()
    store.close()
    if held:  # the database's held clips, with or without a running agent's view of the cloud
        status["encoder_mismatch"] = {**(status.get("encoder_mismatch") or {}), "held": status["counts"]["held"],
                                      "held_by_encoder": held}
    elif status.get("encoder_mismatch"):
        status["encoder_mismatch"]["held"] = 0
    for camera in status.get("cameras", []):
        camera["last_result"] = latest.get(camera["camera_id"], camera.get("last_result"))
    stale = _is_stale(status)
    status["agent_running"] = bool(status.get("running")) and not stale
    if as_json:
        typer.echo(json.dumps(status, indent=1, default=str))
        return
    _print_status(status, stale)


def _is_stale(status: dict) -> bool:
    updated = status.get("updated_at")
    if not updated:
        return True
    age = (datetime.now(UTC) - datetime.fromisoformat(updated)).total_seconds()
    return age > max(30.0, 3 * float(status.get("interval_s") or 10))


def _print_status(status: dict, stale: bool) -> None:
    running = status.get("running") and not stale
    console.print(f"device [bold]{status.get('device_id', '?')}[/]: agent "
                  + ("[green]running[/]" if running else f"[yellow]not running[/] (last update {_or_na(status.get('updated_at'))})"))
    table = Table(title="cameras")
    for column in ("camera", "state", "clips", "last result", "score", "captured", "last error"):
        table.add_column(column)
    for camera in status.get("cameras", []):
        result = camera.get("last_result") or {}
        state = camera.get("state", "?")
        colour = {"up": "green", "down": "red"}.get(state, "yellow")
        table.add_row(camera["camera_id"], f"[{colour}]{state}[/]", str(camera.get("clips", 0)), str(result.get("label") or "-"),
                      f"{result['score']:.2f}" if result.get("score") is not None else "-",
                      str(result.get("captured_at") or "-"), str(camera.get("last_error") or "") if state != "up" else "")
    console.print(table)
    counts = status.get("counts", {})
    console.print("clips: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in
                                         ("captured", "delivered", "pending", "held", "dropped", "rejected",
                                          "discarded", "results")))
    _print_mismatch(status.get("encoder_mismatch"))
    encode = status.get("encode", {})
    console.print(f"encoder {encode.get('backend', '?')}: last batch {_or_na(encode.get('last_batch_ms'))} ms "
                  f"({_or_na(encode.get('last_per_clip_ms'))} ms per clip), mean {_or_na(encode.get('mean_batch_ms'))} ms")
    if encode.get("cloud_model_problem") and not status.get("encoder_mismatch"):
        console.print(f"[yellow]{encode['cloud_model_problem']}[/]", highlight=False)
    transport = status.get("transport", {})
    if transport:
        console.print(f"transport {transport.get('kind')} ({transport.get('wire_dtype')}): "
                      f"{_or_na(transport.get('bytes_per_clip'))} bytes per clip; last error: {transport.get('last_error') or 'none'}")


def _print_mismatch(mismatch: dict | None) -> None:
    """The encoder-mismatch hold: what the cloud refuses, how many clips are kept, and how to fix it."""
    if not mismatch:
        return
    console.print(f"[red]encoder mismatch[/]: {mismatch.get('held', 0)} clip(s) held in the outbox (kept, not sent) "
                  f"since {_or_na(mismatch.get('since'))}", highlight=False)
    if mismatch.get("cloud_encoder_hash") or mismatch.get("edge_encoder_hash"):
        console.print(f"  this device's encoder {_or_na(mismatch.get('edge_encoder_hash'))}; the cloud's classifier "
                      f"{_or_na(mismatch.get('cloud_model_version'))} expects encoder "
                      f"{_or_na(mismatch.get('cloud_encoder_hash'))}", highlight=False)
    for group in mismatch.get("held_by_encoder") or []:
        console.print(f"  {group['clips']} clip(s) of encoder {group['encoder_hash'] or '?'} (oldest captured "
                      f"{_or_na(group['oldest'])})", highlight=False)
    if mismatch.get("detail"):
        console.print(f"  [yellow]{mismatch['detail']}[/]", highlight=False)
    console.print("  fix: " + (mismatch.get("fix") or "activate a classifier fitted on this encoder's latents on the "
                  "cloud, or run the edge with the cloud's encoder; or drop the held clips: "
                  "`tinyact edge outbox drop --reason encoder_mismatch`"), highlight=False)


outbox_app = typer.Typer(help="The outbox of clips not yet delivered: give up on held clips.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("drop")
def outbox_drop(
    reason: str = typer.Option(..., help="Which held clips: encoder_mismatch (clips the cloud refuses because its "
                               "classifier expects another encoder)."),
    config: Path = typer.Option(None, help=CONFIG_HELP),
    data_dir: Path = typer.Option(None, help="The agent's data directory (instead of --config)."),
    encoder_hash: str = typer.Option(None, help="Only the held clips of this encoder (default: all held for REASON)."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Discard held clips for good: they leave the outbox, their capture rows become `discarded` (counted).
    Safe while the agent runs. Without this, held clips are sent once the cloud's classifier matches."""
    from tinyact.edge.config import EdgeConfig
    from tinyact.edge.store import EdgeStore
    from tinyact.wire import ENCODER_MISMATCH

    if reason != ENCODER_MISMATCH:
        raise ConfigError(f"--reason {reason!r}: only {ENCODER_MISMATCH} clips are held (other refusals are "
                          "already marked rejected, and failed sends are retried)")
    if config is not None:
        data_dir = EdgeConfig.from_yaml(config).data_dir
    if data_dir is None:
        raise ConfigError("give --config edge.yaml or --data-dir DIR")
    db_path = data_dir / "edge.db"
    if not db_path.is_file():
        raise TinyActError(f"no edge database at {db_path}: has the agent run with this data directory?")
    store = EdgeStore(db_path)
    try:
        groups = [g for g in store.held_summary() if g["reason"] == reason
                  and (encoder_hash is None or g["encoder_hash"] == encoder_hash)]
        total = sum(g["clips"] for g in groups)
        if not total:
            console.print(f"no clips held for {reason}" + (f" of encoder {encoder_hash}" if encoder_hash else ""))
            return
        for group in groups:
            console.print(f"{group['clips']} clip(s) of encoder {group['encoder_hash'] or '?'} held since "
                          f"{_or_na(group['oldest'])}: {group['last_error'] or ''}", highlight=False)
        if not yes and not typer.confirm(f"discard these {total} clip(s) for good?"):
            raise typer.Exit(1)
        n = store.discard_held(reason, encoder_hash)
    finally:
        store.close()
    console.print(f"discarded {n} held clip(s); they are counted as `discarded` in `tinyact edge status`")


# ---- ONNX export and int8 quantisation (tinyact.models.export / runtime) ------------------------------------
def _as_file(checkpoint: Path) -> Path:
    """A zoo encoder written once under $TINYACT_HOME/zoo, so exports have a folder to go next to."""
    from tinyact.paths import data_home
    from tinyact.zoo import materialize

    return materialize(checkpoint, data_home() / "zoo")


@app.command("export-onnx")
def export_onnx(
    checkpoint: Path = typer.Option(Path("zoo:everyday-64"), help="Encoder: zoo:NAME or a model file (model.pt)."),
    out: Path = typer.Option(None, help="ONNX file to write [default: next to the checkpoint, .onnx]."),
) -> None:
    """Export the encoder to ONNX (fp32) for the `onnx` backend."""
    from tinyact.edge.encoder import default_onnx_path
    from tinyact.models import export
    from tinyact.models.checkpoint import load_model

    checkpoint = _as_file(checkpoint)
    model, info = load_model(checkpoint)
    config = info["config"]
    out = out or default_onnx_path(checkpoint)
    path = export.export_onnx(model, out, frames=int(config.get("num_frames", 16)), size=int(config["input_size"][0]))
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); use encoder.backend: onnx")


@app.command()
def quantize(
    checkpoint: Path = typer.Option(Path("zoo:everyday-64"), help="Encoder: zoo:NAME or a model file (model.pt)."),
    calibrate_on: Path = typer.Option(..., help="Manifest CSV or folder of videos: real clips to calibrate on."),
    format: str = typer.Option("onnx", "--format", help="onnx: ONNX Runtime QDQ graph (backend onnx-int8); "
                               "torch: PyTorch int8 on oneDNN, TorchScript (backend torch-int8)."),
    onnx_in: Path = typer.Option(None, help="fp32 ONNX file [default: next to the checkpoint; exported if missing]."),
    out: Path = typer.Option(None, help="int8 file [default: next to the checkpoint, .int8.onnx / .int8.pt]."),
    clips: int = typer.Option(32, help="Calibration clips (half calibrate, half measure the drift)."),
    float_modules: list[str] = typer.Option(
        None, "--float-module", help="torch: a unit to keep in float, once per unit, e.g. encoder.3, encoder.4 and encoder.5 "
        "for zoo:everyday-64: less drift at ~5x the int8 time (docs/BENCHMARKS.md)."),
    ranges: str = typer.Option("batch-mean", help="Activation ranges: batch-mean (mean of per-batch min/max) "
                               "or minmax (global min/max; more drift on the shipped encoder, both formats)."),
    finetune_steps: int | None = typer.Option(None, min=0, show_default=False, help="torch: quantisation-aware fine-tuning "
                                       "steps that make the int8 latents match fp32 on the calibration clips (no labels; "
                                       "0 = none) [default: 100]."),
) -> None:
    """Static int8 quantisation (per channel) calibrated on real clips; prints the latent drift vs fp32."""
    from tinyact.edge.encoder import calibration_clips, default_onnx_path, latent_drift, write_int8_encoder
    from tinyact.models.checkpoint import load_model
    from tinyact.models.export import Ranges
    from tinyact.models.quantize import Int8Options
    from tinyact.models.runtime import load_runtime

    if format not in ("onnx", "torch"):
        raise TinyActError(f"--format must be onnx or torch, not {format!r}")
    if format != "torch" and (float_modules or finetune_steps is not None):
        raise TinyActError("--float-module and --finetune-steps apply to --format torch only")
    if ranges not in get_args(Ranges):
        raise TinyActError(f"--ranges must be one of {', '.join(get_args(Ranges))}, not {ranges!r}")
    backend = f"{format}-int8"
    checkpoint = _as_file(checkpoint)
    model, info = load_model(checkpoint)
    config = info["config"]
    frames, size = int(config.get("num_frames", 16)), int(config["input_size"][0])
    data = calibration_clips(calibrate_on, frames, size, clips)
    half = max(1, len(data) // 2) if len(data) > 1 else 1
    calibration, held_out = data[:half], (data[half:] if len(data) > 1 else data)
    if format == "onnx":
        onnx_in = onnx_in or default_onnx_path(checkpoint)
    options = Int8Options(ranges=cast(Ranges, ranges))
    if finetune_steps is not None:
        options = replace(options, finetune_steps=finetune_steps)
    out = write_int8_encoder(backend, checkpoint, model, calibration, encoder_hash=info.get("hash"), out=out,
                             onnx_in=onnx_in, float_modules=float_modules or (), int8_options=options)
    if format == "torch":
        fp32 = load_runtime("torch", model).encode(held_out)
        int8 = load_runtime("torch-int8", model, int8_path=out).encode(held_out)
    else:
        fp32 = load_runtime("onnx", checkpoint, onnx_path=onnx_in).encode(held_out)
        int8 = load_runtime("onnx-int8", checkpoint, onnx_path=out).encode(held_out)
    drift = latent_drift(fp32, int8)
    console.print(f"wrote {out} (calibrated on {len(calibration)} clip(s)); drift on {len(held_out)} held-out clip(s): "
                  f"cosine {drift['cosine_mean']:.4f} (min {drift['cosine_min']:.4f}), relative L2 {drift['rel_l2_mean']:.4f}")
    settings = {"float_modules": list(float_modules or []), **asdict(options)} if format == "torch" else {"ranges": ranges}
    (out.with_suffix(".drift.json")).write_text(json.dumps({"format": format, **settings, "calibration_clips": len(calibration),
                                                            "held_out_clips": len(held_out), **drift}, indent=1))
    console.print(f"use encoder.backend: {backend}")
