"""Tiny learners of every family, their training data, and one way to train them a few steps.

Shared by the strategy, mixed-precision and XLA tests (and the multi-worker script), so that
each comparison trains exactly the same model on exactly the same batches. SGD with momentum,
not Adam: a gradient off by a constant factor (replicas or loss scale left unscaled) changes
SGD's step, while Adam's normalised step would hide it.
"""

from __future__ import annotations

import contextlib
from typing import Callable, NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.automodel.preprocessing import Preprocessing
from tfmeta.metric.distillation import EpisodeDistiller
from tfmeta.nas.builders import build_dense_model
from tfmeta.nas.darts import DartsNetwork
from tfmeta.nas.space import DenseSpace, MicroCellSpace
from tfmeta.nas.supernet import SharedCellNetwork

META_BATCH = 4  # tasks (or examples) of one global batch: 2 per replica on 2 replicas
WAYS, SHOTS, QUERIES, DIM = 3, 2, 2, 6
STEPS = 3


def episodes(seed: int = 0, tasks: int = META_BATCH) -> tf.data.Dataset:
    """`((support_x, support_y, query_x), query_y)` batches of `META_BATCH` 3-way 2-shot
    tasks of 6-d vectors (class means apart, so the learners have something to learn)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(tasks, WAYS, DIM)) * 2.0

    def draw(per_class):
        labels = np.repeat(np.arange(WAYS), per_class)
        x = centres[:, labels] + rng.normal(size=(tasks, len(labels), DIM))
        return x.astype("float32"), np.tile(labels, (tasks, 1)).astype("int32")

    (sx, sy), (qx, qy) = draw(SHOTS), draw(QUERIES)
    return tf.data.Dataset.from_tensor_slices(((sx, sy, qx), qy)).batch(META_BATCH, drop_remainder=True)


def labelled(shape, classes: int, seed: int = 0, duplicated: bool = False, integers: bool = False) -> tf.data.Dataset:
    """`(x, y)` batches of `META_BATCH` examples. `duplicated=True` repeats the first half of
    the batch as its second half: each replica then sees the same examples, so batch-norm
    statistics per replica equal those of the whole batch and the comparison stays exact.
    `integers=True`: int64 inputs in 0..15 (raw arrays, as AutoModel takes them)."""
    rng = np.random.default_rng(seed)
    n = META_BATCH // 2 if duplicated else META_BATCH
    if integers:
        x = rng.integers(0, 16, size=(n, *shape)).astype("int64")
    else:
        x = rng.normal(size=(n, *shape)).astype("float32")
    y = rng.integers(0, classes, n).astype("int32")
    if duplicated:
        x, y = np.concatenate([x, x]), np.concatenate([y, y])
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(META_BATCH, drop_remainder=True)


def pairs(seed: int = 0) -> tf.data.Dataset:
    """Siamese `((x1, x2), same)` batches."""
    rng = np.random.default_rng(seed)
    x1, x2 = (rng.normal(size=(META_BATCH, DIM)).astype("float32") for _ in range(2))
    same = (np.arange(META_BATCH) % 2).astype("float32")
    return tf.data.Dataset.from_tensor_slices(((x1, x2), same)).batch(META_BATCH, drop_remainder=True)


def encoder(units: int = 4, seed: int = 1) -> keras.Model:
    return keras.Sequential([keras.Input((DIM,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(units)], name=f"encoder_{seed}")


def classifier(batch_norm: bool = False) -> keras.Model:
    """The network MAML and Reptile adapt: Dense -> (BN) -> ReLU -> Dense head."""
    body = [keras.Input((DIM,)), keras.layers.Dense(8, name="body")]
    body += [keras.layers.BatchNormalization(name="bn")] if batch_norm else []
    body += [keras.layers.ReLU(), keras.layers.Dense(WAYS, name="head")]
    return keras.Sequential(body, name="classifier")


def distiller() -> keras.Model:
    teacher = tfmeta.PrototypicalNetwork(encoder(seed=2))
    return EpisodeDistiller(tfmeta.PrototypicalNetwork(encoder()), teacher, alpha=0.5)


def supernet() -> keras.Model:
    space = MicroCellSpace(num_nodes=1, ops=("conv_1x1", "max_pool_3x3"))
    net = SharedCellNetwork(space, (4, 4, 1), 3, filters=2, num_reductions=0)
    net.set_architecture(space.sample(np.random.default_rng(0)))
    return net


def darts(**kwargs) -> keras.Model:
    """A first-order DARTS network: one mixed-op node, no reduction, 2 filters."""
    space = MicroCellSpace(num_nodes=1, ops=("conv_1x1", "max_pool_3x3"))
    return DartsNetwork(space, (4, 4, 1), 3, filters=2, num_reductions=0, **kwargs)


def darts_batches() -> tf.data.Dataset:
    """DARTS's `((x_train, y_train), (x_val, y_val))` pairs, each half duplicated (batch norm)."""
    return tf.data.Dataset.zip((labelled((4, 4, 1), 3, duplicated=True),
                                labelled((4, 4, 1), 3, seed=1, duplicated=True)))


def reweighted() -> keras.Model:
    """`ReweightedModel` around a small classifier, with a clean set of 2 examples per class."""
    rng = np.random.default_rng(3)
    clean_x = rng.normal(size=(3 * 2, DIM)).astype("float32")
    clean_y = np.repeat(np.arange(3), 2).astype("int32")
    net = keras.Sequential([keras.Input((DIM,)), keras.layers.Dense(8, activation="relu"),
                            keras.layers.Dense(3)], name="classifier")
    return tfmeta.ReweightedModel(net, clean_x, clean_y, from_logits=True)


