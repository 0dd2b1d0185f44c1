"""Two test-time readings of the shipped encoder, measured on real footage before either could become the default.

    python benchmarks/reading_at_test_time.py [--encoder zoo:everyday-64] [--sizes 64,68,72,76,80] \\
        [--probe ud810=/path/ud810_ps7:/path/ud810-split.csv:/path/ud810-clips.csv:all] [--json …]

The synthetic held-out actors fail where the person is small (< 1 % of the frame: ~54 %, against 92-94 % from
3 %; docs/BENCHMARKS.md), so two ways to show the encoder a larger person without retraining are measured here:

* **read size**: the encoder is fully convolutional up to an adaptive pool, so it can read frames larger than the
  64 px it was trained at. Pretraining crops ≥ 80 % of the side at random, so a person looks ~1.1x larger in
  training than at test (Touvron et al. 2019, "Fixing the train-test resolution discrepancy"): ~72 px would
  undo that. Each size reads the videos again through the data path (decode, resize to that size).
* **motion crop**: a square around where the window moves (frame differences minus their median, so a panning
  camera leaves the whole frame), ``margin`` added on each side, at least ``min_side`` of the frame, resized back
  to the encoder's size: a small person is zoomed up to 2.5x. ``side_from`` sizes the square by the moving
  region's larger extent or its height (a person who walks across moves farther than they are tall);
  ``max_side`` zooms only where the square is at most that share of the frame (a large person is left whole).
  The readings are the cropped windows alone and the mean latent of the full and cropped windows.

Protocol: the probe of pretraining (:func:`tinyact.training.pretrain.probe_accuracy`): a standardised logistic
regression with a fixed C, leave-one-person-out over the **non-test** persons of each dataset (Weizmann: the
recipe's probes, 6 persons), or over all persons where a ``--probe`` ends in ``:all`` (ud810, 3 persons, whose
split has one person per part). Each reading as recorded and mirrored (the mean latent of a window and its mirror
image). Nothing here touches a Weizmann test clip. ``benchmarks/zoo_heldout.py`` measures the same readings on
synthetic held-out actors (``--motion-crop``; a read size by a corpus rendered at that size).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import console, print_table, save_results  # noqa: E402
from tinyact.data.transforms import resize_short_side_center_crop  # noqa: E402
from tinyact.training.pretrain import ProbeSpec, encode_clips, load_probe, probe_accuracy  # noqa: E402
from tinyact.zoo import DEFAULT_ENCODER, load_model_spec  # noqa: E402

#: The crop variants measured (name -> motion_crop keyword arguments).
CROPS: dict[str, dict[str, Any]] = {
    "extent": {},
    "extent, min side 0.6": {"min_side": 0.6},
    "height": {"side_from": "height"},
    "height, margin 0.5": {"side_from": "height", "margin": 0.5},
    "extent, small persons only": {"max_side": 0.5},
}


def motion_crop(clips: torch.Tensor, threshold: float = 0.3, margin: float = 0.25, min_side: float = 0.4,
                side_from: str = "extent", max_side: float = 1.0, pool: int = 5) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 windows ``[N, T, 3, S, S]`` -> the same windows cropped to a square around their motion and resized
    back to ``S``; also each crop's side in pixels (``S`` where nothing moved).

    Motion energy is the mean absolute frame difference of the grey windows minus its median over the frame (a
    panning camera moves everything, and the square then spans the frame), smoothed over ``pool`` pixels; the
    moving region is where it reaches ``threshold`` of its maximum. A square wider than ``max_side`` of the frame
    leaves the window whole (the zoom only for a small moving region).
    """
    n, _, _, s, _ = clips.shape
    grey = clips.float().mean(2)  # [N, T, S, S]
    energy = (grey[:, 1:] - grey[:, :-1]).abs().mean(1)
    energy = (energy - energy.flatten(1).median(1).values[:, None, None]).clamp(min=0)
    energy = F.avg_pool2d(energy[:, None], pool, stride=1, padding=pool // 2)[:, 0]
    out, sides = clips.clone(), np.full(n, s)
    for i in range(n):
        peak = float(energy[i].max())
        if peak <= 1e-3:
            continue  # nothing moved: the full window
        ys, xs = torch.nonzero(energy[i] >= threshold * peak, as_tuple=True)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        extent = max(y1 - y0, x1 - x0) if side_from == "extent" else y1 - y0
        side = int(round(min(s, max(min_side * s, extent * (1 + 2 * margin)))))
        if side > max_side * s:
            continue
        top = int(round(min(max((y0 + y1 - side) / 2, 0), s - side)))
        left = int(round(min(max((x0 + x1 - side) / 2, 0), s - side)))
        out[i] = resize_short_side_center_crop(clips[i, :, :, top : top + side, left : left + side], s)
        sides[i] = side
    return out, sides


def parse_probe(text: str) -> tuple[ProbeSpec, bool]:
    """``NAME=FOLDER:SPLITCSV:PERSONSCSV[:all]`` -> (probe spec, whether its test persons count too)."""
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    every = parts[-1] == "all"
    parts = parts[:-1] if every else parts
    if not (sep and name and len(parts) == 3):
        raise argparse.ArgumentTypeError(f"--probe {text!r}: expected NAME=FOLDER:SPLITCSV:PERSONSCSV[:all]")
    folder, split, persons = (Path(p) for p in parts)
    return ProbeSpec(name=name, data=folder, split_file=split, persons_file=persons), every


def recipe_probes(encoder_spec: str) -> list[ProbeSpec]:
    """The person-disjoint probes of the entry's recipe (its last stage) that are on this machine."""
    from tinyact.training.zoo_build import read_recipe, recipe_stages

    if not encoder_spec.startswith("zoo:"):
        return []
    stage = recipe_stages(read_recipe(encoder_spec[4:] or DEFAULT_ENCODER))[-1]
    specs = [ProbeSpec.model_validate(p) for p in stage["pretrain"].get("probes", [])]
    return [s for s in specs if Path(s.data).is_dir() and s.persons_file is not None]


def all_persons(spec: ProbeSpec, folder: Path) -> ProbeSpec:
    """``spec`` with a split file that puts every clip outside the test split (a probe over all persons)."""
    assert spec.split_file is not None  # probes() keeps only specs with person lists
    with open(spec.split_file, newline="") as handle:
        rows = list(csv.reader(handle))
    path = folder / f"{spec.name}-all-split.csv"
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([rows[0], *([row[0], "train"] for row in rows[1:])])
    return spec.model_copy(update={"split_file": path})


def recorded_and_mirrored(model: torch.nn.Module, clips: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Latents of uint8 ``clips`` as recorded, and the mean of those and of the clips mirrored left-right."""
    plain = encode_clips(model, clips, torch.device("cpu"))
    return plain, (plain + encode_clips(model, clips.flip(-1), torch.device("cpu"))) / 2


def lopo(model: torch.nn.Module, clips: torch.Tensor, labels: np.ndarray, groups: np.ndarray,
         cropped: torch.Tensor | None = None) -> dict[str, float]:
    """Leave-one-person-out top-1 (%) as recorded and mirrored, of the windows ``clips`` ``[N, K, T, 3, S, S]``
    (with ``cropped``: of the mean latent of the full and the cropped windows)."""
    plain, mirrored = recorded_and_mirrored(model, clips)
    if cropped is not None:
        crop_plain, crop_mirrored = recorded_and_mirrored(model, cropped)
        plain, mirrored = (plain + crop_plain) / 2, (mirrored + crop_mirrored) / 2
    return {"recorded": round(100 * probe_accuracy(plain, labels, 0, groups=groups), 1),
            "mirrored": round(100 * probe_accuracy(mirrored, labels, 0, groups=groups), 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="zoo:everyday-64", help="zoo:NAME or a model file")
    parser.add_argument("--sizes", default="64,68,72,76,80", help="comma-separated read sizes (px)")
    parser.add_argument("--probe", action="append", type=parse_probe, default=[],
                        metavar="NAME=FOLDER:SPLITCSV:PERSONSCSV[:all]", help="more real footage (repeatable)")
    parser.add_argument("--work", type=Path, default=Path("runs/reading_at_test_time"), help="clip caches")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    model, info = load_model_spec(args.encoder)
    entry = info.get("zoo")
    trained = int(info["config"]["input_size"][0])
    sampling = entry.clip_sampling().model_dump(exclude={"num_frames", "size", "threads"}) if entry else None
    frames = int(info["config"]["num_frames"])
    sizes = [int(s) for s in args.sizes.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    probes = [(s, False) for s in recipe_probes(args.encoder)] + args.probe
    if not probes:
        raise SystemExit("no real footage: the recipe's probes are not on this machine and no --probe was given")
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec, every in probes:
            spec = all_persons(spec, Path(tmp)) if every else spec
            rows: dict[str, Any] = {}
            loaded = {}
            for size in sizes:
                loaded[size] = data = load_probe(spec, frames, size, args.work, sampling)
                assert data.groups is not None  # probes() keeps only specs with person lists
                rows[f"size {size}"] = lopo(model, data.clips, data.labels, data.groups)
                console.print(f"{spec.name} size {size}: {rows[f'size {size}']}")
            data = loaded.get(trained) or load_probe(spec, frames, trained, args.work, sampling)
            groups = data.groups
            assert groups is not None
            clips = data.clips if data.clips.dim() == 6 else data.clips[:, None]  # [N, K windows, T, 3, S, S]
            windows = clips.reshape(-1, *clips.shape[2:])
            for name, options in CROPS.items():
                cropped, sides = motion_crop(windows, **options)
                cropped = cropped.reshape(clips.shape)
                rows[f"crop {name}"] = {**lopo(model, cropped, data.labels, groups),
                                        "mean_side_px": round(float(sides.mean()), 1)}
                rows[f"full + crop {name}"] = lopo(model, clips, data.labels, groups, cropped)
                console.print(f"{spec.name} crop {name}: {rows[f'crop {name}']}, with full {rows[f'full + crop {name}']}")
            results[spec.name] = {"clips": len(data.labels), "persons": len(set(groups)),
                                  "test_persons_included": every, "top1": rows}
    names = list(results)
    readings = list(results[names[0]]["top1"])
    print_table(f"{args.encoder} (trained at {trained} px): leave-one-person-out top-1 %, recorded / mirrored",
                ["reading", *[f"{n} ({results[n]['clips']} clips, {results[n]['persons']} persons)" for n in names]],
                [[r, *[f"{results[n]['top1'][r]['recorded']:.1f} / {results[n]['top1'][r]['mirrored']:.1f}"
                       for n in names]] for r in readings])
    result = {"protocol": "leave-one-person-out, fixed standardised logistic regression (C = 0.5), non-test "
                          "persons (all persons where test_persons_included); windows of the entry's sampling",
              "encoder": args.encoder, "encoder_hash": str(info["hash"]), "trained_size": trained,
              "datasets": results, "seconds": round(time.perf_counter() - started)}
    if args.json:
        save_results(args.json, result)
    return result


if __name__ == "__main__":
    main()
