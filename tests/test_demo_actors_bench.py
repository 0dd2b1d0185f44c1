"""``benchmarks/demo_actors.py``: the candidate grid and the paired comparison against its first row."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.demo_actors import candidates, paired


def test_candidates_are_every_combination_with_the_first_settings_first():
    grid = candidates(argparse.Namespace(actors=[20], finetune_epochs=[4, 3], finetune_frozen_stages=[0, 1]))
    assert grid[0] == {"actors": 20, "finetune_epochs": 4, "finetune_frozen_stages": 0}
    assert [(c["finetune_epochs"], c["finetune_frozen_stages"]) for c in grid] == [(4, 0), (4, 1), (3, 0), (3, 1)]
    # Settings not given stay None: the demo's defaults then apply.
    assert candidates(argparse.Namespace(actors=[20, 40], finetune_epochs=None, finetune_frozen_stages=None)) == [
        {"actors": 20, "finetune_epochs": None, "finetune_frozen_stages": None},
        {"actors": 40, "finetune_epochs": None, "finetune_frozen_stages": None}]


def test_paired_counts_the_discordant_windows_and_tests_them():
    first, other = {"common_correct": "1110001111"}, {"common_correct": "0111011110"}
    result = paired(first, other)
    assert (result["only_first"], result["only_this"]) == (2, 2) and result["mcnemar_p"] == pytest.approx(1.0)
    lopsided = paired({"common_correct": "1" * 12}, {"common_correct": "0" * 12})
    assert lopsided["only_first"] == 12 and lopsided["mcnemar_p"] < 0.001
    with pytest.raises(ValueError):  # scored on other windows: not a pairing
        paired(first, {"common_correct": "01"})