def nas_child() -> keras.Model:
    space = DenseSpace(num_layers=2, units=(8,), dropout=(0.0,))
    return build_dense_model(space, space.sample(np.random.default_rng(0)), (DIM,), 3)


def automodel_network() -> keras.Model:
    """AutoModel's network for arrays: raw int inputs -> cast, normalisation -> a dense child."""
    x = np.random.default_rng(2).integers(0, 16, size=(32, DIM)).astype("int64")
    space = DenseSpace(num_layers=2, units=(8,), dropout=(0.0,))
    arch = space.sample(np.random.default_rng(0))
    return Preprocessing(x, "table").wrap(lambda shape: build_dense_model(space, arch, shape, 3))


class Case(NamedTuple):
    build: Callable[[], keras.Model]
    data: Callable[[], tf.data.Dataset]
    learning_rate: float = 0.1
    compile_kwargs: dict = {}


CLASSIFY = {"loss": "sparse_categorical_crossentropy"}

#: One case per learner; the families are metric (Siamese, prototypical, matching, relation),
#: distillation, gradient-based (MAML and its variants, Reptile), learned example weights, and
#: NAS (a child, the supernet, DARTS's first-order search).
CASES = {
    "siamese": Case(lambda: tfmeta.SiameseNetwork(encoder(), input_shape=(DIM,)), pairs),
    "protonet": Case(lambda: tfmeta.PrototypicalNetwork(encoder()), episodes),
    "matching": Case(lambda: tfmeta.MatchingNetwork(encoder()), episodes),
    "matching_full_context": Case(lambda: tfmeta.MatchingNetwork(encoder(), full_context=True), episodes),
    "relation": Case(lambda: tfmeta.RelationNetwork(encoder()), episodes, 0.5),
    "distiller": Case(distiller, episodes),
    "maml": Case(lambda: tfmeta.MAML(classifier(), inner_lr=0.1, inner_steps=2, order=2), episodes),
    "fomaml": Case(lambda: tfmeta.MAML(classifier(), inner_lr=0.1, order=1), episodes),
    "anil": Case(lambda: tfmeta.MAML(classifier(), inner_lr=0.1, inner_layers=["head"]), episodes),
    "meta_sgd": Case(lambda: tfmeta.MAML(classifier(), inner_lr=0.1, meta_sgd=True), episodes),
    "maml_plus_plus": Case(lambda: tfmeta.MAML(
        classifier(batch_norm=True), inner_lr=0.1, inner_steps=2, learn_step_lrs=True,
        multi_step_loss=True, per_step_bn=True), episodes),
    "reptile": Case(lambda: tfmeta.Reptile(classifier(), inner_lr=0.1, inner_steps=2), episodes, 0.5),
    "reweighted": Case(reweighted, lambda: labelled((DIM,), 3), 0.5),
    "nas_child": Case(nas_child, lambda: labelled((DIM,), 3), compile_kwargs=CLASSIFY),
    "darts": Case(darts, darts_batches, 0.5),
    # Clipped at every step (the gradients' norm is far above 1e-3): per replica, as one device.
    "darts_clipped": Case(lambda: darts(grad_clip_norm=1e-3), darts_batches, 50.0),
    "enas_supernet": Case(supernet, lambda: labelled((4, 4, 1), 3, duplicated=True), compile_kwargs=CLASSIFY),
    "automodel_arrays": Case(automodel_network, lambda: labelled((DIM,), 3, integers=True), compile_kwargs=CLASSIFY),
}


class Run(NamedTuple):
    losses: list
    before: list
    after: list


def train(name: str, *, strategy=None, policy: str = "float32", jit_compile=False, steps: int = STEPS) -> Run:
    """Builds case `name` (seeded) under `strategy` and `policy`, trains `steps` SGD steps on
    the same batch, and returns the loss of every step and all weights before and after."""
    case = CASES[name]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            keras.utils.set_random_seed(1)
            model = case.build()
            # Momentum: its optimizer variables must be created under the strategy too.
            optimizer = keras.optimizers.SGD(case.learning_rate, momentum=0.5)
            if policy == "mixed_float16":
                # What compile() wraps the optimizer in, with a smaller first scale: at 2^15 the
                # first steps of some of these nets overflow in float16 and are skipped (how the
                # optimizer finds its scale), which would shift the loss curve.
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0**8)
            model.compile(optimizer=optimizer, jit_compile=jit_compile, **case.compile_kwargs)
    finally:
        keras.config.set_dtype_policy(previous)
    before = [np.array(w) for w in model.get_weights()]
    history = model.fit(case.data(), epochs=steps, verbose=0)
    return Run(history.history["loss"], before, [np.array(w) for w in model.get_weights()])


# ------------------------------------------------------------------ fixtures
# Here, not in a conftest.py: tests elsewhere import helpers with `from conftest import ...`,
# which a second conftest module loaded after theirs would shadow.


@pytest.fixture(scope="session")
def mirrored():
    """`MirroredStrategy` over the two logical CPUs that tests/conftest.py creates."""
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        raise RuntimeError(
            f"tests/distribute needs 2 logical CPU devices (made by tests/conftest.py before "
            f"TensorFlow initialises); found {len(cpus)}: TensorFlow was initialised earlier."
        )
    return tf.distribute.MirroredStrategy([cpus[0].name, cpus[1].name])


@pytest.fixture(scope="session")
def reference_runs():
    """`get(name) -> Run`: each case trained once on one device in float32, shared by tests."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = train(name)
        return cache[name]

    return get
