"""Siamese networks (Koch et al. 2015; Hadsell, Chopra & LeCun 2006) as a Keras model.

One shared encoder embeds both images of a pair; a pair head turns the two embeddings into a
score. Two training objectives:

- `objective="koch"` (default): Koch et al.'s weighted distance + sigmoid, trained with binary
  cross-entropy. `logit = b + w . f(e1, e2)`, `p(same) = sigmoid(logit)`, where the
  element-wise feature `f` depends on `distance`:
  `"l1"` -> `-|e1 - e2|` (Koch's weighted L1 distance), `"euclidean"` -> `-(e1 - e2)**2`
  (weighted squared Euclidean distance), `"cosine"` -> `n1 * n2` with `n = e / ||e||`
  (weighted cosine similarity). With equal weights these sum to the plain (negated)
  distances. As in Koch et al. the weights `w` are free by default; `nonneg_weights=True`
  keeps `w >= 0`, so the logit is the bias minus a true weighted distance.
- `objective="contrastive"`: the contrastive margin loss on the plain distance `d(e1, e2)`
  (`"l1"`, `"euclidean"` or `"cosine"` = 1 - cosine similarity); see
  `tfmeta.metric.losses.contrastive_loss`.

Labels: **1.0 = same class, 0.0 = different classes** (as produced by
`tfmeta.data.PairSampler`).

What the model returns:

- `model((x1, x2))` (used by `fit`): the raw pair output the loss consumes, shape `[B]`:
  Koch: log-odds of "same"; contrastive: the distance `d`.
- `similarity(x1, x2)` and the SavedModel `serving_default`: a score in [0, 1], higher = more
  alike. Koch: `sigmoid(logit)`; contrastive: `2 ** (-2 d / margin)` (1 at d = 0, 0.5 at the
  decision threshold `d = margin / 2`). Both are "same" when > 0.5 (`pair_accuracy` metric).
- Few-shot classification (`few_shot_logits`, `predict_few_shot`, the `few_shot` signature):
  the per-class logit of a query is the mean pair logit of the query against that class's
  support examples, where the pair logit is Koch's log-odds or `-d` for contrastive; class
  probabilities are the softmax over the per-class logits. (For one shot this is simply the
  query's pair logit against each support image.)

The model trains on pair batches `((x1, x2), same)` from `PairSampler.dataset`, and also on the
episodes `((support_x, support_y, query_x), query_y)` of `EpisodeSampler.dataset`: then every
query is paired with every support example of its episode (one encoder pass per image, many
pairs). What the loss does with those pairs is `episode_loss`:

- `"pairs"` (default): each pair is one example of the objective's pair loss (contrastive or
  binary cross-entropy), same/different pairs weighted to equal total weight.
- `"softmax"`: the multi-class N-pair loss (Sohn 2016): the pair logits of one query against
  all support classes (the same per-class logits as `few_shot_logits`) go through a softmax,
  and the loss is the cross-entropy with the query's class, so every query is pulled to its
  class *relative to* all the others at once, which is exactly the decision made at test
  time. Reported as `episode_accuracy`. Needs episode data.

Example:

>>> import tfmeta
>>> from tfmeta.data import PairSampler
>>> model = tfmeta.SiameseNetwork(input_shape=(28, 28, 1), objective="koch", distance="l1")
>>> model.compile(optimizer="adam")          # loss and pair_accuracy chosen by the objective
>>> model.fit(PairSampler(x, y, seed=0).dataset(128), steps_per_epoch=100, epochs=5)
>>> model.similarity(x[:4], x[4:8])          # numpy [4] in [0, 1]
>>> model.predict_few_shot(support_x, support_y, query_x)   # numpy [Q, N] probabilities
>>> model.export("saved_models/siamese")     # serving_default (x1, x2) + few_shot
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tfmeta.backbones import EncoderConfigMixin
from tfmeta.fewshot import FewShotMixin
from tfmeta.metric.losses import ContrastiveLoss, KochBinaryCrossentropy
from tfmeta.multi_worker_fit import MultiWorkerFitMixin

DISTANCES = ("l1", "euclidean", "cosine")
OBJECTIVES = ("koch", "contrastive")
EPISODE_LOSSES = ("pairs", "softmax")
_EPS = 1e-12


def _check_choice(value, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; received {value!r}.")
    return value.lower()


def pair_distance(e1, e2, distance: str = "l1") -> tf.Tensor:
    """Distance between embeddings along the last axis (broadcasting over leading axes).

    Args:
        e1: `[..., D]` embeddings.
        e2: `[..., D]` embeddings (broadcastable against `e1`).
        distance: `"l1"` (sum of absolute differences), `"euclidean"` (square root of the sum
            of squared differences) or `"cosine"` (1 - cosine similarity, in [0, 2]).

    Returns:
        `[...]` distances.

    Example:

    >>> pair_distance([[0.0, 3.0]], [[4.0, 0.0]], "euclidean").numpy()
    array([5.], dtype=float32)
    """
    distance = _check_choice(distance, "distance", DISTANCES)
    e1 = tf.convert_to_tensor(e1, tf.float32)
    e2 = tf.convert_to_tensor(e2, tf.float32)
    if distance == "l1":
        return tf.reduce_sum(tf.abs(e1 - e2), axis=-1)
    if distance == "euclidean":
        # sqrt clamped away from 0 so that identical pairs keep a finite gradient.
        return tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(e1 - e2), axis=-1), _EPS))
    n1 = tf.math.l2_normalize(e1, axis=-1, epsilon=_EPS)
    n2 = tf.math.l2_normalize(e2, axis=-1, epsilon=_EPS)
    return 1.0 - tf.reduce_sum(n1 * n2, axis=-1)


def koch_features(e1, e2, distance: str = "l1") -> tf.Tensor:
    """Element-wise pair *similarity* features for Koch's head (larger = more alike).

    `"l1"`: `-|e1 - e2|`; `"euclidean"`: `-(e1 - e2)**2`; `"cosine"`: `n1 * n2` (unit
    vectors). With weights `w >= 0`, `w . features + b` is `b` minus a weighted distance.
    """
    distance = _check_choice(distance, "distance", DISTANCES)
    if distance == "l1":
        return -tf.abs(e1 - e2)
    if distance == "euclidean":
        return -tf.square(e1 - e2)
    return tf.math.l2_normalize(e1, -1, epsilon=_EPS) * tf.math.l2_normalize(e2, -1, epsilon=_EPS)


@keras.saving.register_keras_serializable(package="tfmeta")
class PairAccuracy(keras.metrics.Mean):
    """Fraction of pairs classified correctly from the model's raw pair output.

    Koch: "same" when the log-odds > 0; contrastive: "same" when `d < margin / 2`.
    """

    def __init__(self, objective: str = "koch", margin: float = 1.0, name="pair_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.objective = _check_choice(objective, "objective", OBJECTIVES)
        self.margin = float(margin)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = tf.reshape(tf.cast(y_pred, tf.float32), [-1])
        y_true = tf.reshape(tf.cast(y_true, tf.float32), [-1])
        if self.objective == "koch":
            same = y_pred > 0.0
        else:
            same = y_pred < self.margin / 2.0
        correct = tf.cast(tf.equal(same, y_true > 0.5), tf.float32)
        if sample_weight is not None:
            sample_weight = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        return super().update_state(correct, sample_weight=sample_weight)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"objective": self.objective, "margin": self.margin})
        return config


@keras.saving.register_keras_serializable(package="tfmeta")
class SiameseNetwork(MultiWorkerFitMixin, FewShotMixin, EncoderConfigMixin, keras.Model):
    """A Siamese network: one shared encoder, a pair head, and few-shot classification.

    Args:
        encoder: Any Keras model/layer mapping a batch of examples to embeddings (non-flat
            outputs are flattened). Defaults to `tfmeta.backbones.conv4(input_shape)`.
        input_shape: Shape of one example, used to build the default encoder and for export
            when the encoder does not declare its input shape.
        objective: `"koch"` (weighted distance + sigmoid, binary cross-entropy) or
            `"contrastive"` (margin loss on the distance).
        distance: `"l1"`, `"euclidean"` or `"cosine"`.
        margin: Contrastive margin (> 0); also sets the contrastive decision threshold
            `margin / 2`. Ignored by the Koch objective.
        nonneg_weights: Koch objective: keep the head's weights >= 0 (`NonNeg` constraint), so
            the logit is a bias minus a true weighted distance. Koch et al. leave the weights
            free (`False`, the default, better on Omniglot's many classes); with very few
            training classes the free head can learn class-specific "same" detectors that do
            not transfer to new classes, and `True` generalises better.
        episode_loss: How episodes are trained (see the module docstring): `"pairs"`, the
            objective's pair loss on every query/support pair, or `"softmax"`, the N-pair
            cross-entropy over each query's per-class pair logits. Pair batches always use
            the pair loss, so `"softmax"` accepts episode data only.
        name: Model name.

    Raises:
        ValueError: On an unknown `objective` or `distance`, a non-positive `margin`, or an
            `encoder` that is not a Keras layer/model, or an unknown `episode_loss`.

    Example:

    >>> model = SiameseNetwork(objective="contrastive", distance="euclidean", margin=1.0)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> model.fit(PairSampler(x, y, seed=0).dataset(64), steps_per_epoch=50, epochs=2)
    """

    learner_name = "siamese"

    def __init__(
        self,
        encoder: keras.layers.Layer | None = None,
        input_shape: Sequence[int] = (28, 28, 1),
        objective: str = "koch",
        distance: str = "l1",
        margin: float = 1.0,
        nonneg_weights: bool = False,
        episode_loss: str = "pairs",
        name: str = "siamese_network",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.objective = _check_choice(objective, "objective", OBJECTIVES)
        self.distance = _check_choice(distance, "distance", DISTANCES)
        self.episode_loss = _check_choice(episode_loss, "episode_loss", EPISODE_LOSSES)
        try:
            margin = float(margin)
        except (TypeError, ValueError):
            raise ValueError(f"`margin` must be a number > 0; received {margin!r}.") from None
        if not (margin > 0 and math.isfinite(margin)):
            raise ValueError(f"`margin` must be a finite number > 0; received {margin!r}.")
        self.margin = margin
        if encoder is None:
            from tfmeta.backbones import conv4

            encoder = conv4(tuple(input_shape))
        elif not isinstance(encoder, keras.layers.Layer):
            raise ValueError(
                "`encoder` must be a Keras model or layer mapping examples to embeddings; "
                f"received {type(encoder).__name__}."
            )
        self.encoder = encoder
        shape = None
        try:
            shape = tuple(encoder.input_shape[1:])
        except (AttributeError, ValueError, TypeError):
            shape = None
        if not shape or any(s is None for s in shape):
            shape = tuple(int(s) for s in input_shape)
        self.example_shape = shape
        self.nonneg_weights = bool(nonneg_weights)
        self.head = None
        if self.objective == "koch":
            self.head = keras.layers.Dense(
                1,
                kernel_initializer=keras.initializers.RandomUniform(0.0, 0.2)
                if self.nonneg_weights
                else "glorot_uniform",
                kernel_constraint=keras.constraints.NonNeg() if self.nonneg_weights else None,
                dtype="float32",  # float32 log-odds under a mixed_bfloat16 policy
                name="koch_head",
            )

    # ------------------------------------------------------------------ core
    def _embed(self, x, training=None):
        # float32 distances under any dtype policy (mixed_bfloat16 encoders emit bfloat16).
        e = tf.cast(self.encoder(x, training=training), tf.float32)
        return tf.reshape(e, [tf.shape(e)[0], -1])

    def _pair_output(self, e1, e2):
        """Raw pair output over broadcast leading axes: Koch log-odds, or distance."""
        if self.objective == "koch":
            return tf.squeeze(self.head(koch_features(e1, e2, self.distance)), -1)
        return pair_distance(e1, e2, self.distance)

    def _pair_logits(self, e1, e2):
        """Pair logit, higher = more alike: Koch log-odds, or `-d` (contrastive)."""
        out = self._pair_output(e1, e2)
        return out if self.objective == "koch" else -out

    def _output_to_similarity(self, out):
        if self.objective == "koch":
            return tf.sigmoid(out)
        return tf.exp(-(2.0 * math.log(2.0) / self.margin) * out)

    def _embed_two(self, a, b, training=None):
        """Embeds two batches in one encoder pass (shared BatchNorm statistics)."""
        n = tf.shape(a)[0]
        e = self._embed(tf.concat([a, b], axis=0), training=training)
        return e[:n], e[n:]

    def call(self, inputs, training=None):
        """Raw pair outputs `[B]` for `(x1, x2)` (or flattened episode pairs, see module doc).

        Args:
            inputs: `(x1, x2)` or `{"x1": ..., "x2": ...}`; or an episode `(support_x,
                support_y, query_x)` with a task axis, giving `[T * Q * S]` outputs for every
                query/support pair.
        """
        if isinstance(inputs, dict):
            inputs = (inputs["x1"], inputs["x2"])
        if len(inputs) == 3:
            return self._episode_outputs(inputs, training=training)
        x1, x2 = inputs
        e1, e2 = self._embed_two(x1, x2, training=training)
        return self._pair_output(e1, e2)

    # -------------------------------------------------------------- episodes
    def _episode_outputs(self, inputs, training=None):
        sx, _, qx = inputs
        t = tf.shape(sx)[0]
        s, q = tf.shape(sx)[1], tf.shape(qx)[1]
        flat_s = tf.reshape(sx, tf.concat([[-1], tf.shape(sx)[2:]], 0))
        flat_q = tf.reshape(qx, tf.concat([[-1], tf.shape(qx)[2:]], 0))
        es, eq = self._embed_two(flat_s, flat_q, training=training)
        es = tf.reshape(es, [t, s, -1])
        eq = tf.reshape(eq, [t, q, -1])
        out = self._pair_output(eq[:, :, tf.newaxis, :], es[:, tf.newaxis, :, :])  # [T,Q,S]
        if self.episode_loss == "softmax":
            return self._episode_class_logits(out, tf.cast(inputs[1], tf.int32))
        return tf.reshape(out, [-1])

    def _episode_class_logits(self, pair_out, support_y):
        """`[T * Q, N]` per-class logits (mean pair logit per class) from `[T, Q, S]` outputs."""
        pair = pair_out if self.objective == "koch" else -pair_out
        ways = tf.reduce_max(support_y) + 1
        onehot = tf.one_hot(support_y, ways, dtype=pair.dtype)  # [T, S, N]
        counts = tf.maximum(tf.reduce_sum(onehot, axis=1, keepdims=True), 1.0)  # [T, 1, N]
        logits = tf.matmul(pair, onehot) / counts  # [T, Q, N]
        return tf.reshape(logits, [-1, ways])

    @staticmethod
    def _episode_targets(support_y, query_y):
        """Flattened same/different labels and balancing weights for all query/support pairs."""
        same = tf.cast(
            tf.equal(query_y[:, :, tf.newaxis], support_y[:, tf.newaxis, :]), tf.float32
        )  # [T, Q, S]
        n = tf.cast(tf.shape(same)[1] * tf.shape(same)[2], tf.float32)
        n_same = tf.reduce_sum(same, axis=[1, 2], keepdims=True)
        n_diff = n - n_same
        w = same * (0.5 * n / tf.maximum(n_same, 1.0)) + (1.0 - same) * (
            0.5 * n / tf.maximum(n_diff, 1.0)
        )
        return tf.reshape(same, [-1]), tf.reshape(w, [-1])

    def _to_pair_data(self, data):
        """Turns episode data into `(x, pair_labels, weights)` (or `(x, flat query labels)` for
        `episode_loss="softmax"`); pair data passes through."""
        x, y, sw = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, (tuple, list)) and len(x) == 3:
            if self.episode_loss == "softmax":
                return (tuple(x), tf.reshape(tf.cast(y, tf.int32), [-1]))
            same, w = self._episode_targets(tf.cast(x[1], tf.int32), tf.cast(y, tf.int32))
            return (tuple(x), same, w)
        if self.episode_loss == "softmax":
            raise ValueError(
                "`episode_loss='softmax'` trains on episodes `((support_x, support_y, query_x), "
                "query_y)` (EpisodeSampler.dataset); received pair data `((x1, x2), same)`. "
                "Use `episode_loss='pairs'` to train on pairs."
            )
        return data

    def train_step(self, data):
        return super().train_step(self._to_pair_data(data))

    def test_step(self, data):
        return super().test_step(self._to_pair_data(data))

    # --------------------------------------------------------------- compile
    def default_loss(self) -> keras.losses.Loss:
        """The training loss: `KochBinaryCrossentropy` or `ContrastiveLoss(margin)` by objective,
        or sparse categorical cross-entropy on class logits for `episode_loss="softmax"`."""
        if self.episode_loss == "softmax":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if self.objective == "koch":
            return KochBinaryCrossentropy(from_logits=True)
        return ContrastiveLoss(margin=self.margin)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`; `loss=None` uses the objective's loss and
        `metrics=None` reports `pair_accuracy` (`episode_accuracy` for
        `episode_loss="softmax"`)."""
        if loss is None:
            loss = self.default_loss()
        if metrics is None:
            if self.episode_loss == "softmax":
                metrics = [keras.metrics.SparseCategoricalAccuracy(name="episode_accuracy")]
            else:
                metrics = [PairAccuracy(self.objective, self.margin)]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    # ---------------------------------------------------------- public API
    def _compiled(self, key, fn):
        cache = self.__dict__.setdefault("_tfmeta_fns", {})
        if key not in cache:
            cache[key] = tf.function(fn, reduce_retracing=True)
        return cache[key]

    def similarity_tensor(self, x1, x2):
        """Traceable pair similarity `[B]` in [0, 1] (inference mode)."""
        e1, e2 = self._embed_two(x1, x2, training=False)
        return self._output_to_similarity(self._pair_output(e1, e2))

    def _check_examples(self, x, name):
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != tuple(self.example_shape):
            raise ValueError(
                f"`{name}` must have shape (batch, {', '.join(map(str, self.example_shape))}); "
                f"received {x.shape}."
            )
        return x

    def embed(self, x, batch_size: int = 256) -> np.ndarray:
        """Embeddings of `x` (inference mode), numpy `[N, D]`.

        Example:

        >>> model.embed(x[:10]).shape
        (10, 64)
        """
        x = self._check_examples(x, "x")
        self._ensure_built()
        fn = self._compiled("embed", lambda v: self._embed(v, training=False))
        parts = [fn(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0), np.float32)

    def similarity(self, x1, x2, batch_size: int = 256) -> np.ndarray:
        """Similarity of each pair `(x1[i], x2[i])`, numpy `[B]` in [0, 1]; > 0.5 = "same".

        Example:

        >>> model.similarity(x[:2], x[2:4])
        array([0.93, 0.04], dtype=float32)
        """
        x1 = self._check_examples(x1, "x1")
        x2 = self._check_examples(x2, "x2")
        if len(x1) != len(x2):
            raise ValueError(
                f"`x1` and `x2` must hold the same number of examples; received {len(x1)} "
                f"and {len(x2)}."
            )
        self._ensure_built()
        fn = self._compiled("similarity", self.similarity_tensor)
        parts = [
            fn(x1[i : i + batch_size], x2[i : i + batch_size]).numpy()
            for i in range(0, len(x1), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0,), np.float32)

    def few_shot_logits(self, support_x, support_y, query_x, ways):
        """`[Q, ways]` logits: mean pair logit of each query against each class's supports."""
        support_y = tf.cast(support_y, tf.int32)
        es, eq = self._embed_two(
            tf.cast(support_x, tf.float32), tf.cast(query_x, tf.float32), training=False
        )
        pair = self._pair_logits(eq[:, tf.newaxis, :], es[tf.newaxis, :, :])  # [Q, S]
        onehot = tf.one_hot(support_y, ways, dtype=pair.dtype)  # [S, N]
        counts = tf.maximum(tf.reduce_sum(onehot, axis=0), 1.0)
        return tf.matmul(pair, onehot) / counts

    # ---------------------------------------------------------------- export
    def _example_spec(self) -> tuple:
        return tuple(self.example_shape)

    def serving_endpoints(self) -> dict:
        """`serving_default`: `(x1 [B, ...], x2 [B, ...]) -> {"similarity": [B]}`."""
        spec = self._example_spec()

        def pair_similarity(x1, x2):
            return {"similarity": self.similarity_tensor(x1, x2)}

        return {
            "serving_default": (
                pair_similarity,
                [
                    tf.TensorSpec((None,) + spec, tf.float32, name="x1"),
                    tf.TensorSpec((None,) + spec, tf.float32, name="x2"),
                ],
            )
        }

    def export(self, base_dir: str, metadata: dict | None = None, version: int | None = None) -> str:
        """Exports `serving_default` (pair similarity) and `few_shot`; returns the version dir.

        Example:

        >>> path = model.export("saved_models/omniglot_siamese")
        >>> loaded = tf.saved_model.load(path)
        >>> loaded.signatures["serving_default"](x1=a, x2=b)["similarity"]
        """
        self._ensure_built()
        meta = {
            "objective": self.objective,
            "distance": self.distance,
            "margin": self.margin,
            "similarity": "sigmoid(koch logit)"
            if self.objective == "koch"
            else "2 ** (-2 * distance / margin)",
        }
        meta.update(metadata or {})
        return super().export(base_dir, metadata=meta, version=version)

    def _ensure_built(self):
        if not self.built or (self.head is not None and not self.head.built):
            dummy = tf.zeros((1,) + self._example_spec(), tf.float32)
            self((dummy, dummy), training=False)

    # ---------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "input_shape": list(self.example_shape),
                "objective": self.objective,
                "distance": self.distance,
                "margin": self.margin,
                "nonneg_weights": self.nonneg_weights,
                "episode_loss": self.episode_loss,
            }
        )
        return config
