"""What MAML and Reptile share: a Keras model around an `InnerLoop`, adapted at test time.

`GradientLearner` holds the inner loop (`self.inner`, which tracks the wrapped model and the
variables the loop learns) and gives every gradient-based learner the same test-time
behaviour; subclasses add their meta-update (`train_step`) and their options:

* **Adaptation.** `adapt(support_x, support_y, steps)` fine-tunes a copy of the meta-learned
  model on one support set and returns it as a plain `keras.Model`, its BatchNorm moving
  statistics set to those of the support set under the adapted weights.
* **The few-shot protocol.** `few_shot_probabilities`, `predict_few_shot` and the exported
  `few_shot` signature adapt inside the graph for `eval_steps` steps (XLA-compilable);
  `tfmeta.json` records the inner-loop settings under `"adaptation"`.
* **Test-time views.** `test_time_views=V > 1` (image classification) makes evaluation,
  `predict_few_shot` and the export see every image as `V` views, the image and `V - 1`
  fixed affine distortions (`tfmeta.test_time_augmentation.episode_views`): the inner loop
  adapts on all views of the support set and each query's probabilities are averaged over
  its views. Training and `adapt()` are unchanged.
* **Evaluation.** `score_episode_batch` scores a whole meta-batch of episodes at once
  (accuracy, or MSE for regression) for the one evaluator,
  `tfmeta.fewshot.evaluation.score_episodes`; `evaluate_tasks` and `evaluate_episodes` are
  its short forms.

Example:

>>> maml = tfmeta.MAML(net, inner_lr=0.4, inner_steps=1)          # or tfmeta.Reptile(net)
>>> adapted = maml.adapt(support_x, support_y, steps=3)              # a keras.Model
>>> score_episodes(maml, EpisodeSampler(x, y, ways=5, shots=1), episodes=600)
"""

from __future__ import annotations

import types
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data.validation import check_positive_int, check_support_set
from tfmeta.fewshot import FewShotMixin
from tfmeta.fewshot.evaluation import episode_sampler, score_episodes
from tfmeta.gradient.functional import tile_params
from tfmeta.gradient.inner_loop import Adaptation, InnerLoop, all_sublayers, mask_logits
from tfmeta.optimizer_step import loss_scale
from tfmeta.test_time_augmentation import average_over_views, draw_test_time_transforms, episode_views
from tfmeta.training_state import PrebuiltOptimizerMixin

#: Input values (images x height x width x channels) one evaluation batch may hold: about
#: 5,300 images of 28 x 28, so the first conv4 layer's activations stay near 1 GB.
EVAL_PIXEL_BUDGET = 2**22


def unpack_episodes(data, learner: str = "MAML") -> tuple:
    """`((support_x, support_y, query_x), query_y)` from a Keras data tuple."""
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        x, y = x
    if not isinstance(x, (tuple, list)) or len(x) != 3:
        raise ValueError(
            f"{learner} expects elements ((support_x, support_y, query_x), query_y); received x "
            f"with structure {tf.nest.map_structure(lambda t: getattr(t, 'shape', t), x)}."
        )
    return tuple(x), y


def inner_attributes(*names: str, **renamed: str):
    """A class decorator adding read-only attributes that are the inner loop's: `names`
    under their own name, `renamed` as `{learner attribute: inner loop attribute}`."""

    def decorate(cls):
        for attribute, name in {**{n: n for n in names}, **renamed}.items():
            doc = f"The inner loop's `{name}` (read-only)."
            setattr(cls, attribute, property(lambda self, name=name: getattr(self.inner, name), doc=doc))
        return cls

    return decorate


