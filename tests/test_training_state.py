"""Training variables built before the first `fit`: one trace of the train step, same results."""

from __future__ import annotations

import keras
import numpy as np

import tfmeta
from tfmeta.data import EpisodeSampler
from tfmeta.training_state import build_training_state


def small_classifier(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def digits():
    from tfmeta.data.digits import load_digits_splits

    x, y = load_digits_splits(test_size=0.2, validation_size=0.2, scaled=True, channel_axis=True)["train"]
    return x[:256], y[:256]


def test_built_state_saves_a_trace_and_changes_no_result(count_train_step_traces):
    x, y = digits()
    built, plain = small_classifier(0), small_classifier(0)
    before = [w.numpy() for w in built.weights]
    build_training_state(built, x, y)
    for a, b in zip(before, built.weights):  # the inference-mode call changed no weight or BN statistic
        np.testing.assert_array_equal(a, b.numpy())
    traces, plain_traces = count_train_step_traces(built), count_train_step_traces(plain)
    history_built = built.fit(x, y, epochs=2, batch_size=64, shuffle=False, verbose=0).history
    history_plain = plain.fit(x, y, epochs=2, batch_size=64, shuffle=False, verbose=0).history
    assert (len(traces), len(plain_traces)) == (1, 2)
    # The metrics were reset after the build: the reported loss and accuracy are the plain model's.
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(history_built[key], history_plain[key], rtol=1e-5)
    for a, b in zip(built.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_build_needs_a_compiled_model_and_builds_an_unbuilt_one_from_a_sample():
    build_training_state(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))  # not compiled: no-op
    model = small_classifier(0)
    build_training_state(model)
    assert model.optimizer.built
    x, y = digits()
    unbuilt = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    unbuilt.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    build_training_state(unbuilt)  # no variables yet, no sample: left to Keras
    assert not unbuilt.optimizer.built
    build_training_state(unbuilt, x, y)
    assert unbuilt.built and unbuilt.optimizer.built
    assert unbuilt.fit(x, y, epochs=1, verbose=0).history["loss"][0] > 0


def episodes(meta_batch=None):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 8))
    y = np.repeat(np.arange(10), 10)
    x = (centres[y] + 0.3 * rng.normal(size=(100, 8))).astype("float32")
    sampler = EpisodeSampler(x, y, ways=3, shots=1, queries=2, seed=0)
    return sampler.dataset(meta_batch=meta_batch) if meta_batch else sampler.dataset()


def protonet(encoder=None):
    keras.utils.set_random_seed(0)
    encoder = encoder or keras.Sequential([keras.Input((8,)), keras.layers.Dense(8)])
    model = tfmeta.PrototypicalNetwork(encoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def maml():
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model = tfmeta.MAML(net, inner_lr=0.1, inner_steps=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def test_learners_trace_their_first_fit_once_with_the_same_results(count_train_step_traces):
    for make, data in ((protonet, episodes), (maml, lambda: episodes(meta_batch=2))):
        learner, plain = make(), make()
        traces, plain_traces = count_train_step_traces(learner), count_train_step_traces(plain)
        history = learner.fit(data(), steps_per_epoch=5, epochs=1, verbose=0).history
        plain_history = keras.Model.fit(plain, data(), steps_per_epoch=5, epochs=1, verbose=0).history  # Keras alone
        assert (len(traces), len(plain_traces)) == (1, 2), make.__name__
        np.testing.assert_allclose(history["loss"], plain_history["loss"], rtol=1e-5)
        for a, b in zip(learner.trainable_variables, plain.trainable_variables):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_a_learner_with_an_unbuilt_encoder_is_left_to_keras():
    learner = protonet(keras.Sequential([keras.layers.Dense(8)]))  # no Input: variables come at the first call
    assert not learner.optimizer.built
    history = learner.fit(episodes(), steps_per_epoch=3, epochs=1, verbose=0).history
    assert learner.optimizer.built and np.isfinite(history["loss"][0])


def test_train_on_batch_traces_once_too(count_train_step_traces):
    learner = maml()
    traces = count_train_step_traces(learner)
    (support_x, support_y, query_x), query_y = next(iter(episodes(meta_batch=2)))
    for _ in range(2):
        learner.train_on_batch((support_x, support_y, query_x), query_y)
    assert len(traces) == 1 and learner.optimizer.iterations.numpy() == 2
