"""The paper's Table 2 on any dataset we have: KD student set-ups, and classifiers on each student's latents.

::

    DATA ─► manifest + clip cache                                                      RUN/manifest.csv, RUN/cache/
         ─► teacher: the in-project teacher trained here (spec ``inproject``) or any spec   RUN/teacher/
         ─► teacher logits + embeddings for every clip (CachedLogits)                    RUN/teacher_logits.npz
         ─► unsupervised autoencoder (``tinyact train ae``): start point of pretrained/frozen RUN/ae/
         ─► KD students: scratch, pretrained, frozen, feature_kd (+ ce_only: no teacher)   RUN/kd/<set-up>/
         ─► latents of every student's encoder and of the unsupervised AE                 RUN/latents/<name>.npz
         ─► mlp / svm / rf / xgboost / dt on each latents file (k-fold grid search)        RUN/classifiers/<name>/<kind>/
         ─► RUN/metrics.json, RUN/table2.md, RUN/config.yaml

Every stage resumes: training runs carry on from their checkpoints, a finished KD run (``result.json``) or
classifier (``search.json``) is not redone, the caches and extraction pick up where they stopped.

``metrics.json`` (top-1 as fractions)::

    {"setups": {"scratch": {"kd_top1", "mlp", "svm", "rf", "xgboost", "dt"}, "pretrained": …, "frozen": …,
                "feature_kd": …},
     "teacher_top1": …, "no_kd": {"mlp", "svm", …}, "ce_only": {"kd_top1", "mlp", …}, "paper": {…}, …}

``no_kd`` is the Table 1 baseline: the same classifiers on the unsupervised autoencoder's latents;
``ce_only`` is the scratch student trained with CE + reconstruction but no teacher (the KD target compares
``setups.scratch.kd_top1`` with it).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tinyact.data.manifest import Manifest
from tinyact.data.video import ClipSampling
from tinyact.errors import DatasetError
from tinyact.experiments.dataset import DatasetSource
from tinyact.experiments.table2_report import PAPER_TABLE2, render_table, targets
from tinyact.paths import atomic_write_text

logger = logging.getLogger(__name__)

Setup = Literal["scratch", "pretrained", "frozen", "feature_kd"]
SETUPS: tuple[Setup, ...] = ("scratch", "pretrained", "frozen", "feature_kd")
CLASSIFIERS = ("mlp", "svm", "rf", "xgboost", "dt")


class Table2Config(DatasetSource):
    """Everything ``tinyact experiment table2`` runs with (echoed to ``RUN/config.yaml``)."""

    teacher: str = Field("inproject", title="Teacher spec", description="'inproject' trains the in-project teacher")
    teacher_train: dict[str, Any] = Field(
        default_factory=dict, title="TeacherTrainConfig fields for the in-project teacher (e.g. epochs, preset)"
    )
    size: int = Field(112, ge=16, title="Crop size (px)")
    frames: int = Field(16, ge=2, title="Frames per clip")
    preset: str = Field("fast", title="Student autoencoder preset")
    ae: dict[str, Any] = Field(default_factory=dict, title="AETrainConfig fields for the unsupervised AE (e.g. epochs)")
    epochs: int = Field(30, ge=1, title="KD epochs per set-up")
    kd: dict[str, Any] = Field(default_factory=dict, title="KDConfig fields shared by every set-up (e.g. lr, optimizer)")
    setups: list[Setup] = Field(list(SETUPS), title="Set-ups")
    feature_kd: float = Field(1.0, gt=0, title="δ of the feature_kd set-up")
    ce_only: bool = Field(True, title="Also train the scratch student without a teacher (the CE-only baseline)")
    classifiers: list[str] = Field(list(CLASSIFIERS), min_length=1, title="Classifiers on the latents")
    folds: int = Field(10, ge=2, title="Stratified k-fold CV on train (fewer when a class is smaller)")
    grids: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"mlp": {"lr": 1e-3, "lr_min": 1e-5, "max_epochs": 300, "patience": 40}},
        title="Grid overrides per classifier kind",
        description="the MLP default scales the paper's lr 1e-5 -> 1e-6 up for a dataset with few steps per epoch",
    )
    batch_size: int = Field(8, ge=1, title="Batch size (teacher, AE, KD)")
    jobs: int = Field(1, ge=1, title="Training runs at once", description="KD set-ups and the AE in parallel processes")
    seed: int = Field(0, title="Seed")
    workers: int = Field(0, ge=0, title="Decoder processes for the clip cache (0 = one per core)")
    device: str = Field("auto", title="Device")


def _machine() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg": [round(v, 2) for v in load] if load else None}


def make_manifest(cfg: Table2Config) -> Path:
    """Read the dataset in its layout and write ``RUN/manifest.csv`` (kept on a resumed run)."""
    from tinyact.data.layouts import read_layout

    path = Path(cfg.out) / "manifest.csv"
    if path.exists():
        return path
    entries, report = read_layout(cfg.layout, cfg.data, split_file=cfg.split_file, annotations=cfg.annotations,
                                  labels=cfg.labels, seed=cfg.seed)
    if not entries:
        raise DatasetError(f"no usable clips found in {cfg.data} ({report.missing} listed but missing)")
    manifest = Manifest(entries, Path(cfg.data).resolve())
    missing = {"train", "val", "test"} - {e.split for e in manifest.entries}
    if missing:
        raise DatasetError(f"{cfg.data}: no {', '.join(sorted(missing))} clips; Table 2 needs train, val and test")
    manifest.write(path)
    return path


def _teacher(cfg: Table2Config, manifest_path: Path, cache_dir: Path, timings: dict[str, float]) -> str:
    """The teacher spec to use, training the in-project teacher first for ``inproject``."""
    if cfg.teacher != "inproject":
        return cfg.teacher
    from tinyact.training.teacher import TeacherTrainConfig, train_teacher

    run = Path(cfg.out) / "teacher"
    if not (run / "model.pt").exists():
        started = time.perf_counter()
        fields = {"manifest": manifest_path, "out": run, "cache_dir": cache_dir, "size": cfg.size, "frames": cfg.frames,
                  "batch_size": cfg.batch_size, "seed": cfg.seed, "device": cfg.device, **cfg.teacher_train}
        train_teacher(TeacherTrainConfig.from_dict(fields), resume=True)
        timings["teacher_train_s"] = time.perf_counter() - started
    return f"inproject:{run / 'model.pt'}"


def _autoencoder(cfg: Table2Config, manifest_path: Path, cache_dir: Path, timings: dict[str, float]) -> Path:
    from tinyact.training.ae import AETrainConfig, train_autoencoder

    run = Path(cfg.out) / "ae"
    if (run / "model.pt").exists() and (run / "done").exists():
        return run / "model.pt"
    started = time.perf_counter()
    fields = {"manifest": manifest_path, "out": run, "preset": cfg.preset, "size": cfg.size, "frames": cfg.frames,
              "batch_size": cfg.batch_size, "seed": cfg.seed, "device": cfg.device, "cache_dir": cache_dir,
              "workers": cfg.workers, **cfg.ae}
    result = train_autoencoder(AETrainConfig.from_dict(fields), resume=True)
    (run / "done").write_text(result.encoder_hash)
    timings["ae_train_s"] = time.perf_counter() - started
    return Path(result.checkpoint)


def _kd_run(cfg: Table2Config, name: str, manifest_path: Path, cache_dir: Path, logits: Path | None,
            ae_model: Path | None, timings: dict[str, float]) -> dict[str, Any]:
    from tinyact.training.kd import KDConfig, train_kd

    run = Path(cfg.out) / "kd" / name
    done = run / "result.json"
    if not done.exists():
        setup = {"feature_kd": "scratch", "ce_only": "scratch"}.get(name, name)
        fields: dict[str, Any] = {
            "manifest": manifest_path, "out": run, "cache_dir": cache_dir, "setup": setup, "preset": cfg.preset,
            "size": cfg.size, "frames": cfg.frames, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "seed": cfg.seed, "device": cfg.device, **cfg.kd,
        }
        if setup != "scratch":
            fields["pretrained"] = ae_model
        if name != "ce_only":
            fields["teacher_logits"] = logits
        if name == "feature_kd":
            fields["feature_kd"] = cfg.feature_kd
        started = time.perf_counter()
        train_kd(KDConfig.from_dict(fields), resume=True)
        timings[f"kd_{name}_s"] = time.perf_counter() - started
    return json.loads(done.read_text())


def _ae_job(cfg: Table2Config, manifest_path: Path, cache_dir: Path) -> tuple[Path, dict[str, float]]:
    from tinyact.console import setup_logging

    setup_logging()
    timings: dict[str, float] = {}
    return _autoencoder(cfg, manifest_path, cache_dir, timings), timings


def _kd_job(cfg: Table2Config, name: str, manifest_path: Path, cache_dir: Path, logits: Path,
            ae_model: Path | None) -> dict[str, float]:
    from tinyact.console import setup_logging

    setup_logging()
    timings: dict[str, float] = {}
    _kd_run(cfg, name, manifest_path, cache_dir, logits, ae_model, timings)
    return timings


def _train_parallel(cfg: Table2Config, names: list[str], manifest_path: Path, cache_dir: Path, logits: Path,
                    timings: dict[str, float]) -> None:
    """Train the AE and the KD students in ``cfg.jobs`` processes (pretrained/frozen once the AE is done)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no forked OpenMP/torch state in the workers
    with ProcessPoolExecutor(cfg.jobs, mp_context=context) as pool:
        ae_future = pool.submit(_ae_job, cfg, manifest_path, cache_dir)
        students: set[Future[dict[str, float]]] = {
            pool.submit(_kd_job, cfg, n, manifest_path, cache_dir, logits, None)
            for n in names if n not in ("pretrained", "frozen")}
        pending: set[Future[Any]] = {ae_future, *students}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if future is ae_future:
                    ae_model, ae_timings = ae_future.result()  # re-raises a worker's error
                    timings.update(ae_timings)
                    pending |= {pool.submit(_kd_job, cfg, n, manifest_path, cache_dir, logits, ae_model)
                                for n in names if n in ("pretrained", "frozen")}
                else:
                    timings.update(future.result())


