"""`tfmeta.callbacks.TimeBudget`: stops on wall time, cosine learning rate over the budget."""

import math

import keras
import numpy as np
import pytest

from tfmeta import callbacks as callbacks_module
from tfmeta.callbacks import TimeBudget


class FakeClock:
    """Stands in for the clock of `tfmeta.callbacks`: each read advances `tick` seconds."""

    def __init__(self, tick):
        self.now, self.tick = 1000.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


class RecordLearningRate(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        # Runs after TimeBudget's own on_train_batch_begin (it is listed first).
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


@pytest.fixture()
def regression():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model, x, x.sum(1, keepdims=True)


def test_stops_once_the_budget_is_spent(regression, monkeypatch):
    model, x, y = regression
    # Every clock read advances 1 s: start, then one read per batch end -> the batch that
    # ends past 5.5 s of elapsed time is the last one.
    monkeypatch.setattr(callbacks_module, "_now", FakeClock(1.0))
    budget = TimeBudget(5.5)
    history = model.fit(x, y, batch_size=8, epochs=10, callbacks=[budget], verbose=0)
    assert budget.steps == 6
    assert budget.elapsed == pytest.approx(6.0)
    assert len(history.history["loss"]) == 1  # stopped in the first epoch of 8 batches


def test_cosine_learning_rate_follows_the_elapsed_time(regression, monkeypatch):
    model, x, y = regression
    clock = FakeClock(0.5)  # reads: start, then begin/end of every batch (1 s per batch)
    monkeypatch.setattr(callbacks_module, "_now", clock)
    budget = TimeBudget(8.0, cosine_lr=0.1, min_lr=0.01)
    record = RecordLearningRate()
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[budget, record], verbose=0)
    expected = [0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * min(1.0, (0.5 + k) / 8.0)))
                for k in range(len(record.rates))]
    np.testing.assert_allclose(record.rates, expected, rtol=1e-5)
    assert budget.steps == 9  # batch k ends at k + 1 s; the one ending at 9 s is past 8 s
    assert record.rates[0] > 0.09 and record.rates[-1] < 0.02


def test_real_clock_leaves_the_model_trained(regression):
    model, x, y = regression
    budget = TimeBudget(60.0, cosine_lr=0.1)
    history = model.fit(x, y, batch_size=8, epochs=5, callbacks=[budget], verbose=0)
    assert budget.steps == 40  # all 5 epochs of 8 batches fit in the budget
    assert history.history["loss"][-1] < 0.1 * history.history["loss"][0]


def test_scheduled_learning_rate_is_rejected_with_cosine(regression):
    model, x, y = regression
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    with pytest.raises(ValueError, match="plain float learning rate"):
        model.fit(x, y, epochs=1, callbacks=[TimeBudget(10.0, cosine_lr=0.1)], verbose=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"seconds": 0}, "seconds"), ({"seconds": 1, "cosine_lr": -1.0}, "cosine_lr"),
     ({"seconds": 1, "cosine_lr": 0.1, "min_lr": 0.5}, "min_lr")],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TimeBudget(**kwargs)
