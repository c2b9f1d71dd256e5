"""recipes/ch01_siamese_omniglot.py --embedding-2d --embedding-data mnist, on mocked MNIST.

Nothing downloads in CI, so `tfds.testing.mock_data` stands in for MNIST (random 28 x 28
images and labels): the test proves the MNIST path of the recipe end to end (loading, training
on 28 x 28 x 1 images, the 2-D points, the kNN score, the figure), not the clustering, which
the digits test checks.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "ch01_siamese_omniglot.py"


def test_the_2d_embedding_runs_on_mnist_through_tensorflow_datasets(tmp_path, check_plot):
    import tensorflow_datasets as tfds

    spec = importlib.util.spec_from_file_location("ch01_recipe", RECIPE)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    out_dir = tmp_path / "recipe_outputs"
    with tfds.testing.mock_data(num_examples=120):
        result = recipe.main(["--embedding-2d", "--embedding-data", "mnist", "--embedding-steps", "5",
                              "--out-dir", str(out_dir)])
    assert result["data"] == "mnist" and result["embedding_units"] == 2 and result["train_steps"] == 5
    assert result["train_examples"] == result["test_examples"] == 120
    assert 0.0 <= result["knn_accuracy_2d"] <= 1.0 and np.isfinite(result["train_seconds"])
    assert json.loads((out_dir / "ch01_siamese_omniglot_embedding_2d.json").read_text()) == result
    check_plot(result["plot"], min_width=600, min_height=550, min_levels=10)
