"""Chapter 6: AutoModel, the front door.

`tfmeta.AutoModel` takes data as it comes (a folder of images, a feature table, numpy arrays or
tf.data), searches architectures with a NAS strategy, trains the best, and exports a SavedModel
whose `serving_default` takes the raw inputs and returns class names and probabilities.

This chapter:
1. writes scikit-learn's digits to a folder of PNGs (one sub-folder per class, named "zero",
   "one", ...) and fits AutoModel on the folder: labels are strings, the model returns them;
2. fits AutoModel on a feature table (scikit-learn's wine data, 13 features, 3 classes);
3. prints each leaderboard, exports both, reloads the SavedModels with TensorFlow alone and
   checks that they give the same predictions as `AutoModel.predict`.

Run:  python recipes/ch06_automodel.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN CPU kernels: see README

import numpy as np  # noqa: E402

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


def check_export(am, path, x) -> float:
    """Largest difference between the reloaded SavedModel and AutoModel.predict_proba."""
    import tensorflow as tf

    serving = tf.saved_model.load(path).signatures["serving_default"]
    out = serving(x=tf.constant(x.astype(am.preprocessing_.raw_dtype)))
    classes = out["classes"].numpy()
    classes = np.array([c.decode() for c in classes]) if classes.dtype.kind in "SO" else classes
    assert (classes == am.predict(x)).all(), "SavedModel classes differ from AutoModel.predict"
    return float(np.abs(out["probabilities"].numpy() - am.predict_proba(x)).max())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smoke run: 1 trial, 2 epochs.")
    parser.add_argument("--max-trials", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--output", default="saved_models")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    trials = args.max_trials or (1 if args.quick else 4)
    epochs = args.epochs or (2 if args.quick else 15)

    import tfmeta
    from sklearn.datasets import load_digits, load_wine
    from sklearn.model_selection import train_test_split

    results = {}
    workdir = tempfile.mkdtemp(prefix="tfmeta_ch06_")

    print("== 1. A folder of images with string class names ==")
    digits = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(digits.images, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    folder = write_digit_folder(os.path.join(workdir, "digits"), x_tr, y_tr)
    start = time.time()
    am = tfmeta.AutoModel(task="classification", max_trials=trials, epochs=epochs, seed=args.seed,
                          directory=os.path.join(workdir, "search"), project_name="digit_folder")
    am.fit(folder)
    x_test = (x_te * 255 / 16).astype(np.uint8).astype(np.float32)[..., None]  # as the folder reader gives
    acc = am.score(x_test, np.array(NAMES)[y_te])
    print_leaderboard(am)
    path = am.export(os.path.join(args.output, "ch06_digit_folder"))
    diff = check_export(am, path, x_test)
    print(f"test accuracy {acc:.4f} in {time.time() - start:.0f} s; exported to {path} (max |diff| {diff:.2e})")
    results["image_folder"] = {"test_accuracy": acc, "export": path, "max_abs_diff": diff}

    print("\n== 2. A feature table ==")
    wine = load_wine()
    x_tr, x_te, y_tr, y_te = train_test_split(wine.data, wine.target, test_size=0.3, random_state=0, stratify=wine.target)
    start = time.time()
    am = tfmeta.AutoModel(task="classification", max_trials=trials, epochs=epochs * 2, seed=args.seed,
                          directory=os.path.join(workdir, "search"), project_name="wine")
    am.fit(x_tr, np.array(wine.target_names)[y_tr])
    acc = am.score(x_te, np.array(wine.target_names)[y_te])
    print_leaderboard(am)
    path = am.export(os.path.join(args.output, "ch06_wine"))
    diff = check_export(am, path, x_te)
    print(f"test accuracy {acc:.4f} in {time.time() - start:.0f} s; exported to {path} (max |diff| {diff:.2e})")
    results["table"] = {"test_accuracy": acc, "export": path, "max_abs_diff": diff}
    return results


if __name__ == "__main__":
    main()
