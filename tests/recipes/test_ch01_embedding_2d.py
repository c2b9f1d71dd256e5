"""recipes/ch01_siamese_omniglot.py --embedding-2d --quick: the digits cluster in a 2-D embedding."""

import json


def test_quick_2d_embedding_separates_the_digits(tmp_path, run_recipe, check_plot):
    out_dir = tmp_path / "recipe_outputs"
    run_recipe("ch01_siamese_omniglot.py", "--embedding-2d", "--quick", "--out-dir", str(out_dir))
    result = json.loads((out_dir / "ch01_siamese_omniglot_embedding_2d_quick.json").read_text())
    assert result["data"] == "digits" and result["embedding_units"] == 2 and result["train_steps"] == 400
    # Two numbers per digit are enough: a 5-NN classifier in the plane, fitted on the training
    # digits' points, labels at least 90% of the 450 held-out digits (chance: 10%).
    assert result["test_examples"] == 450 and result["knn_accuracy_2d"] >= 0.9, result
    # The figure: the test digits in the plane, ten colours (plus anti-aliasing shades).
    check_plot(result["plot"], min_width=600, min_height=550, min_levels=10)
