"""Knowledge distillation between episodic metric learners.

`EpisodeDistiller` trains a student learner (any `EpisodicMetricLearner`: prototypical,
matching, relation...) on episodes against two targets at once: the episode's true labels
(the student's own episode loss) and the class probabilities that one or more trained teacher learners give
the same queries, softened by a temperature (Hinton, Vinyals and Dean 2015). With a teacher of
the student's own architecture this is born-again training (Furlanello et al. 2018), which Tian
et al. 2020 ("Rethinking Few-Shot Image Classification") apply to few-shot embeddings; with
several teachers it distils their ensemble into one network, so serving costs one encoder.

The loss of every episode is

    (1 - alpha) * L(query_y, s) + alpha * T^2 * mean_q KL(softmax(t / T) || softmax(s / T))

where `L` is the student's own `episode_loss` (cross-entropy, or the relation network's MSE),
`s` are the student's `[Q, N]` logits, `t` the teachers' logits averaged over teachers,
and `T` the temperature (the `T^2` keeps the soft term's gradient scale independent of `T`).
The teachers run in inference mode (batch-norm moving statistics, no dropout) on exactly the
images the student sees, augmented or not, and are never updated.

`benchmarks/protonet_omniglot.py --teachers` measures it on Omniglot (docs/results.md).
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from tfmeta.metric.base import EpisodicMetricLearner
from tfmeta.optimizer_step import minimize
from tfmeta.training_state import PrebuiltOptimizerMixin


class EpisodeDistiller(PrebuiltOptimizerMixin, keras.Model):
    """Trains `student` on episodes against the true labels and the teachers' soft labels.

    Args:
        student: The `EpisodicMetricLearner` to train. After `fit`, evaluate, save and export
            `distiller.student` as any learner of its kind.
        teachers: One trained `EpisodicMetricLearner` or a sequence of them (their logits are
            averaged: the soft labels of their ensemble). They are frozen (`trainable = False`).
        alpha: Weight of the distillation term, in [0, 1]; 0 is ordinary episodic training.
        temperature: Softmax temperature of the soft labels, > 0. A prototypical network's logits
            are negative squared distances: four trained Omniglot conv4 teachers gave their top
            class ~0.9 on average at 1, ~0.7 at 2 and ~0.3 at 4 on 60-way training episodes.
        **kwargs: Passed to `keras.Model` (e.g. `name`).

    Metrics: `loss` (the total), `accuracy` (the student's, on the true labels),
    `distillation` (the mean KL term, before `alpha` and `T^2`) and `teacher_accuracy`.
    Evaluation (`evaluate`) scores the student alone.

    Example:

    >>> teacher = tfmeta.PrototypicalNetwork(trained_encoder)
    >>> student = tfmeta.PrototypicalNetwork(input_shape=(28, 28, 1))
    >>> distiller = EpisodeDistiller(student, teacher, alpha=0.5, temperature=2.0)
    >>> distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> distiller.fit(EpisodeSampler(x, y, ways=60, shots=1, queries=5).dataset(),
    ...               steps_per_epoch=100, epochs=30)
    >>> distiller.student.evaluate_episodes(x_test, y_test, ways=5, shots=1)["accuracy"]
    """

    def __init__(
        self,
        student: EpisodicMetricLearner,
        teachers: EpisodicMetricLearner | Sequence[EpisodicMetricLearner],
        alpha: float = 0.5,
        temperature: float = 2.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(student, EpisodicMetricLearner):
            raise ValueError(
                "`student` must be an EpisodicMetricLearner (e.g. tfmeta.PrototypicalNetwork); "
                f"received {type(student).__name__}."
            )
        teacher_list = [teachers] if isinstance(teachers, keras.Model) else list(teachers)
        if not teacher_list or not all(
            isinstance(t, EpisodicMetricLearner) for t in teacher_list
        ):
            raise ValueError(
                "`teachers` must be one EpisodicMetricLearner or a non-empty sequence of them; "
                f"received {[type(t).__name__ for t in teacher_list] or teachers!r}."
            )
        if any(t is student for t in teacher_list):
            raise ValueError("`teachers` must not include the `student` itself.")
        if isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]; received {alpha!r}.")
        if isinstance(temperature, bool) or not float(temperature) > 0.0:
            raise ValueError(f"`temperature` must be > 0; received {temperature!r}.")
        self.student = student
        self.teachers = teacher_list
        for teacher in self.teachers:
            teacher.trainable = False
        self.alpha = float(alpha)
        self.temperature = float(temperature)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.distillation_tracker = keras.metrics.Mean(name="distillation")
        self.teacher_accuracy_tracker = keras.metrics.Mean(name="teacher_accuracy")
        self.built = True

    def call(self, inputs, training=None):
        """The student's `[T, Q, N]` episode logits."""
        return self.student(inputs, training=training)

    def teacher_logits(self, support_x, support_y, query_x):
        """`[T, Q, N]` logits of the teachers' ensemble (their mean), in inference mode."""
        logits = [
            tf.cast(t.episode_batch_logits(support_x, support_y, query_x, training=False)[0],
                    tf.float32)
            for t in self.teachers
        ]
        return tf.stop_gradient(tf.add_n(logits) / float(len(logits)))

    def distillation_loss(self, student_logits, teacher_logits):
        """Mean over queries of `KL(softmax(t / T) || softmax(s / T))` (without `T^2`)."""
        t = teacher_logits / self.temperature
        s = student_logits / self.temperature
        kl = tf.reduce_sum(
            tf.nn.softmax(t) * (tf.nn.log_softmax(t) - tf.nn.log_softmax(s)), axis=-1
        )
        return tf.reduce_mean(kl)

    def _student_loss(self, episodes, query_y, training):
        """The student's logits, own episode loss (`episode_loss`) and accuracy."""
        logits, ways = self.student.episode_batch_logits(*episodes, training=training)
        hard, accuracy = self.student.loss_and_accuracy_from_logits(logits, query_y, ways)
        return tf.cast(logits, tf.float32), tf.cast(hard, tf.float32), accuracy

    def optimized_variables(self) -> list:
        """The student's trainable variables (the teachers are frozen)."""
        return self.student.trainable_variables

    def train_step(self, data):
        episodes, query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        query_y = tf.cast(query_y, tf.int32)
        teacher = self.teacher_logits(*episodes)
        with tf.GradientTape() as tape:
            logits, hard, accuracy = self._student_loss(episodes, query_y, training=True)
            soft = self.distillation_loss(logits, teacher)
            loss = (1.0 - self.alpha) * hard + self.alpha * self.temperature**2 * soft
            regularisation = self.student.losses
            total = loss + tf.add_n(regularisation) if regularisation else loss
        minimize(self.optimizer, tape, total, self.optimized_variables())
        teacher_accuracy = tf.reduce_mean(
            tf.cast(tf.equal(tf.argmax(teacher, -1, output_type=tf.int32), query_y), tf.float32)
        )
        self.distillation_tracker.update_state(soft)
        self.teacher_accuracy_tracker.update_state(teacher_accuracy)
        return self._update_metrics(loss, accuracy)

    def test_step(self, data):
        episodes, query_y, _ = keras.utils.unpack_x_y_sample_weight(data)
        _, hard, accuracy = self._student_loss(episodes, query_y, training=False)
        self._update_metrics(hard, accuracy)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    def _update_metrics(self, loss, accuracy):
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(accuracy)
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.accuracy_tracker,
            self.distillation_tracker,
            self.teacher_accuracy_tracker,
        ]
