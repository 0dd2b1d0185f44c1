"""Bundles: one folder that deploys a trained pipeline — the encoder the edge runs, the classifier the cloud
serves, and the facts that keep the two consistent.

::

    BUNDLE/bundle.yaml     the manifest (below)
    BUNDLE/classifier/     a copy of the chosen saved-classifier folder (classifier.json + model.joblib)
    BUNDLE/encoder.pt      a copy of the encoder's model file — only when it is not a zoo encoder
    BUNDLE/metrics.json    the run's metrics (table1's metrics.json, or the classifier's own)
    BUNDLE/MODEL_CARD.md   what data, what accuracy on which split and protocol, the baselines beside it

``bundle.yaml``::

    format: 1
    encoder: {spec: zoo:everyday-64, hash: 61bf4d0669b2d1bb, weights_sha256: a376…}   # zoo: no weights copied
    #        {spec: encoder.pt, hash: …, file_sha256: …}                               # or a file in the bundle
    classifier: {folder: classifier, kind: svm, version: svm-1a2b3c4d5e6f}
    label_names: [clap, wave, …]
    preprocessing: {frames: 16, size: 64, normalization: imagenet, sampling: uniform}
    accuracy: {split: test, top1: 0.9, chosen_on: val, random_encoder_top1: 0.6, beats_random_encoder: true}
    source: {kind: table1, run: /path/to/RUN}

:func:`load_bundle` refuses a bundle whose classifier was fitted on latents of another encoder than the one it
names (with both hashes), and one whose zoo entry or encoder file no longer hashes as recorded. The cloud
(``cloud serve --model``, ``cloud model activate``) takes a bundle wherever it takes a classifier folder
(:func:`classifier_folder`); ``edge init --bundle`` writes an edge config from it (:meth:`Bundle.edge_yaml`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tinyact.classifiers.saved import ClassifierMismatchError, SavedClassifier, load_classifier, to_jsonable
from tinyact.errors import TinyActError
from tinyact.hashing import file_sha256

FORMAT_VERSION = 1
MANIFEST = "bundle.yaml"
CLASSIFIER_DIR = "classifier"
ENCODER_FILE = "encoder.pt"
CARD = "MODEL_CARD.md"
FEATURE_NAMES = {"random_encoder": "Random encoder (same architecture, untrained)", "raw_pixels": "Raw pixels",
                 "motion_history": "Motion history (MEI+MHI)"}


class BundleError(TinyActError):
    """A bundle is missing, malformed, or its encoder and classifier do not belong together."""


@dataclass
class Bundle:
    """A loaded bundle: the manifest's facts and the classifier (checked against the encoder hash)."""

    path: Path
    encoder: dict[str, Any]
    classifier: SavedClassifier
    label_names: list[str]
    preprocessing: dict[str, Any]
    accuracy: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def encoder_hash(self) -> str:
        return str(self.encoder["hash"])

    @property
    def encoder_spec(self) -> str:
        """What an edge config's ``encoder.checkpoint`` takes: ``zoo:NAME`` or the absolute path of the copy."""
        spec = str(self.encoder["spec"])
        return spec if spec.startswith("zoo:") else str((self.path / spec).resolve())

    def edge_yaml(self) -> str:
        """The ``edge.yaml`` lines that make an edge device send latents this bundle's classifier accepts."""
        size, frames = self.preprocessing.get("size"), self.preprocessing.get("frames")
        return (f"encoder:\n  checkpoint: {self.encoder_spec}\n" + (f"  input_size: {size}\n" if size else "")
                + (f"schedule:\n  frames_per_clip: {frames}\n" if frames else ""))


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def classifier_folder(path: str | Path) -> Path:
    """The saved-classifier folder behind ``path``: a bundle's (checked with :func:`load_bundle`) or ``path``."""
    path = Path(path)
    if not is_bundle(path):
        return path
    return load_bundle(path).classifier.path or path / CLASSIFIER_DIR


