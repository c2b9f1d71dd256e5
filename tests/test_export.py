"""Atomic, versioned SavedModel export and the few_shot signature."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta import export as export_lib


@pytest.fixture(scope="module")
def dense_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


def _endpoints(model):
    return {"serving_default": (lambda x: {"probabilities": model(x)},
                                [tf.TensorSpec([None, 4], tf.float32, name="x")])}


def test_versions_count_up_and_metadata_is_written(tmp_path, dense_model):
    base = tmp_path / "m"
    p1 = export_lib.export_endpoints(str(base), dense_model, _endpoints(dense_model), {"task": "t"})
    p2 = export_lib.export_endpoints(str(base), dense_model, _endpoints(dense_model), {"task": "t"})
    assert [os.path.basename(p1), os.path.basename(p2)] == ["1", "2"]
    meta = json.loads((base / "2" / "tfmeta.json").read_text())
    assert meta["task"] == "t" and meta["signatures"] == ["serving_default"]
    assert "tfmeta_version" in meta
    assert export_lib.latest_version_dir(str(base)) == p2


def test_reloaded_model_gives_identical_numbers(tmp_path, dense_model):
    path = export_lib.export_endpoints(str(tmp_path / "m"), dense_model, _endpoints(dense_model), {})
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](x=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_array_equal(out, dense_model(x).numpy())


def test_interrupted_export_leaves_no_version(tmp_path):
    base = tmp_path / "m"

    def crash(path):
        os.makedirs(path)
        open(os.path.join(path, "saved_model.pb"), "w").close()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_lib.write_version(str(base), crash, {})
    assert export_lib.existing_versions(str(base)) == []
    assert os.listdir(base) == []


def test_export_requires_serving_default(tmp_path, dense_model):
    with pytest.raises(ValueError, match="serving_default"):
        export_lib.export_endpoints(str(tmp_path), dense_model, {}, {})


def test_few_shot_signature_round_trip_without_tfmeta(tmp_path, toy_few_shot_model):
    path = toy_few_shot_model.export(str(tmp_path / "toy"), metadata={"metrics": {"a": 1}})
    rng = np.random.default_rng(0)
    sx = rng.random((10, 28, 28, 1), dtype=np.float32)
    sy = np.repeat(np.arange(5), 2).astype(np.int32)
    qx = rng.random((7, 28, 28, 1), dtype=np.float32)
    expected = toy_few_shot_model.predict_few_shot(sx, sy, qx)
    np.savez(tmp_path / "episode.npz", sx=sx, sy=sy, qx=qx)
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        d = np.load({str(tmp_path / 'episode.npz')!r})
        m = tf.saved_model.load({path!r})
        out = m.signatures["few_shot"](support_x=d["sx"], support_y=d["sy"], query_x=d["qx"])
        np.save({str(tmp_path / 'out.npy')!r}, out["probabilities"].numpy())
        assert "tfmeta" not in sys.modules
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path)
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (7, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    meta = export_lib.read_metadata(str(tmp_path / "toy"))
    assert meta["learner"] == "toy_prototypes" and meta["task"] == "few_shot"
    assert meta["signatures"] == ["few_shot", "serving_default"]
