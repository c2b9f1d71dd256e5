"""Chapter 7: AutoModel on the data users bring: a table, a set of texts and a folder of images.

Each walkthrough hands AutoModel the data raw, exports it, reloads the SavedModel with
TensorFlow alone and queries it the way a server would, with raw inputs:

1. **A mixed-type table** (`tables/taxis.csv`: datetimes, numbers, categories with hundreds of
   levels, missing values), fitted on the CSV *path* with the target named
   (`fit("taxis.csv", y="payment")`: streamed, typed column by column, `summary()` shows the
   types). The export takes one named input per column with its raw dtype, so a row is
   `{"pickup": "2019-03-23 20:21:09", "distance": 1.6, "pickup_zone": "Lenox Hill West", ...}`.
2. **Raw text** (yelp and amazon sentiment sentences): `fit(list_of_strings, labels)`; the
   export takes strings.
3. **A folder of real-sized images** (105 x 105 Omniglot drawings of a few characters, one
   sub-folder per character): streamed from disk, resized inside the model; the export takes
   images of any size (`serving_default`) or the PNG bytes themselves (`serving_bytes`).

Every reloaded export must give AutoModel's own predictions; `--json PATH` writes what a test
needs to check it.

Usage:

    python recipes/ch07_automodel_real_data.py            # 3 trials x 10 epochs each
    python recipes/ch07_automodel_real_data.py --quick    # smoke run (CI)
"""

from __future__ import annotations

import tfmeta  # noqa: F401  (first: sets TensorFlow's environment defaults)

import argparse
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from tfmeta.data.omniglot import default_data_dir


def fit_and_export(am, fit_args: tuple, fit_kwargs: dict, export_dir: str) -> tuple[str, float]:
    start = time.time()
    am.fit(*fit_args, **fit_kwargs)
    print(am.summary())
    for rank, row in enumerate(am.leaderboard(), start=1):
        print(f"  {rank}. {row['status']:9} score={row['score'] if row['score'] is None else round(row['score'], 4)}"
              f"  {row['architecture'][:110]}")
    return am.export(export_dir), time.time() - start


def table_walkthrough(args, data_dir: Path, workdir: str) -> dict:
    """The taxis CSV, raw: fit on the path, query the export with rows of raw columns."""
    path = data_dir / "tables" / "taxis.csv"
    frame = pd.read_csv(path)
    train, test = frame.iloc[: int(0.8 * len(frame))], frame.iloc[int(0.8 * len(frame)) :]
    train_csv = os.path.join(workdir, "taxis_train.csv")
    train.to_csv(train_csv, index=False)
    am = tfmeta.AutoModel(task="classification", **args.search, project_name="taxis")
    export, seconds = fit_and_export(am, (train_csv,), {"y": "payment"}, os.path.join(args.output, "ch07_taxis"))
    accuracy = am.score(test, y="payment")
    rows = test.drop(columns=["payment"]).head(5)
    served = tf.saved_model.load(export).signatures["serving_default"]
    specs = served.structured_input_signature[1]
    request = {}  # what a client sends: numbers (NaN when missing) and strings ("" when missing)
    for column, spec in specs.items():
        values = rows[column]
        request[column] = values.astype("float32").to_numpy() if spec.dtype == tf.float32 \
            else values.fillna("").astype(str).to_numpy()
    out = served(**{k: tf.constant(v) for k, v in request.items()})
    expected = am.predict_proba(rows)
    print(f"table: test accuracy {accuracy:.4f}, {seconds:.0f} s; export {export}")
    return {"export": export, "accuracy": accuracy, "seconds": seconds,
            "request": {k: v.tolist() for k, v in request.items()},
            "probabilities": expected.tolist(), "classes": am.predict(rows).tolist(),
            "max_abs_diff": float(np.abs(out["probabilities"].numpy() - expected).max())}


