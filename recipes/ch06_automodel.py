"""Chapter 6: AutoModel, the front door.

`tfmeta.AutoModel` takes data as it comes (a folder of images, a feature table, numpy arrays or
tf.data), searches architectures with a NAS strategy, trains the best, and exports a SavedModel
whose `serving_default` takes the raw inputs and returns class names and probabilities.

This chapter:
1. writes scikit-learn's digits to a folder of PNGs (one sub-folder per class, named "zero",
   "one", ...) and fits AutoModel on the folder (streamed: images are decoded as training asks
   for them): labels are strings, the model returns them, and the export takes images of any
   size (or encoded bytes);
2. fits AutoModel on a feature table (scikit-learn's wine data, 13 features, 3 classes);
3. prints each leaderboard, exports both, reloads the SavedModels with TensorFlow alone and
   checks that they give the same predictions as `AutoModel.predict`.

`--json PATH` writes, per walkthrough, the export path, the test inputs and AutoModel's own
probabilities and classes on them, so that a test can reload the exports and compare.

Run:  python recipes/ch06_automodel.py [--quick] [--json PATH]
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import os
import tempfile
import time

import numpy as np

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_digit_folder(root: str, x: np.ndarray, y: np.ndarray) -> str:
    """Writes 8x8 digits as 8-bit PNGs into `root/<class name>/<i>.png`."""
    from PIL import Image

    for i, (img, label) in enumerate(zip(x, y)):
        folder = os.path.join(root, NAMES[label])
        os.makedirs(folder, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8), mode="L").save(os.path.join(folder, f"{i:04d}.png"))
    return root


def print_leaderboard(am) -> None:
    print(f"{'rank':>4}  {'score':>7}  {'seconds':>7}  architecture / learner")
    for rank, t in enumerate(am.leaderboard(), start=1):
        print(f"{rank:>4}  {t['score']:7.4f}  {t.get('seconds', float('nan')):7.1f}  {t['architecture']}")


def serving_input(path) -> tuple[str, str]:
    """`(name, dtype)` of the export's one `serving_default` input."""
    import tensorflow as tf

    (name, spec), = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1].items()
    return name, spec.dtype.name


def check_export(am, path, x) -> float:
    """Largest difference between the reloaded SavedModel and AutoModel.predict_proba."""
    import tensorflow as tf

    serving = tf.saved_model.load(path).signatures["serving_default"]
    name, dtype = serving_input(path)
    out = serving(**{name: tf.constant(x.astype(dtype))})
    classes = out["classes"].numpy()
    classes = np.array([c.decode() for c in classes]) if classes.dtype.kind in "SO" else classes
    assert (classes == am.predict(x)).all(), "SavedModel classes differ from AutoModel.predict"
    return float(np.abs(out["probabilities"].numpy() - am.predict_proba(x)).max())


def walkthrough(am, fit_args, x_test, y_test, export_dir) -> dict:
    """Fits, scores, prints the leaderboard, exports and checks the export against `am`."""
    start = time.time()
    am.fit(*fit_args)
    accuracy = am.score(x_test, y_test)
    print_leaderboard(am)
    path = am.export(export_dir)
    diff = check_export(am, path, x_test)
    print(f"test accuracy {accuracy:.4f} in {time.time() - start:.0f} s; exported to {path} (max |diff| {diff:.2e})")
    name, dtype = serving_input(path)
    return {"test_accuracy": accuracy, "export": path, "max_abs_diff": diff,
            "x_test": x_test.tolist(), "input": name, "dtype": dtype,
            "probabilities": am.predict_proba(x_test).tolist(), "classes": am.predict(x_test).tolist()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smoke run: 1 trial, 2 epochs.")
    parser.add_argument("--max-trials", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--output", default="saved_models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="Write the exports and AutoModel's predictions here.")
    args = parser.parse_args(argv)
    trials = args.max_trials or (1 if args.quick else 4)
    epochs = args.epochs or (2 if args.quick else 15)

    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    from tfmeta.data.digits import load_digits_splits

    results = {}
    workdir = tempfile.mkdtemp(prefix="tfmeta_ch06_")
    search = dict(task="classification", max_trials=trials, seed=args.seed, directory=os.path.join(workdir, "search"))

    print("== 1. A folder of images with string class names ==")
    splits = load_digits_splits(test_size=0.25, seed=0)
    (x_tr, y_tr), (x_te, y_te) = splits["train"], splits["test"]
    folder = write_digit_folder(os.path.join(workdir, "digits"), x_tr, y_tr)
    x_test = (x_te * 255 / 16).astype(np.uint8).astype(np.float32)[..., None]  # as the folder reader gives
    am = tfmeta.AutoModel(epochs=epochs, project_name="digit_folder", **search)
    results["image_folder"] = walkthrough(am, (folder,), x_test, np.array(NAMES)[y_te],
                                          os.path.join(args.output, "ch06_digit_folder"))

    print("\n== 2. A feature table ==")
    wine = load_wine()
    x_tr, x_te, y_tr, y_te = train_test_split(wine.data, wine.target, test_size=0.3, random_state=0, stratify=wine.target)
    names = np.array(wine.target_names)
    am = tfmeta.AutoModel(epochs=epochs * 2, project_name="wine", **search)
    results["table"] = walkthrough(am, (x_tr, names[y_tr]), x_te, names[y_te], os.path.join(args.output, "ch06_wine"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)
    return results


if __name__ == "__main__":
    main()