def _encoder_reference(spec: str, encoder_hash: str, out: Path) -> dict[str, Any]:
    """``bundle.yaml``'s encoder: a zoo reference (spec, hash, weights SHA-256) or a copy of the model file."""
    if spec.startswith("zoo:"):
        from tinyact.zoo import DEFAULT_ENCODER, get_entry

        entry = get_entry(spec[4:] or DEFAULT_ENCODER)
        if entry.encoder_hash != encoder_hash:
            raise BundleError(f"zoo encoder {spec} has hash {entry.encoder_hash}, but the classifier's latents came from "
                              f"encoder {encoder_hash}; name the encoder file those latents were made with")
        return {"spec": f"zoo:{entry.name}", "hash": encoder_hash, "weights_sha256": entry.weights_sha256}
    source = Path(spec)
    if not source.is_file():
        raise BundleError(f"encoder file {source} not found; a bundle needs the encoder its classifier was fitted on")
    if _file_encoder_hash(source) != encoder_hash:
        raise BundleError(f"encoder file {source} has hash {_file_encoder_hash(source)}, but the classifier's latents "
                          f"came from encoder {encoder_hash}")
    shutil.copyfile(source, out / ENCODER_FILE)
    return {"spec": ENCODER_FILE, "hash": encoder_hash, "file_sha256": file_sha256(out / ENCODER_FILE),
            "copied_from": str(source.resolve())}


def _file_encoder_hash(path: Path) -> str:
    from tinyact.models.checkpoint import load_model, state_dict_hash

    model, info = load_model(path)
    return str(info.get("hash") or state_dict_hash(model.state_dict()))