def read_sentences(data_dir: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for file in ("yelp_labelled.txt", "amazon_cells_labelled.txt"):
        for line in (data_dir / "text" / file).read_text(encoding="utf-8").splitlines():
            if line.strip():
                text, label = line.rsplit("\t", 1)
                texts.append(text)
                labels.append(int(label))
    return texts, np.array(labels)


def text_walkthrough(args, data_dir: Path) -> dict:
    texts, labels = read_sentences(data_dir)
    order = np.random.default_rng(0).permutation(len(texts))
    train, test = order[: int(0.8 * len(order))], order[int(0.8 * len(order)) :]
    am = tfmeta.AutoModel(task="classification", **args.search, project_name="sentiment")
    export, seconds = fit_and_export(am, ([texts[i] for i in train], labels[train]), {},
                                     os.path.join(args.output, "ch07_sentiment"))
    test_texts = [texts[i] for i in test]
    accuracy = am.score(test_texts, labels[test])
    queries = test_texts[:5] + ["The food was wonderful and the staff friendly.", "Broke after a week, awful."]
    out = tf.saved_model.load(export).signatures["serving_default"](text=tf.constant(queries))
    expected = am.predict_proba(queries)
    print(f"text: test accuracy {accuracy:.4f}, {seconds:.0f} s; export {export}")
    return {"export": export, "accuracy": accuracy, "seconds": seconds, "queries": queries,
            "probabilities": expected.tolist(), "classes": [int(c) for c in am.predict(queries)],
            "max_abs_diff": float(np.abs(out["probabilities"].numpy() - expected).max())}


def write_character_folder(data_dir: Path, root: str, characters: int) -> str:
    """`characters` Omniglot characters (105 x 105 PNG drawings, 20 each) as class sub-folders."""
    archive = zipfile.ZipFile(data_dir / "omniglot" / "images_background_small1.zip")
    names = sorted(n for n in archive.namelist() if n.endswith(".png"))
    chosen = sorted({os.path.dirname(n) for n in names})[:characters]
    for folder in chosen:
        target = os.path.join(root, folder.replace("/", "_"))
        os.makedirs(target, exist_ok=True)
        for name in (n for n in names if os.path.dirname(n) == folder):
            Path(target, os.path.basename(name)).write_bytes(archive.read(name))
    return root


def image_walkthrough(args, data_dir: Path, workdir: str) -> dict:
    folder = write_character_folder(data_dir, os.path.join(workdir, "characters"), args.characters)
    am = tfmeta.AutoModel(task="classification", **args.search, project_name="characters", filters=16, batch_size=16)
    export, seconds = fit_and_export(am, (folder,), {}, os.path.join(args.output, "ch07_characters"))
    files = sorted(str(p) for p in Path(folder).rglob("*.png"))[::20][:4]  # one drawing of each of 4 characters
    loaded = tf.saved_model.load(export)
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant([Path(f).read_bytes() for f in files]))
    images = [tf.io.decode_png(Path(f).read_bytes(), channels=am.raw_task_.folder.channels) for f in files]
    expected = np.concatenate([am.predict_proba(tf.cast(image, tf.float32)[None].numpy()) for image in images])
    print(f"images: {len(am.classes_)} characters, {seconds:.0f} s; export {export}")
    return {"export": export, "seconds": seconds, "files": files, "probabilities": expected.tolist(),
            "training_accuracy": am.evaluate(folder)["accuracy"],
            "max_abs_diff": float(np.abs(from_bytes["probabilities"].numpy() - expected).max())}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 trial x 2 epochs")
    parser.add_argument("--max-trials", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--characters", type=int, default=5, help="image classes (Omniglot characters)")
    parser.add_argument("--output", default="saved_models")
    parser.add_argument("--data-dir", default=None, help="the shared data (default: $TFMETA_DATA_DIR)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write what a test needs to check the exports here")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    workdir = tempfile.mkdtemp(prefix="tfmeta_ch07_")
    args.search = dict(max_trials=args.max_trials or (1 if args.quick else 3),
                       epochs=args.epochs or (2 if args.quick else 10), seed=args.seed,
                       directory=os.path.join(workdir, "search"), verbose=0)
    print("== 1. A mixed-type table, from its CSV file ==")
    results = {"table": table_walkthrough(args, data_dir, workdir)}
    print("\n== 2. Raw text ==")
    results["text"] = text_walkthrough(args, data_dir)
    print("\n== 3. A folder of real-sized images ==")
    results["images"] = image_walkthrough(args, data_dir, workdir)
    for name, result in results.items():
        assert result["max_abs_diff"] < 1e-4, f"{name}: the reloaded export differs from AutoModel.predict"
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return results


if __name__ == "__main__":
    main()
