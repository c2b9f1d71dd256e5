"""Smoke run of recipes/ch02_maml_sinusoid.py --quick, as CI runs it."""

import json

import pytest


@pytest.mark.slow
def test_quick_recipe_meta_learns_to_adapt_and_plots(tmp_path, run_recipe, check_plot):
    out = run_recipe("ch02_maml_sinusoid.py", "--quick", "--out-dir", str(tmp_path / "recipe_outputs"))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 50 and result["shots"] == 10 and result["iterations"] == 1000
    before, one, ten = result["mse_0_steps"], result["mse_1_step"], result["mse_10_steps"]
    untrained = result["mse_untrained_10_steps"]
    # On the same 50 test tasks: one inner step from the meta-learned initialisation at least
    # halves its unadapted error, ten steps do better still, and an untrained network of the
    # same shape, adapted with ten steps, stays far behind.
    assert one < 0.5 * before and ten < one, (before, one, ten)
    assert ten < 0.5 * untrained, (ten, untrained)
    assert all(result[f"ci95_{k}"] > 0 for k in ("0_steps", "1_step", "10_steps", "untrained_10_steps"))
    # The paper's figure 2: four curves and the support points on a 6 x 4 inch canvas.
    check_plot(tmp_path / "recipe_outputs" / "ch02_maml_sinusoid.png", min_width=600, min_height=400,
               min_levels=5)
    assert result["figure"].endswith("ch02_maml_sinusoid.png")
