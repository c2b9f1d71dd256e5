"""AutoModel on raw strings and on image folders: exports that take raw text, images and bytes."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tfmeta
from tfmeta.xla_check import check_export

POSITIVE = ["great", "lovely", "excellent", "tasty", "friendly", "superb"]
NEGATIVE = ["awful", "rude", "bland", "cold", "terrible", "slow"]


def reviews(count: int, seed: int):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(count):
        label = int(rng.integers(2))
        words = list(rng.choice(POSITIVE if label else NEGATIVE, 2)) + list(rng.choice(["the", "food", "was",
                                                                                         "service", "and"], 4))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels)


def test_text_is_learned_and_served_raw(tmp_path):
    x, y = reviews(300, seed=0)
    am = tfmeta.AutoModel(task="classification", max_trials=1, epochs=10, seed=0, verbose=0,
                          directory=str(tmp_path), project_name="text")
    am.fit(x + [None], np.append(y, 1))  # a missing text is the empty string
    test_x, test_y = reviews(200, seed=1)
    assert am.score(test_x, test_y) > 0.9
    path = am.export(str(tmp_path / "text"))
    assert [(c.signature, c.status) for c in check_export(path)] == [("serving_default", "host preprocessing")]
    signature = tf.saved_model.load(path).signatures["serving_default"]
    served = signature(text=tf.constant(test_x[:8]))
    np.testing.assert_allclose(served["probabilities"].numpy(), am.predict_proba(test_x[:8]), atol=1e-6)
    with pytest.raises(TypeError, match="must hold only strings"):
        am.fit(["good", 3, "bad"], [1, 0, 0])


def make_folder(root, classes: int, per_class: int, seed: int = 0):
    """Noisy images of varying sizes, class `k` a square of colour channel `k` at a random place."""
    rng = np.random.default_rng(seed)
    for label in range(classes):
        os.makedirs(os.path.join(root, f"class{label}"), exist_ok=True)
        for i in range(per_class):
            side = int(rng.integers(20, 40))
            image = rng.integers(0, 60, (side, side, 3)).astype("uint8")
            r, c = rng.integers(0, side // 2, 2)
            image[r : r + side // 2, c : c + side // 2, label % 3] = 220
            Image.fromarray(image).save(os.path.join(root, f"class{label}", f"{i}.png"))
    return root


def test_an_image_folder_streams_and_the_export_takes_any_size_or_bytes(tmp_path):
    root = make_folder(str(tmp_path / "images"), classes=3, per_class=24)
    am = tfmeta.AutoModel(task="classification", max_trials=1, epochs=8, seed=0, verbose=0, filters=16, batch_size=8,
                          directory=str(tmp_path), project_name="images")
    am.fit(root)
    assert am.raw_task_.folder.load_size[0] < 40 and list(am.classes_) == ["class0", "class1", "class2"]
    held_out = make_folder(str(tmp_path / "held_out"), classes=3, per_class=6, seed=1)
    assert am.evaluate(held_out)["accuracy"] > 0.6
    path = am.export(str(tmp_path / "export"))
    checks = {c.signature: (c.status, c.ok) for c in check_export(path)}  # bytes and names: on the host
    assert checks == {"serving_bytes": ("host preprocessing", True),
                      "serving_default": ("host preprocessing", True)}, checks
    loaded = tf.saved_model.load(path)
    files = sorted(os.path.join(held_out, "class1", f) for f in os.listdir(os.path.join(held_out, "class1")))[:3]
    raw = np.asarray(Image.open(files[0]), dtype="float32")[None]  # the user's own size
    served = loaded.signatures["serving_default"](images=tf.constant(raw))["probabilities"].numpy()
    np.testing.assert_allclose(served, am.predict_proba(raw), atol=1e-5)
    encoded = loaded.signatures["serving_bytes"](image_bytes=tf.constant([open(f, "rb").read() for f in files]))
    one_by_one = np.concatenate([am.predict_proba(np.asarray(Image.open(f), dtype="float32")[None]) for f in files])
    np.testing.assert_allclose(encoded["probabilities"].numpy(), one_by_one, atol=1e-5)


def test_an_image_folder_with_one_class_is_refused(tmp_path):
    root = make_folder(str(tmp_path / "one"), classes=1, per_class=3)
    with pytest.raises(ValueError, match="at least 2 classes"):
        tfmeta.AutoModel(task="classification", verbose=0, directory=str(tmp_path)).fit(root)
