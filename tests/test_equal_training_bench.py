"""``benchmarks/equal_training.py``: a peer network (X3D-XS) pretrained with the recipe through
:func:`tinyact.training.pretrain.pretrain` (``model=``), saved and reloaded as a model file, and evaluated by
``experiment table1`` like any encoder (tiny generated corpus and videos; no real footage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks.equal_training import recipe_settings  # registers the X3DEncoder builder
from benchmarks.peer_models.x3d import X3DEncoder, X3DEncoderConfig
from tests.test_pretrain_corpus import tiny_corpus
from tests.test_real_footage_bench import tiny_dataset  # noqa: F401 (a fixture)
from tests.test_table1 import _folder_dataset
from tinyact.data.synth.corpus_files import build_corpus
from tinyact.experiments.table1 import Table1Config, run_table1
from tinyact.models.checkpoint import load_model, save_model, state_dict_hash
from tinyact.training.pretrain import PretrainConfig, pretrain


def test_recipe_settings_are_the_windowed_corpus_and_training_from_random_weights():
    corpus, train = recipe_settings(1234)
    assert corpus["clips"] == 1234 and corpus["sample_fps"]  # windows at a camera's rate
    assert "init" not in train and train["lr"] == 0.002 and train["objective"] == "supervised"
    assert train["probe_sampling"]["strategy"] == "multi"
    other_corpus, other_train = recipe_settings(1234, seed=3)  # another draw: both seeds move, nothing else
    assert other_corpus == {**corpus, "seed": corpus["seed"] + 3}
    assert other_train == {**train, "seed": train["seed"] + 3}


def test_x3d_trains_with_the_recipe_and_reloads_as_a_model_file(tmp_path):
    build_corpus(tiny_corpus(tmp_path / "corpus", clips=125))
    start = X3DEncoder(X3DEncoderConfig(num_frames=6, input_size=(24, 24)))
    before = {k: v.clone() for k, v in start.state_dict().items()}
    cfg = PretrainConfig(corpus=tmp_path / "corpus", out=tmp_path / "run", epochs=1, batch_size=8, max_batches=2,
                         threads=1, preset="no-such-preset", init=tmp_path / "ignored.pt")
    result = pretrain(cfg, model=start)  # preset and init belong to the default encoder: not used with model=
    reloaded, info = load_model(result.model)
    assert isinstance(reloaded, X3DEncoder) and info["kind"] == "X3DEncoder"
    assert reloaded.config == start.config
    assert state_dict_hash(reloaded.state_dict()) == result.encoder_hash
    trunk = "net.stages.0.branch.0.weight"
    assert not torch.equal(reloaded.state_dict()[trunk], before[trunk])  # the trunk was trained
    z = reloaded.encode(torch.randn(2, 6, 3, 24, 24))
    assert z.shape == (2, 2048) and torch.isfinite(z).all()


def test_table1_evaluates_a_peer_model_file_like_any_encoder(tiny_synth, tmp_path):
    model = X3DEncoder(X3DEncoderConfig(num_frames=8, input_size=(32, 32)))
    path = tmp_path / "x3d.pt"
    save_model(path, model)
    data = _folder_dataset(tiny_synth, tmp_path / "folder")
    metrics = run_table1(Table1Config(data=data, layout="folder", out=tmp_path / "t1", encoder=str(path),
                                      baselines=[], classifiers=["svm"], folds=2, grids={"svm": {"clf__C": [1.0]}},
                                      mirror="off"))
    assert metrics["encoder"]["hash"] == state_dict_hash(model.state_dict())
    assert metrics["best"]["classifier"] == "svm" and 0.0 <= metrics["best"]["top1"] <= 1.0
    assert Path(metrics["encoder"]["spec"]) == path


@pytest.mark.slow
def test_quick_run_trains_both_networks_and_reports_every_view(request, tmp_path):
    from benchmarks.equal_training import main

    root, split = request.getfixturevalue("tiny_dataset")  # 3 classes x 4 persons, encoded videos
    result = main(["--quick", "--clips", "125", "--epochs", "1", "--work", str(tmp_path / "work"),
                   "--dataset", f"tiny={root}:{split}", "--no-reference", "--repeats", "1",
                   "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "p.png")])
    rows = {row["name"]: row for row in result["rows"]}
    assert set(rows) == {"fast-motion", "x3d-xs"}
    for row in rows.values():
        real = row["real"]["tiny"]
        assert row["selected_epoch"] == 0 and real["n_test"] == 3 and 0.0 <= real["test_top1"] <= 1.0
        assert real["classifier"] in real["by_classifier"]
        assert set(real["leave_one_person_out"]) == {"as recorded", "mirrored too"}
    latency = result["latency_ms"]
    assert latency["x3d-xs"] == min(latency["x3d-xs channels-last"], latency["x3d-xs contiguous"]) > 0
    assert rows["x3d-xs"]["latency_ms"] == latency["x3d-xs"]
    assert json.loads((tmp_path / "r.json").read_text())["input"] == {"frames": 6, "size": 24}
    assert (tmp_path / "p.png").stat().st_size > 0
