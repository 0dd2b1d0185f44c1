"""Bytes per clip on the wire: the edge's latent messages vs H.264 of the same frames vs the paper's "4 KB".

    python benchmarks/wire_bytes.py                      # 20 synthetic clips, 480p cameras, paper encoder at 224²
    python benchmarks/wire_bytes.py --checkpoint runs/ae/model.pt   # latents of a trained encoder
    python benchmarks/wire_bytes.py --quick              # seconds (used by the test suite)

For each clip: the 16 frames the encoder sees (sampled at the agent's capture rate, 8 fps, from a synthetic
action video at the camera resolution), encoded

* as H.264 (libx264 crf 23, veryfast, one keyframe) at the encoder's input size (224×224) and at the camera
  resolution; plus H.264 of the whole capture window at the camera's frame rate (what streaming the same
  seconds of video to the cloud would cost);
* as the agent's wire message (one ``tinyact.wire.ClipIn`` JSON: clip id, camera, time, latent) with the latent
  as a plain JSON array (the paper's format), base64 float32, float16 (the default) and int8 + scale; and the
  same messages gzip-compressed, alone and in a request of 5 clips (one round of 5 cameras).

Latents come from ``--checkpoint`` or, by default, from the paper-preset encoder with random weights (the byte
counts of base64 encodings do not depend on the weights; the plain JSON and gzip sizes do a little).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info, markdown_table, print_table, save_results  # noqa: E402
from tinyact.data.synth.generator import SynthConfig, plan_dataset, render_clip  # noqa: E402
from tinyact.data.transforms import resize_short_side_center_crop  # noqa: E402
from tinyact.wire import ClipIn, WireDtype, encode_latent  # noqa: E402

PAPER_BYTES = 4096  # "1024-dimensional vectors = 4KB per clip"
ROUND = 5  # clips per request in the batched gzip row (one round of 5 cameras)


def h264_bytes(frames: list[np.ndarray], fps: float) -> int:
    """Size of an in-memory MP4 of ``frames`` (RGB ``[H, W, 3]``), libx264 crf 23, veryfast, one GOP."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        stream.codec_context.gop_size = len(frames)
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return len(buffer.getvalue())


def message(latent: np.ndarray, dtype: WireDtype | None) -> str:
    clip = ClipIn(clip_id=uuid.uuid4(), camera_id="cam-1", captured_at=datetime.now(UTC),
                  latent=encode_latent(latent, dtype) if dtype else [float(v) for v in latent])
    return clip.model_dump_json(exclude_none=True)


def load_encoder(checkpoint: Path | None, size: int, quick: bool):
    from tinyact.models.autoencoder3d import VideoAutoEncoder3D
    from tinyact.models.checkpoint import load_model

    if checkpoint is not None:
        model, info = load_model(checkpoint)
        return model, f"{checkpoint} ({info.get('hash')})"
    torch.manual_seed(0)
    if quick:
        return VideoAutoEncoder3D(input_size=size, channels=(8, 16, 16, 32)).eval(), f"small random-init encoder at {size}²"
    return VideoAutoEncoder3D.from_preset("paper", input_size=size).eval(), f"paper preset, random weights, {size}²"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--height", type=int, default=480, help="camera resolution (4:3)")
    parser.add_argument("--size", type=int, default=224, help="encoder input size")
    parser.add_argument("--capture-fps", type=float, default=8.0)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=Path("docs/results/wire_bytes.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.height, args.size = 3, 96, 64
    import os

    load = os.getloadavg()
    model, encoder_name = load_encoder(args.checkpoint, args.size, args.quick)
    size = int(model.config.input_size[0])
    frames_per_clip = int(model.config.num_frames)
    synth = SynthConfig(out=Path("unused"), classes=10, clips_per_class=max(3, args.clips), size=args.height,
                        min_seconds=3.0, max_seconds=3.0, fps_choices=[25])
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    latents = []
    for plan in plan_dataset(synth)[: args.clips]:
        frames, fps, _ = render_clip(synth, plan)
        step = fps / args.capture_fps
        window = int(round(step * (frames_per_clip - 1))) + 1
        picked = [frames[int(round(i * step))] for i in range(frames_per_clip)]
        clip = torch.from_numpy(np.stack(picked)).permute(0, 3, 1, 2)  # [T, 3, H, W]
        small = resize_short_side_center_crop(clip, size)
        add(f"raw uint8 frames {frames_per_clip}×{size}²", small.numel())
        add(f"H.264 of the {frames_per_clip} frames at {size}²", h264_bytes(list(small.permute(0, 2, 3, 1).numpy()), args.capture_fps))
        add(f"H.264 of the {frames_per_clip} frames at {frames[0].shape[1]}×{frames[0].shape[0]}",
            h264_bytes(picked, args.capture_fps))
        add(f"H.264 of the whole {window / fps:.1f} s window at {fps:g} fps, {frames[0].shape[1]}×{frames[0].shape[0]}",
            h264_bytes(frames[:window], fps))
        with torch.inference_mode():
            latents.append(model.encode_uint8(small[None])[0].float().numpy())
    dim = len(latents[0])
    formats: tuple[tuple[str, WireDtype | None], ...] = (
        ("plain JSON numbers (paper)", None), ("float32 base64", "float32"), ("float16 base64 (default)", "float16"),
        ("int8 base64 + scale", "int8"))
    for name, dtype in formats:
        messages = [message(z, dtype) for z in latents]
        for m in messages:
            add(f"message: {name}", len(m))
            add(f"message: {name}, gzip", len(gzip.compress(('{"clips":[' + m + "]}").encode(), mtime=0)))
        for i in range(0, len(messages) - ROUND + 1, ROUND):
            body = ('{"clips":[' + ",".join(messages[i : i + ROUND]) + "]}").encode()
            add(f"message: {name}, gzip in a {ROUND}-clip request (per clip)", len(gzip.compress(body, mtime=0)) / ROUND)
    add(f"latent bytes float32 ({dim}-d, the paper's 4 KB)", dim * 4)
    add(f"latent bytes float16 ({dim}-d)", dim * 2)
    reference = float(np.mean(rows[f"H.264 of the {frames_per_clip} frames at {size}²"]))
    table = []
    for name, values in rows.items():
        mean = float(np.mean(values))
        table.append([name, f"{mean:,.0f}", f"{mean / PAPER_BYTES:.2f}", f"{reference / mean:.1f}"])
    columns = ["what is sent per clip", "bytes (mean)", "× paper's 4 KB", f"H.264 {size}² ÷ this"]
    print_table(f"bytes per clip ({args.clips} clips, encoder: {encoder_name})", columns, table)
    result = {"clips": args.clips, "encoder": encoder_name, "latent_dim": dim, "camera_height": args.height,
              "encoder_size": size, "capture_fps": args.capture_fps, "loadavg": load,
              "rows": {k: float(np.mean(v)) for k, v in rows.items()}, "markdown": markdown_table(columns, table)}
    save_results(args.json, result)
    return result


if __name__ == "__main__":
    main()
    print(json.dumps(machine_info()))