def _classify(cfg: Table2Config, name: str, encoder: Path, manifest: Manifest, cache_dir: Path,
              timings: dict[str, float]) -> dict[str, float]:
    """Latents of ``encoder`` for every clip, then every classifier; ``{kind: test top-1}``."""
    from tinyact.classifiers.search import fit_classifier
    from tinyact.latents import LatentsFile
    from tinyact.training.extract import extract_latents

    out = Path(cfg.out)
    latents_path = out / "latents" / f"{name}.npz"
    sampling = ClipSampling(num_frames=cfg.frames, size=cfg.size)
    started = time.perf_counter()
    latents = extract_latents(encoder, manifest, sampling, latents_path, cache_dir=cache_dir,
                              batch_size=cfg.batch_size, device=cfg.device)
    timings[f"extract_{name}_s"] = time.perf_counter() - started
    scores: dict[str, float] = {}
    for kind in cfg.classifiers:
        folder = out / "classifiers" / name / kind
        summary = folder / "search.json"
        if summary.exists():
            scores[kind] = json.loads(summary.read_text())["metrics"]["top1"]
            continue
        started = time.perf_counter()
        result = fit_classifier(latents if isinstance(latents, LatentsFile) else LatentsFile.load(latents_path), kind,
                                folder, folds=cfg.folds, grid=cfg.grids.get(kind), seed=cfg.seed)
        timings[f"fit_{name}_{kind}_s"] = time.perf_counter() - started
        scores[kind] = float(result.metrics["top1"])
    return scores


