"""Smoke run of recipes/ch10_learning_what_to_learn_from.py --quick, as CI runs it."""

import json

import numpy as np
import pytest


@pytest.mark.slow
def test_quick_recipe_learns_weights_and_a_policy_and_plots(tmp_path, run_recipe, check_plot):
    out_dir = tmp_path / "recipe_outputs"
    run_recipe("ch10_learning_what_to_learn_from.py", "--quick", "--out-dir", str(out_dir), timeout=600)
    summary = json.loads((out_dir / "ch10_summary.json").read_text())
    reweighting, augmentation = summary["reweighting"], summary["augmentation"]
    # Learned weights: the examples whose label the noise changed weigh less than the others,
    # by far after the first epoch, and over the whole training.
    weights = reweighting["weights"]
    assert len(weights["correct"]) == len(weights["mislabelled"]) == 8
    assert weights["mislabelled"][0] < 0.5 * weights["correct"][0], weights
    assert np.mean(weights["mislabelled"]) < 0.8 * np.mean(weights["correct"]), weights
    # With 40% of the labels wrong, the reweighted model beats plain training on the noisy set.
    noisy = reweighting["noise40"]
    assert noisy["reweighted"]["mean"] > noisy["plain"]["mean"], noisy
    assert set(reweighting["imbalance10"]) == {"plain", "clean_only", "reweighted"}
    # The policy search ran its trials, the first being "no augmentation"; every final model learned.
    assert len(augmentation["trials"]) == 4 and augmentation["found_policy"]
    assert all(augmentation[name]["mean"] > 0.5 for name in ("none", "hand_set", "rand_augment", "searched"))
    for figure in ("ch10_reweighting.png", "ch10_augmentation.png"):
        check_plot(out_dir / figure, min_width=900, min_height=350)
