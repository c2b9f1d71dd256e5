"""EpisodeDistiller: the loss by hand, a student that learns from soft labels alone, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.data import EpisodeSampler
from tfmeta.metric.distillation import EpisodeDistiller
from tfmeta.metric.protonet import PrototypicalNetwork


def scaled_identity(scale: float, trainable: bool = True) -> keras.Model:
    """A 2-D linear encoder `x -> scale * x` with one (trainable) kernel."""
    inputs = keras.Input((2,))
    layer = keras.layers.Dense(
        2, use_bias=False, kernel_initializer=keras.initializers.Identity(scale),
        trainable=trainable,
    )
    return keras.Model(inputs, layer(inputs))


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_loss_by_hand_with_two_teachers(tiny_episode):
    sx, sy, qx = tiny_episode
    qy = np.array([0, 0], np.int32)
    # Prototypes (1, 0) and (0, 2), queries (1, 1) and (3, 0) (see the fixture). An encoder
    # x -> c x multiplies every squared distance by c^2.
    d = np.array([[1.0, 2.0], [4.0, 13.0]])
    student = PrototypicalNetwork(scaled_identity(1.0))
    teachers = [PrototypicalNetwork(scaled_identity(2.0)), PrototypicalNetwork(scaled_identity(3.0))]
    alpha, temperature = 0.3, 2.0
    distiller = EpisodeDistiller(student, teachers, alpha=alpha, temperature=temperature)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    episode = ((sx[None], sy[None], qx[None]), qy[None])

    s = -d  # student logits
    t = -(4 * d + 9 * d) / 2  # the teachers' mean logits
    np.testing.assert_allclose(
        distiller.teacher_logits(sx[None], sy[None], qx[None]).numpy()[0], t, rtol=1e-6
    )
    hard = -log_softmax(s)[np.arange(2), qy].mean()
    pt = np.exp(log_softmax(t / temperature))
    kl = (pt * (log_softmax(t / temperature) - log_softmax(s / temperature))).sum(-1).mean()
    want = (1 - alpha) * hard + alpha * temperature**2 * kl

    logs = distiller.fit(tf.data.Dataset.from_tensors(episode), epochs=1, verbose=0).history
    np.testing.assert_allclose(logs["loss"][0], want, rtol=1e-5)
    np.testing.assert_allclose(logs["distillation"][0], kl, rtol=1e-5)
    # Query (1, 1) is nearer class 0 for every model; (3, 0) too: both right.
    assert logs["accuracy"][0] == 1.0 and logs["teacher_accuracy"][0] == 1.0
    # evaluate() scores the student alone: its cross-entropy and accuracy.
    result = distiller.evaluate(tf.data.Dataset.from_tensors(episode), verbose=0, return_dict=True)
    assert set(result) == {"loss", "accuracy"}
    np.testing.assert_allclose(result["loss"], hard, rtol=1e-5)


def held_out_kl(teacher, student, xt, yt, episodes=5):
    """Mean KL(teacher || student) of the query probabilities on held-out 5-way 1-shot episodes."""
    kls = []
    for seed in range(episodes):
        ep = EpisodeSampler(xt, yt, ways=5, shots=1, queries=10, seed=100 + seed).sample()
        args = (ep.support_x, ep.support_y, ep.query_x)
        p, q = teacher.predict_few_shot(*args), student.predict_few_shot(*args)
        kls.append(np.sum(p * (np.log(p + 1e-9) - np.log(q + 1e-9)), axis=-1).mean())
    return float(np.mean(kls))


def train_student(teacher, x, y, encoder, alpha):
    keras.utils.set_random_seed(1)
    student = PrototypicalNetwork(encoder)
    distiller = EpisodeDistiller(student, teacher, alpha=alpha, temperature=2.0)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2))
    ds = EpisodeSampler(x, y, ways=5, shots=2, queries=5, seed=1).dataset(meta_batch=2)
    history = distiller.fit(ds, steps_per_epoch=20, epochs=2, verbose=0).history
    return student, distiller, history


def test_student_learns_from_soft_labels_alone(trained_protonet, noisy_clusters, clusters_encoder):
    (x, y), (xt, yt) = noisy_clusters
    before = [w.copy() for w in trained_protonet.get_weights()]
    # alpha = 1: the true labels carry no weight, everything the student learns comes from
    # the teacher's probabilities.
    student, distiller, history = train_student(trained_protonet, x, y, clusters_encoder(), 1.0)
    assert history["distillation"][1] < 0.5 * history["distillation"][0], history
    learned = student.evaluate_episodes(xt, yt, ways=5, shots=1, queries=5, episodes=40, seed=7)
    assert learned["accuracy"] > 0.75, learned  # chance 0.2; raw features ~0.44
    # The teacher was never updated, and the distiller trains only the student.
    for old, new in zip(before, trained_protonet.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert {id(v) for v in distiller.trainable_variables} == {
        id(v) for v in student.trainable_variables
    }


def test_student_imitates_its_teacher_rather_than_the_labels(noisy_clusters, clusters_encoder):
    (x, y), (xt, yt) = noisy_clusters
    # A poor teacher (a fixed random projection: ~0.3 on held-out 5-way 1-shot), whose
    # probabilities the true labels would never teach.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((24,))
    projection = keras.layers.Dense(
        16, use_bias=False, trainable=False, kernel_initializer=keras.initializers.RandomNormal(seed=0)
    )
    teacher = PrototypicalNetwork(keras.Model(inputs, projection(inputs)))
    distilled, _, _ = train_student(teacher, x, y, clusters_encoder(), alpha=1.0)
    plain, _, _ = train_student(teacher, x, y, clusters_encoder(), alpha=0.0)
    # Measured: ~0.5 against ~6.5 nats (seeds 0-2 of the teacher).
    distilled_kl = held_out_kl(teacher, distilled, xt, yt)
    plain_kl = held_out_kl(teacher, plain, xt, yt)
    assert distilled_kl < 0.25 * plain_kl, (distilled_kl, plain_kl)


def test_bad_arguments_raise(identity_encoder):
    student = PrototypicalNetwork(identity_encoder())
    teacher = PrototypicalNetwork(identity_encoder())
    with pytest.raises(ValueError, match="`student` must be an EpisodicMetricLearner.*Functional"):
        EpisodeDistiller(identity_encoder(), teacher)
    with pytest.raises(ValueError, match="`teachers` must be .*received \\[\\]"):
        EpisodeDistiller(student, [])
    with pytest.raises(ValueError, match="`teachers` must be .*'str'"):
        EpisodeDistiller(student, ["teacher.weights.h5"])
    with pytest.raises(ValueError, match="must not include the `student`"):
        EpisodeDistiller(student, [teacher, student])
    with pytest.raises(ValueError, match="`alpha` must be in \\[0, 1\\]; received 1.5"):
        EpisodeDistiller(student, teacher, alpha=1.5)
    with pytest.raises(ValueError, match="`temperature` must be > 0; received 0"):
        EpisodeDistiller(student, teacher, temperature=0)


def test_lazy_name():
    assert tfmeta.metric.EpisodeDistiller is EpisodeDistiller