def _teacher_test_top1(logits: Path, manifest: Manifest) -> float | None:
    from tinyact.teachers import CachedLogits

    cached = CachedLogits.load(logits).for_dataset(manifest.label_names)
    test = [e for e in manifest.entries if e.split == "test" and e.clip_id in cached]
    if not test:
        return None
    predicted, _ = cached.lookup([e.clip_id for e in test])
    truth = [manifest.label_index(e.label) for e in test]
    return float((predicted.argmax(1).numpy() == truth).mean())


def run_table2(cfg: Table2Config) -> dict[str, Any]:
    """Run every stage (resuming what is done) and write ``RUN/metrics.json`` and ``RUN/table2.md``."""
    from tinyact.data.cache import build_cache
    from tinyact.teachers import cache_teacher, load_teacher

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out)
    timings: dict[str, float] = {}
    manifest_path = make_manifest(cfg)
    manifest = Manifest.read(manifest_path)
    sampling = ClipSampling(num_frames=cfg.frames, size=cfg.size)
    cache_dir = out / "cache"
    started = time.perf_counter()
    build_cache(manifest, cache_dir, sampling, workers=cfg.workers)
    timings["cache_s"] = time.perf_counter() - started

    spec = _teacher(cfg, manifest_path, cache_dir, timings)
    logits_path = out / "teacher_logits.npz"
    started = time.perf_counter()
    cache_teacher(load_teacher(spec), manifest, sampling, logits_path, cache_dir=cache_dir,
                  batch_size=cfg.batch_size, teacher_spec=spec)
    timings["teacher_logits_s"] = time.perf_counter() - started

    runs: dict[str, dict[str, Any]] = {}
    names = list(cfg.setups) + (["ce_only"] if cfg.ce_only else [])
    if cfg.jobs > 1:
        _train_parallel(cfg, names, manifest_path, cache_dir, logits_path, timings)
    # Students that start from scratch first; the unsupervised AE (also the no-KD baseline) when first needed.
    names.sort(key=lambda n: n in ("pretrained", "frozen"))
    ae_model: Path | None = None
    for name in names:
        if name in ("pretrained", "frozen") and ae_model is None:
            ae_model = _autoencoder(cfg, manifest_path, cache_dir, timings)
        result = _kd_run(cfg, name, manifest_path, cache_dir, logits_path, ae_model, timings)
        scores = _classify(cfg, name, out / "kd" / name / "model.pt", manifest, cache_dir, timings)
        runs[name] = {"kd_top1": result["test_top1"], **scores, "val_top1": result["val_top1"],
                      "encoder_hash": result["encoder_hash"], "val_psnr": result.get("val_psnr")}
    if ae_model is None:
        ae_model = _autoencoder(cfg, manifest_path, cache_dir, timings)
    no_kd = _classify(cfg, "no_kd", ae_model, manifest, cache_dir, timings)

    metrics = {
        "setups": {name: runs[name] for name in cfg.setups},
        "teacher_top1": _teacher_test_top1(logits_path, manifest),
        "no_kd": no_kd,
        "ce_only": runs.get("ce_only"),
        "teacher": spec,
        "paper": PAPER_TABLE2,
        "targets": targets(runs, no_kd, sum(e.split == "test" for e in manifest.entries)),
        "n_train": sum(e.split == "train" for e in manifest.entries),
        "n_val": sum(e.split == "val" for e in manifest.entries),
        "n_test": sum(e.split == "test" for e in manifest.entries),
        "classes": manifest.label_names,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "machine": _machine(),
        "config": cfg.model_dump(mode="json"),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out / "table2.md", render_table(metrics, cfg.classifiers))
    write_run_bundle(out, [*cfg.setups, *(["ce_only"] if cfg.ce_only else [])], cfg.classifiers)
    return metrics