def write_bundle(
    out: str | Path,
    *,
    encoder: str | Path,
    classifier: str | Path,
    preprocessing: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    accuracy: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    card: str | None = None,
) -> Bundle:
    """Write a bundle to the folder ``out`` (replacing an earlier bundle there) and return it loaded.

    ``encoder``: ``zoo:NAME`` (referenced) or a model file (copied). ``classifier``: a saved-classifier folder
    (copied). ``preprocessing``: ``frames``, ``size``, ``normalization``, ``sampling``. ``card``: the
    ``MODEL_CARD.md`` text (default: a short one from the classifier's facts).
    """
    out = Path(out)
    saved = load_classifier(classifier)
    if not saved.encoder_hash:
        raise BundleError(f"classifier {classifier} records no encoder hash; refit it on latents from `tinyact extract`")
    if out.exists():
        if not is_bundle(out) and any(out.iterdir()):
            raise BundleError(f"{out} exists and is not a bundle; choose an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(classifier, out / CLASSIFIER_DIR)
    manifest = {
        "format": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "encoder": _encoder_reference(str(encoder), saved.encoder_hash, out),
        "classifier": {"folder": CLASSIFIER_DIR, "kind": saved.kind, "version": saved.version},
        "label_names": list(saved.label_names),
        "preprocessing": {k: to_jsonable(v) for k, v in preprocessing.items()},
        "accuracy": to_jsonable(accuracy or {}),
        "source": to_jsonable(source or {}),
    }
    (out / MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    (out / "metrics.json").write_text(json.dumps(to_jsonable(metrics or saved.metrics), indent=2))
    (out / CARD).write_text(card or _short_card(manifest, saved))
    return load_bundle(out)


def load_bundle(path: str | Path) -> Bundle:
    """Read the bundle in ``path``; raises :class:`BundleError` when its parts do not belong together."""
    path = Path(path)
    if not is_bundle(path):
        raise BundleError(f"{path} is not a bundle (no {MANIFEST}); make one with `tinyact bundle RUN --out DIR`")
    try:
        info = yaml.safe_load((path / MANIFEST).read_text()) or {}
        encoder, preprocessing = dict(info["encoder"]), dict(info["preprocessing"])
        folder = path / str(info["classifier"]["folder"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{path / MANIFEST} is malformed ({type(error).__name__}: {error})") from None
    if info.get("format") != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {info.get('format')} is not supported (need {FORMAT_VERSION})")
    _check_encoder(path, encoder)
    try:
        saved = load_classifier(folder, encoder_hash=str(encoder["hash"]))
    except ClassifierMismatchError:
        raise BundleError(
            f"bundle {path}: its classifier was fitted on latents of encoder {load_classifier(folder).encoder_hash}, "
            f"but the bundle's encoder ({encoder['spec']}) is {encoder['hash']}; its predictions would be meaningless. "
            "Rebuild the bundle with `tinyact bundle RUN --out DIR` from the run that fitted the classifier"
        ) from None
    return Bundle(path, encoder, saved, list(info.get("label_names") or saved.label_names), preprocessing,
                  dict(info.get("accuracy") or {}), dict(info.get("source") or {}))


def _check_encoder(path: Path, encoder: dict[str, Any]) -> None:
    """The zoo entry or encoder file still hashes as the bundle recorded (cheap: no weights are loaded)."""
    spec = str(encoder["spec"])
    if spec.startswith("zoo:"):
        from tinyact.zoo import get_entry

        try:
            entry = get_entry(spec[4:])
        except TinyActError as error:
            raise BundleError(f"bundle {path}: {error}") from None
        if entry.encoder_hash != encoder["hash"]:
            raise BundleError(f"bundle {path}: zoo encoder {spec} of this installation has hash {entry.encoder_hash}, "
                              f"the bundle was made with {encoder['hash']}; install the TinyAct it was made with")
        return
    file = path / spec
    if not file.is_file():
        raise BundleError(f"bundle {path}: its encoder file {spec} is missing")
    if encoder.get("file_sha256") and file_sha256(file) != encoder["file_sha256"]:
        raise BundleError(f"bundle {path}: {spec} changed after the bundle was written (SHA-256 differs)")


# ---- from a table1 run or a latents file -------------------------------------------------------------------
def _run_encoder(run: Path, enc: dict[str, Any]) -> str:
    """The encoder a table1 run's latents came from: the zoo reference, or the model file with its hash."""
    spec, wanted = str(enc.get("spec") or "scratch"), str(enc.get("hash"))
    candidates = [spec] if spec != "scratch" else []
    candidates += [str(enc.get("checkpoint") or ""), str(run / "adapt" / "model.pt"), str(run / "finetune" / "model.pt")]
    for candidate in candidates:
        if candidate.startswith("zoo:"):
            from tinyact.zoo import get_entry

            if get_entry(candidate[4:]).encoder_hash == wanted:
                return candidate
        elif candidate and Path(candidate).is_file() and _file_encoder_hash(Path(candidate)) == wanted:
            return candidate
    raise BundleError(f"{run}: cannot find the encoder with hash {wanted} (tried {', '.join(c for c in candidates if c)})")


def _table1_accuracy(metrics: dict[str, Any]) -> dict[str, Any]:
    best = metrics["best"]["classifier"]
    row = metrics["classifiers"][best]
    random = metrics.get("baselines", {}).get("random_encoder")
    accuracy = {"split": "test", "chosen_on": "val", "classifier": best, "top1": row.get("top1"),
                "top5": row.get("top5"), "f1": row.get("f1"), "val_top1": row.get("val_top1"),
                "n_test": metrics.get("n_test")}
    if random is not None:
        accuracy["random_encoder_top1"] = random["top1"]
        accuracy["beats_random_encoder"] = bool(row["top1"] > random["top1"])
    return accuracy


def random_encoder_warning(accuracy: dict[str, Any]) -> str | None:
    """One line when the chosen classifier does not beat the random-encoder baseline (``None`` when it does)."""
    if accuracy.get("beats_random_encoder") is not False:
        return None
    return (f"WARNING: the chosen classifier ({accuracy.get('classifier')}, test top-1 "
            f"{100 * accuracy['top1']:.1f} %) does not beat the random-encoder baseline "
            f"({100 * accuracy['random_encoder_top1']:.1f} %): on this data the encoder adds nothing measurable; "
            "more or longer clips, or `--adapt ssl`, may help")


def model_card(metrics: dict[str, Any], accuracy: dict[str, Any], encoder: str) -> str:
    """``MODEL_CARD.md`` for a table1 run: data, accuracy on which split and protocol, the baselines beside it."""
    cfg, enc = metrics.get("config", {}), metrics.get("encoder", {})
    classes = metrics.get("classes", [])
    lines = ["# Model card", ""]
    warning = random_encoder_warning(accuracy)
    if warning:
        lines += [f"> **{warning}**", ""]
    lines += [
        "## Data", "",
        f"`{cfg.get('data')}` ({cfg.get('layout')} layout): {len(classes)} classes ({', '.join(classes)}); "
        f"{metrics.get('n_train')} train / {metrics.get('n_val')} val / {metrics.get('n_test')} test clips"
        f"{' (split from split_file)' if cfg.get('split_file') else ' (seeded stratified split, seed ' + str(cfg.get('seed')) + ')'}; "
        f"{metrics.get('skipped_clips', 0)} clip(s) skipped as undecodable.", "",
        "## Encoder", "",
        f"`{encoder}` (hash `{enc.get('hash')}`), {enc.get('frames')} frames x {enc.get('size')}² px, uniform sampling"
        f"{'' if str(enc.get('adapt', 'none')) == 'none' else ', adaptation ' + str(enc.get('adapt'))}.", "",
        "## Accuracy", "",
        f"Classifier **{accuracy['classifier']}**, chosen on the **val** split (grid search with stratified "
        f"{cfg.get('folds')}-fold CV on train); numbers on the **test** split ({accuracy.get('n_test')} clips), "
        "which chose nothing.", "",
        "| Features | Classifier (chosen on val) | Test top-1 (%) |", "|---|---|---:|",
        f"| This encoder | {accuracy['classifier']} | {100 * accuracy['top1']:.2f} |",
    ]
    for name, baseline in metrics.get("baselines", {}).items():
        lines.append(f"| {FEATURE_NAMES.get(name, name)} (baseline) | {baseline.get('classifier')} | "
                     f"{100 * baseline['top1']:.2f} |")
    if "random_encoder_top1" in accuracy:
        verdict = "beats" if accuracy["beats_random_encoder"] else "does **not** beat"
        lines += ["", f"The chosen classifier {verdict} the random-encoder baseline "
                  f"({100 * (accuracy['top1'] - accuracy['random_encoder_top1']):+.2f} points)."]
    lines += ["", "## Use", "", "```", *next_commands_for("BUNDLE"), "```", ""]
    return "\n".join(lines)


def _short_card(manifest: dict[str, Any], saved: SavedClassifier) -> str:
    metrics = saved.metrics or {}
    top1 = metrics.get("top1")
    return "\n".join([
        "# Model card", "",
        f"Classifier {saved.kind} (`{saved.version}`) on latents of `{manifest['encoder']['spec']}` "
        f"(hash `{saved.encoder_hash}`); {len(saved.label_names)} classes: {', '.join(saved.label_names)}.", "",
        f"Test top-1: {'unknown' if top1 is None else f'{100 * top1:.2f} %'} (grid search with k-fold CV on train, "
        "chosen on val). No baselines were run beside it: compare with `tinyact experiment table1` before trusting it.",
        "", "## Use", "", "```", *next_commands_for("BUNDLE"), "```", "",
    ])


def bundle_from_table1(run: str | Path, out: str | Path | None = None) -> Bundle:
    """The bundle of a finished ``tinyact experiment table1`` run (``metrics["best"]``): written to ``out``
    (default ``RUN/bundle``)."""
    run = Path(run)
    if not (run / "metrics.json").is_file():
        raise BundleError(f"{run} has no metrics.json: run `tinyact experiment table1 --out {run}` to the end first")
    metrics = json.loads((run / "metrics.json").read_text())
    best = metrics["best"]["classifier"]
    enc = metrics.get("encoder", {})
    encoder = _run_encoder(run, enc)
    normalization = _normalization(encoder)
    accuracy = _table1_accuracy(metrics)
    return write_bundle(
        out or run / "bundle", encoder=encoder, classifier=run / "classifiers" / "trained" / best,
        preprocessing={"frames": enc.get("frames"), "size": enc.get("size"), "normalization": normalization,
                       "sampling": "uniform", "mirror": best.endswith("+mirror")},
        metrics=metrics, accuracy=accuracy, source={"kind": "table1", "run": str(run.resolve())},
        card=model_card(metrics, accuracy, encoder),
    )


def _normalization(encoder: str) -> str:
    from tinyact.models.checkpoint import load_model

    if encoder.startswith("zoo:"):
        from tinyact.zoo import get_entry

        return str(get_entry(encoder[4:]).config.get("normalization", "imagenet"))
    return str(load_model(encoder)[1].get("config", {}).get("normalization", "imagenet"))


def bundle_from_latents(latents: str | Path, classifier: str | Path, out: str | Path) -> Bundle | None:
    """The bundle of ``classify fit`` on ``latents``, when the encoder is known: a zoo encoder recognised by
    its hash, or the model file the latents file names; ``None`` otherwise."""
    from tinyact.latents import LatentsFile
    from tinyact.zoo import list_entries

    data = LatentsFile.load(latents)
    encoder = next((f"zoo:{e.name}" for e in list_entries() if e.encoder_hash == data.encoder_hash), None)
    described = data.meta.get("encoder") or {}
    file = described.get("file")
    if encoder is None and file and Path(file).is_file() and _file_encoder_hash(Path(file)) == data.encoder_hash:
        encoder = str(file)
    if encoder is None:
        return None
    sampling = data.meta.get("sampling") or {}
    preprocessing = {"frames": sampling.get("num_frames"), "size": sampling.get("size"),
                     "normalization": _normalization(encoder), "sampling": sampling.get("strategy", "uniform")}
    return write_bundle(out, encoder=encoder, classifier=classifier, preprocessing=preprocessing,
                        source={"kind": "classify fit", "latents": str(Path(latents).resolve())})


def next_commands_for(bundle: str | Path) -> list[str]:
    """The commands that deploy ``bundle``: serve it, register a device, configure and run the edge."""
    return [
        f"tinyact cloud serve --model {bundle}",
        "tinyact cloud device add edge-1        # prints the device key: export TINYACT_DEVICE_KEY=<key>",
        f"tinyact edge init --bundle {bundle} --out edge.yaml   # then list your cameras in edge.yaml",
        "tinyact edge run --config edge.yaml",
    ]


def next_steps(bundle: Bundle) -> list[str]:
    """The lines a run prints at its end: the bundle, a warning if any, the exact next commands, the edge lines."""
    lines = [f"bundle: {bundle.path} (classifier {bundle.classifier.version}, encoder {bundle.encoder['spec']} "
             f"{bundle.encoder_hash})"]
    warning = random_encoder_warning(bundle.accuracy)
    if warning:
        lines.append(warning)
    lines += ["next:", *(f"  {c}" for c in next_commands_for(bundle.path)),
              "edge.yaml lines for this bundle (edge init --bundle writes them):",
              *(f"  {line}" for line in bundle.edge_yaml().splitlines())]
    return lines


__all__ = ["Bundle", "BundleError", "bundle_from_latents", "bundle_from_table1", "classifier_folder", "is_bundle",
           "load_bundle", "model_card", "next_steps", "random_encoder_warning", "write_bundle"]
