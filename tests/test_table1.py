"""``tinyact experiment table1``: the folder layout's seeded split, the table's format, and the whole pipeline
end to end on a tiny synthetic set (3 classes, 32 px, 1 epoch, 2 folds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tinyact.cli import app
from tinyact.data.layouts import read_kinetics
from tinyact.experiments.table1 import Table1Config, make_manifest
from tinyact.experiments.table1_report import format_table1
from tinyact.latents import LatentsFile

runner = CliRunner()


def _folder_dataset(tiny_synth: Path, root: Path) -> Path:
    """The tiny synthetic set rearranged as ROOT/<class>/<video> (no split information)."""
    entries, _ = read_kinetics(tiny_synth)
    for entry in entries:
        target = root / entry.label.replace(" ", "_") / Path(entry.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_synth / entry.path, target)
    return root


def test_folder_layout_gets_a_seeded_stratified_split(tiny_synth, tmp_path):
    data = _folder_dataset(tiny_synth, tmp_path / "folder")
    first = make_manifest(Table1Config(data=data, out=tmp_path / "a", layout="folder", seed=3))
    again = make_manifest(Table1Config(data=data, out=tmp_path / "b", layout="folder", seed=3))
    other = make_manifest(Table1Config(data=data, out=tmp_path / "c", layout="folder", seed=4))
    splits = {e.clip_id: e.split for e in first.entries}
    assert splits == {e.clip_id: e.split for e in again.entries}
    assert splits != {e.clip_id: e.split for e in other.entries}
    for label, counts in ((lbl, {s: 0 for s in ("train", "val", "test")}) for lbl in first.label_names):
        for entry in first.entries:
            if entry.label == label:
                counts[entry.split] += 1
        assert counts == {"train": 3, "val": 1, "test": 1}, label
    assert (tmp_path / "a" / "manifest.csv").is_file()


def test_format_table1_puts_the_paper_beside_ours():
    row = {"top1": 0.9, "top5": 1.0, "precision": 0.91, "recall": 0.9, "f1": 0.9}
    metrics = {
        "classifiers": {"svm": row, "rf": dict(row, top1=0.95), "dt": dict(row, top1=0.5)},
        "baselines": {"random_encoder": {"top1": 0.6, "by_classifier": {"svm": {"top1": 0.6}, "rf": {"top1": 0.4}}}},
        "n_train": 10, "n_val": 3, "n_test": 4, "classes": ["a", "b"], "trained_minus_random_top1": 0.35,
        "config": {"data": "d", "layout": "kinetics", "folds": 10}, "encoder": {"preset": "fast"},
    }
    text = format_table1(metrics)
    assert "| SVM (RBF) | 90.00 | 100.00 | 91.00 | 90.00 | 90.00 | 55.00 |" in text
    assert "| Random forest | 95.00 |" in text and "| 57.00 |" in text
    assert "| Decision tree | 50.00 |" in text and text.count("Kinetics-400") == 2
    assert "| Random encoder (untrained) | 60.00 | 40.00 | – | 60.00 |" in text
    assert "+35.00 points" in text


@pytest.mark.slow
def test_table1_end_to_end_on_a_tiny_synthetic_set(tiny_synth, tmp_path):
    data = _folder_dataset(tiny_synth, tmp_path / "folder")
    grids = tmp_path / "t1.yaml"
    grids.write_text(
        "grids:\n  rf: {n_estimators: [10]}\n  xgboost: {n_estimators: [10], max_depth: [2]}\n  svm: {C: [1, 10]}\n"
        "frames: 8\nworkers: 1\nbatch_size: 4\nextract_batch: 8\n"
    )
    out = tmp_path / "run"
    args = ["experiment", "table1", "--data", str(data), "--layout", "folder", "--encoder", "scratch", "--size", "32",
            "--epochs", "1", "--folds", "2", "--device", "cpu", "--config", str(grids), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # mirror auto: every classifier on both readings, the reading chosen on val with the classifier.
    assert set(metrics["classifiers"]) == {k + s for k in ("svm", "rf", "xgboost", "dt") for s in ("", "+mirror")}
    assert metrics["best"]["classifier"] in metrics["classifiers"]
    assert all(set(b["by_classifier"]) == set(metrics["classifiers"]) for b in metrics["baselines"].values())
    for row in metrics["classifiers"].values():
        assert {"top1", "precision", "recall", "f1"} <= set(row) and 0 <= row["top1"] <= 1
    assert set(metrics["baselines"]) == {"raw_pixels", "random_encoder", "motion_history"}
    assert all(0 <= b["top1"] <= 1 for b in metrics["baselines"].values())
    assert metrics["n_train"] == 9 and metrics["n_test"] == 3 and len(metrics["classes"]) == 3
    assert metrics["config"]["frames"] == 8 and (out / "config.yaml").is_file()
    table = (out / "table1.md").read_text()
    assert "Random forest" in table and "Kinetics-400" in table and "Raw pixels" in table
    assert "SVM (RBF), mirrored too" in table
    for name in ("trained", "raw_pixels", "random_encoder", "motion_history"):
        for suffix in ("", "+mirror"):
            assert (out / "latents" / f"{name}{suffix}.npz").is_file()
            assert (out / "classifiers" / name / f"svm{suffix}" / "classifier.json").is_file()
    plain, mirrored = (LatentsFile.load(out / "latents" / f"trained{s}.npz") for s in ("", "+mirror"))
    assert mirrored.meta["sampling"]["mirror"] and not np.allclose(plain.latents, mirrored.latents)
    # A rerun reuses every stage and gives the same table.
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "metrics.json").read_text())["classifiers"] == metrics["classifiers"]


def test_a_class_without_a_usable_training_clip_is_one_red_line(tiny_synth, tmp_path):
    """Its only clip is corrupt: named in one line, exit 2, before any autoencoder training."""
    data = _folder_dataset(tiny_synth, tmp_path / "folder")
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    lonely = data / classes[0]
    videos = sorted(lonely.iterdir())
    for extra in videos[1:]:
        extra.unlink()
    videos[0].write_bytes(b"not a video at all")
    rows = ["path,split"]
    for name in classes:
        for i, video in enumerate(sorted((data / name).iterdir())):
            rows.append(f"{name}/{video.name},{'test' if i == 1 else 'train'}")
    (tmp_path / "split.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "t1.yaml").write_text("frames: 4\nworkers: 1\nbatch_size: 4\n")
    result = runner.invoke(app, [
        "experiment", "table1", "--data", str(data), "--layout", "folder", "--split-file", str(tmp_path / "split.csv"),
        "--size", "32", "--epochs", "1", "--folds", "2", "--device", "cpu", "--classifiers", "dt",
        "--config", str(tmp_path / "t1.yaml"), "--out", str(tmp_path / "run"),
    ], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert "without a usable training clip" in result.output and classes[0] in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "ae").exists()


@pytest.mark.slow
def test_table1_with_the_pretrained_encoder_and_adaptation(tiny_synth, tmp_path):
    """The default path: the zoo encoder (frozen), its random twin and motion history as baselines; --adapt
    trains without labels and keeps whichever encoder probes better on val."""
    import tinyact.zoo as zoo

    data = _folder_dataset(tiny_synth, tmp_path / "folder")
    grids = tmp_path / "t1.yaml"
    grids.write_text("grids:\n  svm: {C: [1]}\nworkers: 1\nextract_batch: 8\nadapt_epochs: 1\n")
    out = tmp_path / "run"
    args = ["experiment", "table1", "--data", str(data), "--layout", "folder", "--folds", "2", "--device", "cpu",
            "--classifiers", "svm", "--adapt", "speed", "--mirror", "off", "--config", str(grids), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    _, entry = zoo.load_encoder()
    assert metrics["encoder"]["spec"] == f"zoo:{zoo.DEFAULT_ENCODER}" and metrics["encoder"]["size"] == entry.size
    assert metrics["encoder"]["adapt"] == "speed"
    report = json.loads((out / "adapt" / "adapt.json").read_text())
    assert report["kept"] in ("adapted", "original")
    expected = entry.encoder_hash if report["kept"] == "original" else None
    if expected:
        assert metrics["encoder"]["hash"] == expected
    assert set(metrics["baselines"]) == {"raw_pixels", "random_encoder", "motion_history"}
    assert set(metrics["classifiers"]) == {"svm"}  # --mirror off: one reading
    assert "Pretrained encoder `zoo:everyday-64`" in (out / "table1.md").read_text()


def test_table1_fine_tunes_the_pretrained_encoder_on_the_train_labels(tiny_synth, tmp_path):
    """--adapt supervised: `train finetune` on the train clips, the epoch and the keep-or-not decided on val; the
    run's latents and its bundle come from whichever encoder was kept."""
    import tinyact.zoo as zoo
    from tinyact.models.checkpoint import load_model

    data = _folder_dataset(tiny_synth, tmp_path / "folder")
    settings = tmp_path / "t1.yaml"
    settings.write_text("grids:\n  svm: {C: [1]}\nworkers: 1\nadapt_epochs: 1\nbaselines: [raw_pixels]\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["experiment", "table1", "--data", str(data), "--layout", "folder", "--folds", "2",
                                 "--device", "cpu", "--classifiers", "svm", "--adapt", "supervised", "--mirror", "off",
                                 "--config", str(settings), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    report = json.loads((out / "finetune" / "finetune.json").read_text())
    assert metrics["encoder"]["adapt"] == "supervised" and report["epochs"] == 1
    assert metrics["encoder"]["hash"] == report["encoder_hash"] == load_model(out / "finetune" / "model.pt")[1]["hash"]
    if report["kept"] == "original":
        assert report["encoder_hash"] == zoo.get_entry(zoo.DEFAULT_ENCODER).encoder_hash
    bundle = yaml.safe_load((out / "bundle" / "bundle.yaml").read_text())
    assert bundle["encoder"]["hash"] == report["encoder_hash"]


def test_list_layout_like_data_manifest(tiny_synth, tmp_path):
    """``--layout list`` (mmaction2-style 'path label' files), which `data manifest` accepts, works for Table 1
    and Table 2 too, through the same reader."""
    from tinyact.experiments.table2 import Table2Config
    from tinyact.experiments.table2 import make_manifest as table2_manifest

    entries, _ = read_kinetics(tiny_synth)
    files = {}
    for split in ("train", "val", "test"):
        files[split] = tmp_path / f"{split}.txt"
        files[split].write_text("".join(f"{e.path} {e.label.replace(' ', '_')}\n" for e in entries if e.split == split))
    manifest = make_manifest(Table1Config(data=tiny_synth, out=tmp_path / "t1", layout="list", annotations=files))
    assert len(manifest) == len(entries) and {e.split for e in manifest.entries} == {"train", "val", "test"}
    path = table2_manifest(Table2Config(data=tiny_synth, out=tmp_path / "t2", layout="list", annotations=files))
    assert path.read_text().count("\n") == len(entries) + 1
    result = runner.invoke(app, ["experiment", "table1", "--data", str(tiny_synth), "--layout", "list",
                                 "--out", str(tmp_path / "t3")])
    assert result.exit_code == 2 and "annotation" in result.output  # no --annotations: one clear line


@pytest.mark.slow
def test_table1_from_scratch_with_a_self_supervised_objective(tiny_synth, tmp_path):
    """``--encoder scratch --objective NAME`` trains the encoder with that label-free objective instead of
    reconstruction, then runs the same classifiers and baselines on its latents."""
    data = _folder_dataset(tiny_synth, tmp_path / "folder")
    config = tmp_path / "t1.yaml"
    config.write_text("grids:\n  svm: {C: [1]}\nworkers: 1\nframes: 8\nae: {model_overrides: {channels: [8, 8, 16, 16]}}\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["experiment", "table1", "--data", str(data), "--layout", "folder", "--encoder", "scratch",
                                 "--objective", "speed", "--size", "32", "--epochs", "1", "--folds", "2", "--device", "cpu",
                                 "--classifiers", "svm", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["encoder"]["objective"] == "speed" and (out / "ssl" / "metrics.csv").is_file()
    assert not (out / "ae").exists()  # the reconstruction path did not run
    assert "(speed)" in (out / "table1.md").read_text()