def write_run_bundle(out: Path, setups: list[str], classifiers: list[str]) -> Path | None:
    """``RUN/bundle/``: the student encoder and classifier a user would deploy, chosen on val (the classifier's
    val top-1, then its k-fold CV score) among every set-up's classifiers; test numbers choose nothing."""
    from tinyact.classifiers.bundle import bundle_from_latents

    def key(pair: tuple[str, str]) -> tuple[float, float]:
        summary = json.loads((out / "classifiers" / pair[0] / pair[1] / "search.json").read_text())
        cv = [c["cv_top1"] for c in summary.get("candidates", []) if c.get("cv_top1") is not None]
        return (summary.get("val_top1") or -1.0, max(cv) if cv else -1.0)

    pairs = [(s, k) for s in setups for k in classifiers if (out / "classifiers" / s / k / "search.json").is_file()]
    if not pairs:
        return None
    setup, kind = max(pairs, key=key)
    bundle = bundle_from_latents(out / "latents" / f"{setup}.npz", out / "classifiers" / setup / kind, out / "bundle")
    if bundle is None:
        logger.warning("table2: no bundle written: the %s student's encoder file is not where its latents say", setup)
        return None
    logger.info("table2: wrote the bundle %s (%s student, %s)", bundle.path, setup, kind)
    return bundle.path
