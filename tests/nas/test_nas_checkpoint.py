"""Checkpoints restore a model and its optimizer exactly, and refuse other settings or networks."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfmeta.nas.checkpoint import load_checkpoint, save_checkpoint
from tfmeta.training_state import build_training_state

X = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
Y = (X[:, :2] @ np.array([[1.0, -1.0], [0.5, 2.0]], "float32"))


def tiny(seed: int, width: int = 8) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(width), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    build_training_state(model)
    return model


def test_round_trip_continues_training_identically(tmp_path):
    path = str(tmp_path / "ckpt.npz")
    trained = tiny(0)
    trained.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    save_checkpoint(path, trained, {"train_paths": "trial"})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # written under a temporary name, then renamed
    restored = tiny(1)
    assert not np.allclose(restored.layers[0].kernel.numpy(), trained.layers[0].kernel.numpy())
    load_checkpoint(path, restored, {"train_paths": "trial"})
    for a, b in zip(trained.weights + trained.optimizer.variables, restored.weights + restored.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Same weights, Adam slots and step count: the next epoch ends in the same place.
    for model in (trained, restored):
        model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(trained.weights, restored.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_refuses_other_settings_and_other_networks(tmp_path):
    path = str(tmp_path / "ckpt.npz")
    save_checkpoint(path, tiny(0), {"train_paths": "trial"})
    with pytest.raises(ValueError, match="`train_paths='trial'`.*given `train_paths='uniform'`"):
        load_checkpoint(path, tiny(0), {"train_paths": "uniform"})
    load_checkpoint(path, tiny(0), {"other": "x"})  # a setting the checkpoint does not record is not checked
    with pytest.raises(ValueError, match="another network"):
        load_checkpoint(path, tiny(0, width=5))
