"""Smoke run of recipes/ch09_learned_optimizer.py --quick --json, as CI runs it."""

import json

import pytest


@pytest.mark.slow
def test_quick_recipe_meta_trains_optimizers_that_minimise_held_out_problems(tmp_path, run_recipe, check_plot):
    out_dir = tmp_path / "recipe_outputs"
    out = run_recipe("ch09_learned_optimizer.py", "--quick", "--json", "--out-dir", str(out_dir))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result["held_out"]) == {"quadratic", "digits_mlp_relu_20"}
    for name, held_out in result["held_out"].items():
        # The learned optimizer and the three baselines, each baseline at a rate of the grid.
        assert set(held_out["final_loss"]) == {"learned", "sgd", "rmsprop", "adam"}
        assert set(held_out["learning_rates"].values()) <= {0.01, 0.1, 1.0}
        assert set(held_out["loss_at"]) == {"100", "200"}
    # After a short meta-training the learned rules minimise problems they never saw, one of
    # them of an architecture (ReLU units) never seen: over the 100-step horizon the quadratics'
    # loss falls at least twentyfold, the MLP's at least fivefold.
    quadratic, mlp = result["held_out"]["quadratic"], result["held_out"]["digits_mlp_relu_20"]
    assert quadratic["final_loss"]["learned"] < quadratic["initial_loss"] / 20, quadratic
    assert mlp["final_loss"]["learned"] < mlp["initial_loss"] / 5, mlp
    for trained in result["meta_training"].values():
        assert trained["last_trajectory_mean_loss"] < trained["first_trajectory_mean_loss"]
    # The learned optimizers are saved as files LearnedOptimizer.load reads.
    from tfmeta.learned_optimizer import LearnedOptimizer

    for trained in result["meta_training"].values():
        assert LearnedOptimizer.load(trained["saved"]).rule.hidden_units == 20
    # Two panels of four loss curves each.
    check_plot(result["plot"], min_width=800, min_height=350, min_levels=8)