@inner_attributes("network", "runner", "fast_path", "task", "inner_lr", "inner_steps", "inner_layers")
class GradientLearner(PrebuiltOptimizerMixin, FewShotMixin, keras.Model):
    """The Keras model around an `InnerLoop` that MAML and Reptile share (see the module).

    Args:
        inner: The inner loop (built on the wrapped model).
        eval_steps: Inner steps at test time, in `adapt`, evaluation and the exported
            `few_shot` signature; defaults to the loop's `inner_steps`. 0 scores the
            meta-learned starting point itself.
        bn_test_stats: `"batch"` (transductive) or `"running"` (the loop's per-step running
            statistics) at test time.
        ways: Optional classes per training episode, at most the model's output units.
        test_time_views: Views of every image at test time (1 = the image alone).
        test_time_seed: Seed of the test-time distortions.
        name: Model name.
    """

    learner_name = "gradient"
    #: The order of the meta-gradient (2: through the inner gradients); MAML sets its own.
    order = 1
    #: Whether the meta-loss sums the query losses after every inner step (MAML++).
    multi_step_loss = False

    def __init__(
        self,
        inner: InnerLoop,
        *,
        eval_steps: int | None = None,
        bn_test_stats: str = "batch",
        ways: int | None = None,
        test_time_views: int = 1,
        test_time_seed: int = 0,
        name: str = "gradient_learner",
        **kwargs: Any,
    ):
        super().__init__(name=name, **kwargs)
        self.inner = inner
        self.eval_steps = (
            inner.inner_steps if eval_steps is None
            else check_positive_int(eval_steps, "eval_steps", minimum=0)
        )
        self.bn_test_stats = bn_test_stats
        units = self._output_units()
        if ways is not None:
            ways = check_positive_int(ways, "ways", 2)
            if units is not None and ways > units:
                raise ValueError(
                    f"`ways`={ways} exceeds the model's {units} output units; give the head "
                    "at least `ways` units."
                )
        self.ways = ways
        self.test_time_views = check_positive_int(test_time_views, "test_time_views")
        self.test_time_seed = int(test_time_seed)
        self.test_time_transforms = None
        if self.test_time_views > 1:
            shape = self.network.input_shape
            shape = tuple(shape[1:]) if isinstance(shape, tuple) else ()
            if len(shape) != 3 or None in shape[:2]:
                raise ValueError(
                    "`test_time_views` > 1 needs a model of fixed-size images [height, width, "
                    f"channels]; received a model with input shape {self.network.input_shape}."
                )
            self.test_time_transforms = draw_test_time_transforms(
                self.test_time_views, shape, seed=self.test_time_seed
            )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")
        self.mse_tracker = keras.metrics.Mean(name="mse")
        self.built = True

    @property
    def encoder(self) -> keras.Model:
        """The wrapped model (FewShotMixin reads its input shape)."""
        return self.inner.network

    def _output_units(self) -> int | None:
        shape = self.network.output_shape
        return shape[-1] if isinstance(shape, tuple) else None

    def _is_classification(self, labels) -> bool:
        return self.inner.is_classification(labels)

    @property
    def _use_running(self) -> bool:
        return self.bn_test_stats == "running"

    def inner_loop(self, support_x, support_y, steps: int, order: int, **options) -> Adaptation:
        """`self.inner.run(...)`: adapts per-task weights on `[T, S, ...]` support sets.

        See `tfmeta.gradient.inner_loop.InnerLoop.run` for the options (`query_x`,
        `query_y`, `ways`, `use_running`, `collect_stats`, `query_every_step`).

        Returns:
            `(params, query_losses, query_outputs, stats)`, an `Adaptation`.
        """
        return self.inner.run(support_x, support_y, steps, order, **options)

    # ------------------------------------------------------------------ Keras
    def call(self, x, training=None):
        """Outputs of the meta-initialisation (no adaptation), BN with batch statistics."""
        x = tf.convert_to_tensor(x)
        params = tile_params([v.value for v in self.runner.variables], 1)
        return self.inner.forward(params, x[tf.newaxis], 0)[0]

    def test_step(self, data):
        """Adapts on each task's support set (`eval_steps`) and scores its queries."""
        (sx, sy, qx), qy = unpack_episodes(data, type(self).__name__)
        result = self.inner_loop(sx, sy, self.eval_steps, 0, query_x=qx, query_y=qy, use_running=self._use_running)
        loss = tf.reduce_mean(result.query_losses[-1])
        return self._update_metrics(loss, result.query_outputs, qy, self._is_classification(sy))

    def _update_metrics(self, loss, out, qy, classification):
        self.loss_tracker.update_state(loss)
        if classification:
            pred = tf.argmax(out, axis=-1, output_type=tf.int32)
            acc = tf.reduce_mean(tf.cast(tf.equal(pred, tf.cast(qy, tf.int32)), tf.float32))
            self.accuracy_tracker.update_state(acc)
            return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}
        mse = tf.reduce_mean(tf.square(out - tf.reshape(tf.cast(qy, out.dtype), tf.shape(out))))
        self.mse_tracker.update_state(mse)
        return {"loss": self.loss_tracker.result(), "mse": self.mse_tracker.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.mse_tracker]

    def compile(self, optimizer="adam", jit_compile="auto", **kwargs):
        """`keras.Model.compile` with Adam by default; `jit_compile` is Keras's `"auto"` (XLA on
        a GPU or TPU; on a CPU XLA is slower for this step, docs/performance.md)."""
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def inner_loss_scale(self):
        """The optimizer's loss scale when the wrapped model computes in float16 (the inner
        loop's support losses are scaled by it, see `InnerLoop.run`), else None."""
        if self.network.compute_dtype != "float16" or getattr(self, "optimizer", None) is None:
            return None
        return loss_scale(self.optimizer)

    def load_own_variables(self, store):
        """Keras weights loading. Files written before the inner loop was a layer of its own
        hold its variables at their root, as the learner's: they go to the inner loop."""
        if len(store.keys()):
            self.inner.load_from_owner_entry(store)
        else:
            super().load_own_variables(store)

    # ------------------------------------------------------------------ adaptation
    def _adapt_fn(self, steps: int):
        cache = self.__dict__.setdefault("_adapt_fns", {})
        if steps not in cache:
            def fn(sx, sy):
                params = self.inner_loop(sx[tf.newaxis], sy[tf.newaxis], steps, 0).params
                return [p[0] for p in params]

            cache[steps] = tf.function(fn, reduce_retracing=True, autograph=False)
        return cache[steps]

    def adapt(self, support_x, support_y, steps: int | None = None) -> keras.Model:
        """Fine-tunes a copy of the meta-learned model on one support set.

        Args:
            support_x: `[S, ...]` support inputs.
            support_y: `[S]` integer labels 0..N-1 (classification) or `[S, ...]` targets.
            steps: Inner steps (0 returns the starting point); defaults to `eval_steps`.

        Returns:
            A new `keras.Model` (a clone of the wrapped model) holding the adapted weights;
            its BatchNorm moving statistics are those of the support set, so it can be
            called in inference mode on any number of queries.

        Example:

        >>> adapted = maml.adapt(task.support_x, task.support_y, steps=10)
        >>> adapted.predict(x_grid)
        """
        steps = self.eval_steps if steps is None else check_positive_int(steps, "steps", minimum=0)
        classification = self.task == "classification" or (
            self.task == "auto" and np.issubdtype(np.asarray(support_y).dtype, np.integer)
        )
        if classification:
            support_x, support_y, _, _ = check_support_set(support_x, support_y)
        else:
            support_x = np.asarray(support_x, np.float32)
            support_y = np.asarray(support_y, np.float32)
            if len(support_x) == 0 or len(support_x) != len(support_y):
                raise ValueError(
                    "`support_x` and `support_y` must be non-empty and of equal length; received "
                    f"{len(support_x)} and {len(support_y)}."
                )
        expected = tuple(self.network.input_shape[1:])
        if tuple(support_x.shape[1:]) != expected:
            raise ValueError(
                f"`support_x` examples must have shape {expected}; received {support_x.shape[1:]}."
            )
        params = self._adapt_fn(steps)(tf.constant(support_x), tf.constant(support_y))
        clone = keras.models.clone_model(self.network)
        clone.set_weights(self.network.get_weights())
        for var, value in zip(clone.trainable_variables, params):
            var.assign(value)
        self._set_clone_bn(clone, support_x, steps)
        return clone

    def _set_clone_bn(self, clone, support_x, steps):
        """The clone's BatchNorm: the step's per-step scale/offset, and the support set's
        statistics as moving statistics."""
        bns = [l for l in all_sublayers(clone) if isinstance(l, keras.layers.BatchNormalization)]
        if not bns:
            return
        if self.inner.per_step_bn:
            for layer, (gamma, beta) in zip(bns, self.inner.step_bn_weights(steps)):
                if gamma is not None:
                    layer.gamma.assign(gamma)
                if beta is not None:
                    layer.beta.assign(beta)
        saved = [layer.momentum for layer in bns]
        try:
            for layer in bns:
                layer.momentum = 0.0
            clone(tf.constant(support_x), training=True)
        finally:
            for layer, m in zip(bns, saved):
                layer.momentum = m

    # ------------------------------------------------------------------ few-shot protocol
    def few_shot_core(self, support_x, support_y, query_x):
        """`[Q, units]` probabilities for one episode with static shapes (XLA-compilable).

        Adapts on the support set for `eval_steps` steps inside the graph; classes past
        `max(support_y)` get probability 0.
        """
        support_y = tf.cast(support_y, tf.int32)
        ways = tf.reduce_max(support_y) + 1
        sx, sy, qx = self._test_time_episode(
            support_x[tf.newaxis], support_y[tf.newaxis], query_x[tf.newaxis]
        )
        result = self.inner_loop(sx, sy, self.eval_steps, 0, query_x=qx, ways=ways, use_running=self._use_running)
        return self._query_probabilities(result.query_outputs, ways)[0]

    def _test_time_episode(self, support_x, support_y, query_x):
        """`[T, N, ...]` episodes with every image replaced by its test-time views (if any)."""
        if self.test_time_transforms is None:
            return support_x, support_y, query_x
        return episode_views(support_x, support_y, query_x, self.test_time_transforms)

    def _query_probabilities(self, out, ways):
        """`[T, Q, units]` class probabilities, averaged over the test-time views of each query."""
        return average_over_views(tf.nn.softmax(mask_logits(out, ways), axis=-1), self.test_time_views)

    def few_shot_logits(self, support_x, support_y, query_x, ways):
        """`[Q, ways]` logits after adapting on the support set (log-probabilities)."""
        probs = self.few_shot_core(support_x, support_y, query_x)
        return tf.math.log(tf.maximum(probs[:, :ways], 1e-30))

    def few_shot_probabilities(self, support_x, support_y, query_x):
        """`[Q, N]` probabilities after adaptation, `N = max(support_y) + 1`."""
        ways = tf.reduce_max(tf.cast(support_y, tf.int32)) + 1
        return self.few_shot_core(support_x, support_y, query_x)[:, :ways]

    def serving_endpoints(self) -> dict:
        """`serving_default`: outputs of the meta-initialisation (no adaptation)."""
        spec = self._example_spec()

        def outputs(x):
            return {"outputs": self.call(x)}

        return {"serving_default": (outputs, [tf.TensorSpec((None,) + spec, tf.float32, name="x")])}

    def adaptation_metadata(self) -> dict:
        """The inner-loop settings recorded in tfmeta.json."""
        return {
            "inner_steps": self.eval_steps,
            "train_inner_steps": self.inner_steps,
            "order": self.order,
            "multi_step_loss": self.multi_step_loss,
            **self.inner.metadata(),
            "batch_norm": (
                "per-step running statistics" if self._use_running
                else "batch statistics of the support set (inner loop) and query set (transductive)"
            ),
            "test_time_views": self.test_time_views,
            "test_time_seed": self.test_time_seed,
        }

    def export(self, base_dir: str, metadata: dict | None = None, version: int | None = None) -> str:
        """Exports `serving_default` and `few_shot` (adaptation inside the graph).

        The number of adaptation steps and the inner learning rate go to `tfmeta.json`
        under `"adaptation"`.
        """
        meta = {"adaptation": self.adaptation_metadata()}
        meta.update(metadata or {})
        return super().export(base_dir, metadata=meta, version=version)

    # ------------------------------------------------------------------ evaluation
    @property
    def score_name(self) -> str:
        """What `score_episode_batch` scores: `"accuracy"`, or `"mse"` for regression.

        With `task="auto"` the labels decide (integers classify); before seeing any, a model
        with one output unit is taken for a regressor (a classifier needs two), any other for
        a classifier, and `score_episode_batch` raises if the labels say otherwise.
        """
        if self.task == "auto":
            return "mse" if self._output_units() == 1 else "accuracy"
        return "accuracy" if self.task == "classification" else "mse"

    def _score_name_of(self, labels_dtype) -> str:
        return "accuracy" if self._is_classification(tf.TensorSpec((), labels_dtype)) else "mse"

    def score_episode_batch(self, support_x, support_y, query_x, query_y) -> np.ndarray:
        """`[T]` scores of a batch of episodes: query accuracy, or query MSE for regression.

        Every episode is adapted on its support set for `eval_steps` steps (on its test-time
        views, if any); the one evaluator `tfmeta.fewshot.evaluation.score_episodes` calls this.
        """
        support_y = tf.convert_to_tensor(support_y)
        kind = self._score_name_of(support_y.dtype)
        if kind != self.score_name:
            raise ValueError(
                f"`task`='auto' decides by the labels: these episodes have {support_y.dtype.name} "
                f"labels (scored by {kind}), but this learner, with {self._output_units()} output "
                f"units, names its score {self.score_name!r}; give `task='classification'` or "
                "`task='regression'`."
            )
        return self._score_batch(support_x, support_y, query_x, query_y)

    def _score_batch(self, support_x, support_y, query_x, query_y) -> np.ndarray:
        fns = self.__dict__.setdefault("_eval_batch_fns", {})
        steps = self.eval_steps
        if steps not in fns:
            def evaluate_batch(sx, sy, qx, qy):
                classification = self._is_classification(sy)
                if classification:  # the test-time views, if any
                    sx, sy, qx = self._test_time_episode(sx, sy, qx)
                result = self.inner_loop(
                    sx, sy, steps, 0, query_x=qx, query_y=None if classification else qy,
                    use_running=self._use_running,
                )
                if not classification:
                    return result.query_losses[-1]
                probs = self._query_probabilities(result.query_outputs, None)
                pred = tf.argmax(probs, -1, output_type=tf.int32)
                return tf.reduce_mean(tf.cast(tf.equal(pred, tf.cast(qy, tf.int32)), tf.float32), 1)

            # One trace per batch shape: a run's smaller last batch gets its own, so the task
            # axis stays static (the per-task loop of the generic path needs it).
            fns[steps] = tf.function(evaluate_batch, autograph=False)
        return fns[steps](support_x, support_y, query_x, query_y).numpy()

    def _score_name_for(self, sampler) -> str:
        """The score `sampler`'s episodes get (with `task="auto"`: by its label dtype)."""
        if self.task != "auto":
            return self.score_name
        try:
            spec = sampler.dataset(meta_batch=1, episodes=1, seed=0).element_spec
            return self._score_name_of(spec[0][1].dtype)
        except (AttributeError, IndexError, TypeError):  # not a tf.data sampler
            return self.score_name

    def evaluate_tasks(
        self, tasks, episodes: int = 600, seed: int = 1234, meta_batch: int | None = None
    ) -> dict:
        """Adapts to `episodes` test tasks and reports the mean score with a 95% CI.

        `score_episodes` with the score named by the tasks' labels.

        Args:
            tasks: A `tfmeta.data.EpisodeSampler` (classification: accuracy) or
                `tfmeta.data.sinusoid.SinusoidTasks` (regression: MSE) - anything with a
                `dataset(meta_batch, episodes, seed)` method.
            episodes: Number of test tasks (600 as in the papers).
            seed: Seed of the test tasks.
            meta_batch: Tasks adapted together (does not change the result). `None`:
                `eval_meta_batch(tasks)`.

        Returns:
            `{"accuracy" or "mse", "ci95", "episodes"}`.
        """
        episodes = check_positive_int(episodes, "episodes")
        meta_batch = (
            self.eval_meta_batch(tasks) if meta_batch is None
            else check_positive_int(meta_batch, "meta_batch")
        )
        scorer = types.SimpleNamespace(score_episode_batch=self._score_batch, score_name=self._score_name_for(tasks))
        result = score_episodes(scorer, tasks, episodes=episodes, seed=seed, meta_batch=meta_batch)
        return {key: result[key] for key in (scorer.score_name, "ci95", "episodes")}

    def eval_meta_batch(self, tasks, limit: int = 25) -> int:
        """Tasks per evaluation batch for `tasks`: at most `limit` and `EVAL_PIXEL_BUDGET`.

        An image task's input values are `ways * (shots + queries) * test_time_views` images
        of `H * W * C`; tasks without `ways`/`x` (the sinusoids) are small and get `limit`.
        A 5-way 1-shot task with 15 queries and 16 views (1,280 images of 28 x 28) gives 4;
        20-way with 15 queries and 16 views gives 1, where 25 tasks at once would ask for
        128,000 images (26 GB of activations in the first conv4 layer). Without views they
        give 25 and 16.
        """
        ways, x = getattr(tasks, "ways", None), getattr(tasks, "x", None)
        if ways is None or x is None or np.ndim(x) < 2:
            return limit
        images = int(ways) * (int(tasks.shots) + int(tasks.queries)) * self.test_time_views
        per_task = images * int(np.prod(np.shape(x)[1:]))
        return int(max(1, min(limit, EVAL_PIXEL_BUDGET // per_task)))

    def evaluate_episodes(
        self, x, y, ways: int, shots: int, queries: int = 15, episodes: int = 600, seed: int = 1234
    ) -> dict:
        """Mean accuracy and 95% CI over `episodes` N-way K-shot episodes from `(x, y)`.

        Returns:
            `{"accuracy", "ci95", "episodes", "ways", "shots"}`.
        """
        sampler = episode_sampler(x, y, ways, shots, queries, seed)
        return {**self.evaluate_tasks(sampler, episodes=episodes, seed=seed), "ways": ways, "shots": shots}


__all__ = ["GradientLearner", "EVAL_PIXEL_BUDGET", "inner_attributes", "unpack_episodes"]
