"""``benchmarks/demo_actors.py``: the candidate grid and the paired comparison against its first row."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.demo_actors import candidates, paired


def test_candidates_are_every_combination_with_the_first_settings_first():
    grid = candidates(argparse.Namespace(actors=[20], finetune_epochs=[4, 3], finetune_frozen_stages=[0, 1],
                                         finetune_precision=["fp32", "bf16"]))
    assert grid[0] == {"actors": 20, "finetune_epochs": 4, "finetune_frozen_stages": 0, "finetune_precision": "fp32"}
    assert [(c["finetune_epochs"], c["finetune_frozen_stages"], c["finetune_precision"]) for c in grid] == [
        (4, 0, "fp32"), (4, 0, "bf16"), (4, 1, "fp32"), (4, 1, "bf16"),
        (3, 0, "fp32"), (3, 0, "bf16"), (3, 1, "fp32"), (3, 1, "bf16")]
    # Settings not given stay None: the demo's defaults then apply.
    unset = {"finetune_epochs": None, "finetune_frozen_stages": None, "finetune_precision": None}
    assert candidates(argparse.Namespace(actors=[20, 40], **unset)) == [{"actors": 20, **unset}, {"actors": 40, **unset}]


def test_paired_counts_the_discordant_windows_and_tests_them():
    first, other = {"common_correct": "1110001111"}, {"common_correct": "0111011110"}
    result = paired(first, other)
    assert (result["only_first"], result["only_this"]) == (2, 2) and result["mcnemar_p"] == pytest.approx(1.0)
    lopsided = paired({"common_correct": "1" * 12}, {"common_correct": "0" * 12})
    assert lopsided["only_first"] == 12 and lopsided["mcnemar_p"] < 0.001
    with pytest.raises(ValueError):  # scored on other windows: not a pairing
        paired(first, {"common_correct": "01"})
