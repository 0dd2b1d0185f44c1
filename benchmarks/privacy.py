"""Privacy audit, end to end: synthetic actors -> autoencoder -> latents -> inversion attack, probes, defences.

    python benchmarks/privacy.py --json docs/results/privacy.json --grid docs/img/privacy-grid.png
    python benchmarks/privacy.py --quick          # seconds, tiny set (used by the test suite)
    python benchmarks/privacy.py --data DIR --ae-checkpoint model.pt --kd-checkpoint student.pt

Steps: generate (or reuse, ``--data``) a synthetic action set whose splits have disjoint actors; build the clip
cache; train the ``fast`` autoencoder briefly with the project's trainer (``tinyact.training.ae``) or load
``--ae-checkpoint``; extract latents (``tinyact.training.extract``, which also carries the actor/scene columns);
optionally encode with a KD student (``--kd-checkpoint``, any model file with ``encode``); then
:func:`benchmarks.privacy_audit.run_audit`.
Prints the tables, writes JSON (with the machine and its load) and the PNG grid.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import markdown_table, print_table, save_results  # noqa: E402
from benchmarks.privacy_audit import AuditData, EncodedSet, PrivacyConfig, run_audit  # noqa: E402
from tinyact.data.cache import ClipCache, build_cache  # noqa: E402
from tinyact.data.layouts import read_kinetics  # noqa: E402
from tinyact.data.manifest import Manifest  # noqa: E402
from tinyact.data.synth import SynthConfig, generate  # noqa: E402
from tinyact.data.video import ClipSampling  # noqa: E402
from tinyact.models.autoencoder3d import VideoAutoEncoder3D  # noqa: E402
from tinyact.models.base import config_of  # noqa: E402
from tinyact.models.checkpoint import load_model  # noqa: E402
from tinyact.training.ae import AETrainConfig, train_autoencoder  # noqa: E402
from tinyact.training.extract import extract_latents  # noqa: E402

logger = logging.getLogger("tinyact.benchmarks.privacy")



def prepare_data(args: argparse.Namespace, work: Path) -> tuple[Manifest, Path, ClipSampling]:
    """Generate (or reuse) the synthetic set, write its manifest and build the clip cache."""
    data = Path(args.data) if args.data else work / "synth"
    if not (data / "annotations").is_dir():
        generate(SynthConfig(out=data, classes=args.classes, clips_per_class=args.clips_per_class, size=args.size,
                             min_seconds=args.seconds[0], max_seconds=args.seconds[1], actors=args.actors,
                             seed=args.seed, workers=args.workers))
    entries, _ = read_kinetics(data)
    manifest = Manifest(entries, data)
    manifest_path = manifest.write(work / "manifest.csv")
    sampling = ClipSampling(num_frames=args.frames, size=args.size)
    build_cache(manifest, work / "cache", sampling, workers=args.workers)
    return Manifest.read(manifest_path), manifest_path, sampling


def load_clips(manifest: Manifest, cache_dir: Path) -> tuple[list[str], np.ndarray]:
    """Clip ids and uint8 clips ``[N, T, 3, S, S]`` of every manifest entry that is in the cache."""
    cache = ClipCache(cache_dir)
    ids = [e.clip_id for e in manifest.entries if e.clip_id in cache]
    return ids, np.stack([np.asarray(cache.get_array(i))[0] for i in ids])



def train_ae(args: argparse.Namespace, manifest_path: Path, work: Path) -> tuple[torch.nn.Module, Path, str]:
    """The victim autoencoder, its model file, and how it was made."""
    if args.ae_checkpoint:
        model, _ = load_model(args.ae_checkpoint)
        return model, Path(args.ae_checkpoint), f"loaded {args.ae_checkpoint}"
    cfg = AETrainConfig(manifest=manifest_path, out=work / "ae", kind="ae3d", preset="fast", size=args.size,
                        frames=args.frames, batch_size=args.batch_size, lr=args.ae_lr, epochs=args.ae_epochs,
                        seed=args.seed, workers=args.workers, precision="fp32", device="cpu",
                        cache_dir=work / "cache", grid_clips=0, threads=args.threads)
    result = train_autoencoder(cfg)
    model, _ = load_model(result.checkpoint)
    return model, result.checkpoint, f"tinyact.training.ae.train_autoencoder, {args.ae_epochs} epoch(s)"


def train_kd_student(args: argparse.Namespace, manifest_path: Path, work: Path, ae_checkpoint: Path) -> tuple[Path, dict[str, Any]]:
    """Brief KD with the project's trainers: the in-project teacher (``small``), then the student from the
    unsupervised autoencoder (set-up ``pretrained``) with CE + KD + reconstruction. Returns the student's
    autoencoder file and a summary."""
    from tinyact.training.kd import KDConfig, train_kd
    from tinyact.training.teacher import TeacherTrainConfig, train_teacher

    common = {"manifest": manifest_path, "cache_dir": work / "cache", "size": args.size, "frames": args.frames,
              "batch_size": args.batch_size, "seed": args.seed, "device": "cpu"}
    teacher = train_teacher(TeacherTrainConfig(out=work / "teacher", preset="small", epochs=args.teacher_epochs, **common))
    kd = train_kd(KDConfig(out=work / "kd", setup="pretrained", pretrained=ae_checkpoint, teacher=f"inproject:{teacher.checkpoint}",
                           epochs=args.kd_epochs, warmup_epochs=max(1, args.kd_epochs // 3), optimizer="adamw", lr=args.kd_lr,
                           lr_min=args.kd_lr / 10, head_dim=256, head_depth=2, **common))
    summary = {"teacher": str(teacher.checkpoint), "teacher_val_top1": teacher.val_top1, "teacher_test_top1": teacher.test_top1,
               "teacher_epochs": args.teacher_epochs, "kd_epochs": args.kd_epochs, "student_val_top1": kd.val_top1,
               "student_test_top1": kd.test_top1, "setup": "pretrained (from the unsupervised AE), CE + KD + reconstruction"}
    return kd.checkpoint, summary


def frame_decoder(model: torch.nn.Module) -> Any:
    """The model's own ``decode`` when it reconstructs frames; None for other models and for ``input_mode:
    residual`` and ``rgb+residual`` autoencoders, whose decoder draws the motion residual (mid-grey where nothing moves), which
    scored against the frames would look like a failed attack rather than what the model keeps."""
    if not isinstance(model, VideoAutoEncoder3D) or model.config.input_mode != "rgb":
        return None
    return model.decode



def extract(model: torch.nn.Module, manifest: Manifest, sampling: ClipSampling, work: Path, name: str,
            ids: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """Latents in ``ids`` order, the metadata columns carried with them, and how they were made."""
    lf = extract_latents(model, manifest, sampling, work / f"latents_{name}.npz", cache_dir=work / "cache")
    row = {cid: i for i, cid in enumerate(lf.clip_ids.tolist())}
    order = np.array([row[i] for i in ids])
    columns = {c: lf.column(c)[order] for c in ("actor", "scene") if c in lf.meta.get("columns", {})}
    return lf.latents[order], columns, "tinyact.training.extract.extract_latents"


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "inf" if value == float("inf") else f"{value:.{digits}f}"
    return str(value)


def report(results: dict[str, Any]) -> str:
    """Print the tables and return them as markdown."""
    parts = []
    cols = ["encoder", "wire", "method", "PSNR dB", "±", "SSIM", "±"]
    rows = [[r["encoder"], r["wire"], r["method"], _fmt(r["psnr"], 2), _fmt(r["psnr_std"], 2), _fmt(r["ssim"]), _fmt(r["ssim_std"])]
            for r in results["attack"]]
    print_table("Inversion attack on held-out actors", cols, rows)
    parts.append("### Inversion attack\n\n" + markdown_table(cols, rows))
    cols = ["representation", "probe", "target", "accuracy", "± folds", "majority", "uniform", "classes"]
    rows = [[r["encoder"], r["kind"], r["target"], _fmt(r["accuracy"]), _fmt(r["accuracy_std"]), _fmt(r["majority"]),
             _fmt(r["uniform"]), r["classes"]] for r in results["probes"]]
    print_table(f"Attribute probes ({results['config']['folds']}-fold, stratified; identity from the action label "
                f"alone: {results['identity_from_action_label']:.3f})", cols, rows)
    parts.append("### Attribute probes\n\n" + markdown_table(cols, rows))
    cols = ["encoder", "probe", "action top-1 (held-out actors)", "uniform"]
    rows = [[r["encoder"], r["kind"], _fmt(r["accuracy_held_out_actors"]), _fmt(r["uniform"])] for r in results["action"]]
    print_table("Action accuracy from the same latents", cols, rows)
    parts.append("### Action\n\n" + markdown_table(cols, rows))
    cols = ["defence", "action top-1", "identity acc", "scene acc", "attack PSNR", "attack SSIM", "naive PSNR", "naive SSIM"]
    rows = [[r["defence"], _fmt(r["action_accuracy"]), _fmt(r["identity_accuracy"]), _fmt(r["scene_accuracy"]),
             _fmt(r["attack_psnr"], 2), _fmt(r["attack_ssim"]), _fmt(r["naive_attack_psnr"], 2), _fmt(r["naive_attack_ssim"])]
            for r in results["defences"]]
    print_table(f"Defences on {results['defences'][0]['encoder'] if results['defences'] else '-'} latents", cols, rows)
    parts.append("### Defences\n\n" + markdown_table(cols, rows))
    return "\n\n".join(parts)


def plot_defences(results: dict[str, Any], out: Path) -> Path:
    """Trade-off curve: action top-1 against identity accuracy and attack PSNR, one point per defence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["defences"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "identity_accuracy", "identity accuracy (logreg)"),
                           (axes[1], "attack_psnr", "adaptive attack PSNR (dB)")):
        for kind, marker in (("none", "o"), ("noise", "s"), ("quant", "^")):
            points = [r for r in rows if r["spec"].split(":")[0] == kind]
            if points:
                ax.plot([r["action_accuracy"] for r in points], [r[key] for r in points], marker=marker,
                        linestyle="-" if kind != "none" else "", label=kind)
                for r in points:
                    ax.annotate(r["defence"].replace("noise ", "").replace("quant ", ""), (r["action_accuracy"], r[key]),
                                fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("action top-1, held-out actors")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    chance = [p for p in results["probes"] if p["target"] == "actor" and p["kind"] == "logreg"]
    if chance:
        axes[0].axhline(chance[0]["uniform"], color="grey", linestyle=":", label="chance")
    mean_frame = [r for r in results["attack"] if r["method"] == "mean frame"]
    if mean_frame:
        axes[1].axhline(mean_frame[0]["psnr"], color="grey", linestyle=":", label="mean frame")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"Defences on {rows[0]['encoder']} latents: cost (x) vs leakage (y)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="seconds: tiny set, 1 epoch each (for the tests)")
    parser.add_argument("--data", type=Path, default=None, help="existing synthetic dataset (else generated)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the data, cache, models (default: temporary)")
    parser.add_argument("--size", type=int, default=64, help="clip size (px), square")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--classes", type=int, default=12)
    parser.add_argument("--clips-per-class", type=int, default=20)
    parser.add_argument("--actors", type=int, default=20)
    parser.add_argument("--seconds", type=float, nargs=2, default=(1.5, 2.5))
    parser.add_argument("--ae-checkpoint", type=Path, default=None, help="use this trained autoencoder")
    parser.add_argument("--kd-checkpoint", type=Path, default=None, help="a KD student model file (latents with `encode`)")
    parser.add_argument("--kd", action="store_true", help="train a teacher and a KD student briefly (tinyact.training.kd)")
    parser.add_argument("--teacher-epochs", type=int, default=4)
    parser.add_argument("--kd-epochs", type=int, default=3)
    parser.add_argument("--kd-lr", type=float, default=3e-4)
    parser.add_argument("--ae-epochs", type=int, default=10)
    parser.add_argument("--ae-lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--attack-epochs", type=int, default=12)
    parser.add_argument("--attack-width", type=float, default=0.5)
    parser.add_argument("--defences", default="noise:0.5,noise:1,noise:2,quant:2")
    parser.add_argument("--defend", default=None, choices=["AE", "KD"],
                        help="latents the defences protect (default: AE; KD needs --kd or --kd-checkpoint)")
    parser.add_argument("--probes", default="logreg,rf")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="processes for generation and caching")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared machine extra OpenMP threads mostly spin)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--grid", type=Path, default=None, help="write the PNG grid here")
    parser.add_argument("--plot", type=Path, default=None, help="write the defence trade-off plot (PNG) here")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.frames, args.classes, args.clips_per_class, args.actors = 32, 4, 3, 10, 6
        args.seconds = (1.0, 1.2)
        args.ae_epochs, args.attack_epochs, args.attack_width, args.folds = 1, 2, 0.25, 3
        args.teacher_epochs, args.kd_epochs = 1, 1
        args.defences, args.probes = "noise:1,quant:2", "logreg"
    torch.manual_seed(args.seed)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    kd_summary: dict[str, Any] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tinyact-privacy-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        manifest, manifest_path, sampling = prepare_data(args, work)
        ids, clips = load_clips(manifest, work / "cache")
        by_id = {e.clip_id: e for e in manifest.entries}
        entries = [by_id[i] for i in ids]
        splits = np.array([e.split for e in entries])
        timings["data"] = time.perf_counter() - started
        mark = time.perf_counter()
        ae, ae_file, ae_how = train_ae(args, manifest_path, work)
        timings["autoencoder"] = time.perf_counter() - mark
        ae_latents, columns, latents_how = extract(ae, manifest, sampling, work, "ae", ids)
        actors = columns.get("actor", np.array([e.extra.get("actor", "") for e in entries]))
        scenes = columns.get("scene", np.array([e.extra.get("scene", "") for e in entries]))
        data = AuditData(clips=clips, labels=np.array([e.label for e in entries]), actors=actors, scenes=scenes, splits=splits)
        encoded = [EncodedSet("AE", ae_latents, config_of(ae), frame_decoder(ae))]
        kd_note: Any = "no KD student (give --kd to train one, or --kd-checkpoint)"
        kd_file = args.kd_checkpoint
        if args.kd and kd_file is None:
            mark = time.perf_counter()
            kd_file, kd_summary = train_kd_student(args, manifest_path, work, ae_file)
            timings["kd"] = time.perf_counter() - mark
        if kd_file:
            student, info = load_model(kd_file)
            kd_latents, _, _ = extract(student, manifest, sampling, work, "kd", ids)
            decoder = frame_decoder(student)
            config = student.config if isinstance(student, VideoAutoEncoder3D) else config_of(ae)
            encoded.append(EncodedSet("KD", kd_latents, config, decoder))
            kd_note = {"model": str(kd_file), "kind": info.get("kind"), "hash": info.get("hash"), **kd_summary}
        cfg = PrivacyConfig(
            attack_epochs=args.attack_epochs, attack_width=args.attack_width, folds=args.folds,
            probe_kinds=args.probes.split(","), defences=[d for d in args.defences.split(",") if d],
            grid_defence=next((d for d in args.defences.split(",") if d == "noise:1"), args.defences.split(",")[0]),
            seed=args.seed, defended_encoder=args.defend,
        )
        grid = args.grid or (work / "privacy-grid.png")
        mark = time.perf_counter()
        results = run_audit(data, encoded, cfg, grid_path=grid)
        timings["audit"] = time.perf_counter() - mark
    results.update({
        "autoencoder": ae_how, "latents": latents_how, "kd": kd_note,
        "dataset": {"classes": args.classes, "clips_per_class": args.clips_per_class, "actors": args.actors,
                    "size": args.size, "frames": args.frames, "data": str(args.data) if args.data else "generated"},
        "seconds": time.perf_counter() - started, "timings": timings,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    })
    torch.set_num_threads(threads_before)
    results["torch_threads"] = args.threads
    if args.plot and results["defences"]:
        results["plot"] = str(plot_defences(results, args.plot))
    results["markdown"] = report(results)
    save_results(args.json, results)
    return results


if __name__ == "__main__":
    from tinyact.console import setup_logging

    setup_logging()
    main()
