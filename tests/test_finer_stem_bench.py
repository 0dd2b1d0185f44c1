"""``benchmarks/finer_stem.py``: the shipped encoder fine-tuned with a finer stem starts from the shipped weights,
and two held-out runs are compared clip by clip (tiny generated corpus; no real footage)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from benchmarks import finer_stem
from benchmarks.equal_training import recipe_settings
from benchmarks.finer_stem import (
    ARMS,
    SHIPPED,
    fine_tune,
    folder_name,
    held_out,
    latencies,
    paired,
    parse_args,
)
from tinyact.data.synth.corpus import CorpusConfig
from tinyact.data.synth.corpus_files import build_corpus
from tinyact.models.checkpoint import load_model
from tinyact.zoo import load_model_spec


def test_paired_counts_the_clips_only_one_encoder_gets_right():
    result = paired({"test_correct": "11001"}, {"test_correct": "10101"})
    assert (result["only_a"], result["only_b"]) == (1, 1) and result["mcnemar_p"] == 1.0
    lopsided = paired({"test_correct": "1" * 12}, {"test_correct": "0" * 12})
    assert (lopsided["only_a"], lopsided["only_b"]) == (12, 0) and lopsided["mcnemar_p"] < 0.001
    with pytest.raises(ValueError):  # two runs on different clips cannot be paired
        paired({"test_correct": "10"}, {"test_correct": "101"})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finer-stem") / "corpus"
    # The shipped encoder's input (16 x 64²), five blocks of 25 classes: train, val and test clips.
    build_corpus(CorpusConfig(out=root, clips=125, size=64, frames=16, actors=30, shard_size=25, workers=1,
                              min_canvas=64, max_canvas=96))
    return root


def test_the_control_arm_is_the_shipped_architecture():
    config = load_model_spec(SHIPPED)[0].config
    control, finer, wide, between, traded, *unblocked = ARMS.values()
    assert control == {"stage_blocks": list(config.stage_blocks), "stem_stride": list(config.stem_stride)}
    assert list(config.stem_kernel) == [3, 3, 3]
    assert finer == {**control, "stem_stride": [2, 2, 2]}  # only the stem's spatial stride differs
    assert wide == {**control, "stem_kernel": [3, 5, 5]}  # or only its spatial kernel
    assert between == {**control, "stem_stride": [2, 3, 3]}
    assert traded == {**control, "stem_stride": [4, 3, 3]}  # time for space
    assert all(arm["stage_blocks"] == [0, *control["stage_blocks"][1:]] for arm in unblocked)  # only the first stage's
    names = [folder_name(arm) for arm in ARMS]
    assert names[:5] == ["stride4", "stride2", "stride4-kernel5", "stride3", "stride3-t4"]  # earlier runs' folders
    assert len(set(names)) == len(names)


def test_arms_are_chosen_by_name_and_the_control_always_runs(tmp_path):
    footage = ["--dataset", f"clips={tmp_path}:{tmp_path / 'split.csv'}"]  # no real footage needed to parse
    args = parse_args(["--arms", "stride3-blocks0220", *footage])
    assert [folder_name(arm) for arm in args.arms] == ["stride4", "stride3-blocks0220"]
    with pytest.raises(SystemExit):
        parse_args(["--arms", "stride5", *footage])


def test_the_finer_arm_fine_tunes_the_shipped_weights_with_its_stem(corpus, tmp_path):
    arm = "stride 2 (finer)"  # the new start (a stem made finer); the control loads the shipped weights as they are
    _, train = recipe_settings(125, quick=True)
    args = argparse.Namespace(work=tmp_path / "work", epochs=1, device="cpu", input=(16, 64), seed=0)
    result = fine_tune(arm, corpus, train, args)
    tuned, info = load_model(result["model"])
    assert list(tuned.config.stem_stride) == ARMS[arm]["stem_stride"]
    assert list(tuned.config.stage_blocks) == ARMS[arm]["stage_blocks"]
    assert info["extra"]["pretrain"]["lr"] == 5e-4 and info["extra"]["pretrain"]["select_on"] == "val"
    shipped = load_model_spec(SHIPPED)[0].state_dict()
    weights = tuned.state_dict()
    # Two small steps from the shipped weights, not a new start: every trained tensor is still close to them.
    stem = "encoder.0.weight"  # the first convolution, whose stride the arms differ in
    assert weights[stem].shape == shipped[stem].shape
    assert torch.allclose(weights[stem], shipped[stem].float(), atol=5e-3)
    assert not torch.equal(weights[stem], shipped[stem].float())  # and it did train


def test_latencies_time_both_arms_and_the_x3d_xs_bound_in_turns():
    _, train = recipe_settings(125, quick=True)
    arms = list(ARMS)[:2]
    times = latencies(argparse.Namespace(input=(16, 64), repeats=5, arms=arms), train)
    assert set(arms) | {"x3d-xs"} <= set(times)
    assert times["x3d-xs"] == min(times["x3d-xs channels-last"], times["x3d-xs contiguous"])  # the peer's best
    assert all(ms > 0 for ms in times.values())


def test_a_held_out_run_is_reloaded_for_the_same_encoder_and_corpus(tmp_path, monkeypatch):
    calls: list[list[str]] = []

    def fake_main(argv: list[str]) -> dict:
        calls.append(argv)
        return {"corpus": argv[argv.index("--corpus") + 1], "test_correct": "101", "run": len(calls)}

    monkeypatch.setattr(finer_stem.zoo_heldout, "main", fake_main)
    args = argparse.Namespace(work=tmp_path, train_clips=50)
    first = held_out(SHIPPED, tmp_path / "corpus", args)
    assert held_out(SHIPPED, tmp_path / "corpus", args) == first and len(calls) == 1  # reloaded, not run again
    assert held_out(SHIPPED, tmp_path / "other-corpus", args)["run"] == 2  # another corpus runs again
    assert held_out(SHIPPED, tmp_path / "corpus", argparse.Namespace(work=tmp_path, train_clips=60))["run"] == 3
