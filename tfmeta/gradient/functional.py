"""Running a Keras model functionally with per-task weights (a leading task axis T).

The MAML family adapts a copy of the weights for every task of a meta-batch. Both runners
here take `params`: one tensor per trainable variable of the wrapped model (in
`model.trainable_variables` order) with a leading task axis `T`, and inputs `x[T, B, ...]`,
and return outputs `[T, B, ...]`:

* `KerasRunner` works for **any** Keras model. It calls `model.stateless_call` once per task
  (a Python loop unrolled in the graph): the straightforward reference path.
* `VectorizedRunner` handles chains of Conv2D / BatchNormalization / ReLU / Activation /
  MaxPooling2D / AveragePooling2D / Flatten / Dense layers (conv4 + a Dense head, the MLP of the
  sinusoid experiments...) and runs all T tasks in one op per layer: images are laid out as
  `[B, H, W, T*C]` so that a convolution with per-task kernels is one *grouped* convolution
  (`feature_group_count = T`), BatchNormalization with per-task statistics is an ordinary
  per-channel normalisation, and pooling/activations need no change; Dense layers are batched
  matmuls over `[T, B, D]`.

BatchNormalization: both runners normalise with the statistics of the batch they are given
(per task), like Keras' `training=True`, in the inner loop and at test time (transductive, as
in the MAML paper). The layers' moving averages are not used. `VectorizedRunner` can also
normalise with given statistics (`bn_stats`) and return the batch statistics it used
(`collect`), which `tfmeta.MAML(per_step_bn=True)` uses for MAML++ per-step running statistics.

Speed: most of a conv4 step on CPU is not the convolutions but the element-wise BatchNorm
arithmetic on full-resolution activations (memory bound). When the caller promises that the
outputs will be differentiated at most once (`differentiated_once=True`: MAML's query passes,
every pass of first-order variants and of evaluation), `VectorizedRunner` uses TensorFlow's
fused batch-norm kernel (one op forward, one backward) and drops the conv bias in front of it
(a per-channel constant that batch statistics cancel exactly). The fused kernel is not used
where second derivatives are taken: TensorFlow's gradient of its gradient gives wrong
second-order terms on CPU (about 10% off on conv4), so the support passes of second-order
MAML keep the composite `tf.nn.moments` form. Layers compute in their Keras dtype
policy's compute dtype (`mixed_bfloat16`: bfloat16 convolutions, float32 BatchNorm
arithmetic and weights), like the Keras model.

Grouped convolutions: not every TensorFlow CPU build can differentiate them. With oneDNN off
(TensorFlow's default on CPUs without AVX-512, or `TF_ENABLE_ONEDNN_OPTS=0`) the gradient kernels
reject `feature_group_count > 1`, and oneDNN itself takes bfloat16/float16 only with AVX-512.
`conv_mode="auto"` (the default) asks the running TensorFlow once per dtype
(`grouped_conv_gradients_supported`) and falls back to one convolution per task where it cannot.

Example:

>>> runner = make_runner(model)                     # VectorizedRunner when supported
>>> params = [tf.stack([v] * 4) for v in model.trainable_variables]   # T = 4
>>> out = runner(params, x)                          # x [4, B, 28, 28, 1] -> [4, B, units]
"""

from __future__ import annotations

import functools
import warnings
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

_POOLS = (layers.MaxPooling2D, layers.AveragePooling2D)


def flatten_layers(model: keras.layers.Layer) -> list:
    """Returns the leaf layers of a (possibly nested) Sequential/functional model, in order."""
    out = []
    for layer in getattr(model, "layers", None) or []:
        if isinstance(layer, layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            out.extend(flatten_layers(layer))
        else:
            out.append(layer)
    return out


class KerasRunner:
    """Runs any Keras model with per-task weights by calling `stateless_call` per task.

    Args:
        model: A built Keras model.
    """

    supports_bn_override = False

    def __init__(self, model: keras.Model):
        self.model = model
        self.variables = list(model.trainable_variables)
        self.bn_layers = []

    def __call__(
        self, params, x, *, bn_params=None, bn_stats=None, collect=None, differentiated_once=False
    ):
        del differentiated_once  # Keras layers decide their own kernels.
        if bn_params or bn_stats:
            raise ValueError(
                "Per-step BatchNorm needs a model the vectorised runner supports; received a "
                f"model with layers {[type(l).__name__ for l in flatten_layers(self.model)]}."
            )
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        outs = []
        for t in range(_static_tasks(x)):
            out, _ = self.model.stateless_call(
                [p[t] for p in params], non_trainable, x[t], training=True
            )
            outs.append(out)
        return tf.stack(outs)


def _static_tasks(x) -> int:
    t = x.shape[0]
    if t is None:
        raise ValueError(
            "The generic (per-task loop) path needs a static meta-batch size; received inputs "
            f"of shape {x.shape}. Use `drop_remainder=True` batches."
        )
    return int(t)


class VectorizedRunner:
    """Runs a Conv2D/BN/ReLU/pool/Flatten/Dense chain for all tasks at once.

    Args:
        model: A built Keras model made only of supported layers (nested models allowed).
        conv_mode: `"grouped"` (one grouped convolution for all tasks), `"split"` (one
            convolution per task, concatenated) or `"auto"` (grouped where this TensorFlow
            build can differentiate grouped convolutions in the layers' compute dtype, see
            `grouped_conv_gradients_supported`; split elsewhere, with a warning).

    Raises:
        NotImplementedError: If the model holds a layer or option the runner does not support.
    """

    supports_bn_override = True

    def __init__(self, model: keras.Model, conv_mode: str = "auto"):
        if conv_mode not in ("auto", "grouped", "split"):
            raise ValueError(
                f"`conv_mode` must be 'auto', 'grouped' or 'split'; received {conv_mode!r}."
            )
        self.model = model
        if conv_mode == "auto":
            conv_mode = _auto_conv_mode(model)
        self.conv_mode = conv_mode
        self.variables = list(model.trainable_variables)
        index = {id(v): i for i, v in enumerate(self.variables)}
        self.ops = []
        self.bn_layers = []
        for layer in flatten_layers(model):
            self.ops.append(self._compile(layer, index))
        if not self.ops:
            raise NotImplementedError("The model has no layers.")

    # ------------------------------------------------------------------ compile
    def _compile(self, layer, index):
        def var(v):
            if v is None:
                return None
            if id(v) not in index:
                raise NotImplementedError(f"Layer {layer.name} has frozen weights.")
            return index[id(v)]

        if isinstance(layer, layers.Conv2D) and type(layer) is layers.Conv2D:
            if layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1):
                raise NotImplementedError(f"Conv2D {layer.name}: only channels_last, no dilation.")
            if getattr(layer, "groups", 1) != 1:
                raise NotImplementedError(f"Conv2D {layer.name}: groups are not supported.")
            return ("conv", layer, var(layer.kernel), var(layer.bias) if layer.use_bias else None)
        if type(layer) is layers.Dense:
            return ("dense", layer, var(layer.kernel), var(layer.bias) if layer.use_bias else None)
        if type(layer) is layers.BatchNormalization:
            if layer.axis not in (-1, len(layer.input.shape) - 1) and layer.axis != [-1]:
                raise NotImplementedError(f"BatchNormalization {layer.name}: only the last axis.")
            if getattr(layer, "renorm", False):
                raise NotImplementedError(f"BatchNormalization {layer.name}: renorm.")
            self.bn_layers.append(layer)
            return (
                "bn",
                layer,
                var(layer.gamma) if layer.scale else None,
                var(layer.beta) if layer.center else None,
                len(self.bn_layers) - 1,
            )
        if type(layer) is layers.ReLU:
            if layer.max_value is not None or layer.negative_slope != 0 or layer.threshold != 0:
                raise NotImplementedError(f"ReLU {layer.name}: only the plain ReLU.")
            return ("act", layer, tf.nn.relu)
        if type(layer) is layers.Activation:
            return ("act", layer, layer.activation)
        if type(layer) in _POOLS:
            if layer.data_format != "channels_last":
                raise NotImplementedError(f"{layer.name}: only channels_last.")
            return ("pool", layer)
        if type(layer) is layers.Flatten:
            return ("flatten", layer)
        raise NotImplementedError(f"Layer {layer.name} ({type(layer).__name__}) is not supported.")

    # ------------------------------------------------------------------ run
    def __call__(
        self,
        params,
        x,
        *,
        bn_params=None,
        bn_stats=None,
        collect=None,
        differentiated_once=False,
        skip_head=False,
    ):
        """Runs the chain.

        Args:
            params: Per-task weights, each `[T, *variable.shape]`.
            x: Inputs `[T, B, ...]`.
            bn_params: Optional `{bn index: (gamma [C] or None, beta [C] or None)}` shared by
                all tasks, replacing the layers' own gamma/beta (per-step BN weights).
            bn_stats: Optional `{bn index: (mean [C], variance [C])}`: normalise with these
                statistics instead of the batch's.
            collect: Optional list; the batch `(mean [C], variance [C])` of every BN layer,
                averaged over tasks, is appended in order.
            differentiated_once: The outputs will be differentiated at most once (no gradient
                of a gradient flows through this pass): float32/bfloat16 image BatchNorm with
                batch statistics then runs as one fused kernel, without the conv bias before it.
            skip_head: Stop before the last layer, a Dense head: the features it reads.

        Returns:
            Outputs `[T, B, ...]`.
        """
        ops = self.ops
        if skip_head:
            if ops[-1][0] != "dense":
                raise ValueError(
                    "`skip_head=True` needs a model whose last layer is Dense; received one "
                    f"ending in {type(ops[-1][1]).__name__}."
                )
            ops = ops[:-1]
        x = tf.convert_to_tensor(x)
        shape = tf.shape(x)
        t, b = shape[0], shape[1]
        if x.shape.rank == 5:  # images: [T, B, H, W, C] -> [B, H, W, T*C]
            h = tf.transpose(x, [1, 2, 3, 0, 4])
            h = tf.reshape(h, tf.concat([[b], tf.shape(h)[1:3], [t * shape[4]]], 0))
            image, channels = True, x.shape[-1]
        else:  # features: [T, B, ...]
            h, image, channels = x, False, None
        fused = differentiated_once and collect is None and x.dtype in (tf.float32, tf.bfloat16)
        for i, op in enumerate(ops):
            kind, layer = op[0], op[1]
            if kind == "conv":
                h, kernel = _compute(layer, h), _compute(layer, params[op[2]])
                if image is False:
                    raise NotImplementedError("Conv2D after Flatten.")
                h = self._conv(h, kernel, t, layer)
                channels = layer.filters
                bias_cancels = (
                    fused
                    and layer.activation in (keras.activations.linear, None)
                    and self._fused_bn_at(i + 1, bn_stats)
                )
                if op[3] is not None and not bias_cancels:
                    h = h + tf.reshape(_compute(layer, params[op[3]]), [-1])
                h = layer.activation(h)
            elif kind == "dense":
                h, kernel = _compute(layer, h), _compute(layer, params[op[2]])
                h = tf.matmul(h, kernel)  # [T, B, D] @ [T, D, U]
                if op[3] is not None:
                    h = h + _compute(layer, params[op[3]])[:, tf.newaxis, :]
                h = layer.activation(h)
            elif kind == "bn":
                if fused and image and self._fused_bn_at(i, bn_stats):
                    h = self._fused_bn(h, params, op, t, bn_params)
                else:
                    h = self._bn(h, params, op, t, image, channels, bn_params, bn_stats, collect)
            elif kind == "act":
                h = op[2](h)
            elif kind == "pool":
                pool = tf.nn.max_pool2d if isinstance(layer, layers.MaxPooling2D) else tf.nn.avg_pool2d
                h = pool(h, layer.pool_size, layer.strides, layer.padding.upper())
            elif kind == "flatten":
                if image:
                    hs = tf.shape(h)
                    h = tf.reshape(h, [hs[0], hs[1], hs[2], t, channels])
                    h = tf.transpose(h, [3, 0, 1, 2, 4])
                    h = tf.reshape(h, [t, hs[0], -1])
                    image = False
                else:
                    h = tf.reshape(h, [t, b, -1])
        if image:  # back to [T, B, H, W, C]
            hs = tf.shape(h)
            h = tf.reshape(h, [hs[0], hs[1], hs[2], t, channels])
            h = tf.transpose(h, [3, 0, 1, 2, 4])
        return h

    def _conv(self, h, kernel, t, layer):
        strides = tuple(layer.strides)
        padding = layer.padding.upper()
        if self.conv_mode == "split" and kernel.shape[0] != 1:
            n = kernel.shape[0]
            if n is not None:
                parts = tf.split(h, n, axis=-1)
                return tf.concat(
                    [tf.nn.conv2d(p, kernel[i], strides, padding) for i, p in enumerate(parts)], -1
                )
            # Tasks known only at run time: one convolution per task in a loop.
            hs = tf.shape(h)
            per_task = tf.transpose(tf.reshape(h, [hs[0], hs[1], hs[2], t, -1]), [3, 0, 1, 2, 4])
            out = tf.map_fn(
                lambda args: tf.nn.conv2d(args[0], args[1], strides, padding),
                (per_task, kernel), fn_output_signature=h.dtype,
            )  # [T, B, H', W', F]
            out_shape = tf.shape(out)
            return tf.reshape(
                tf.transpose(out, [1, 2, 3, 0, 4]), [out_shape[1], out_shape[2], out_shape[3], -1]
            )
        ks = tf.shape(kernel)  # [T, kh, kw, C, F]
        k = tf.transpose(kernel, [1, 2, 3, 0, 4])
        k = tf.reshape(k, [ks[1], ks[2], ks[3], t * ks[4]])
        return tf.nn.conv2d(h, k, strides, padding)

    def _fused_bn_at(self, i: int, bn_stats) -> bool:
        """Whether op `i` is a BatchNorm normalising with batch statistics (fusable)."""
        if i >= len(self.ops) or self.ops[i][0] != "bn":
            return False
        return bn_stats is None or self.ops[i][4] not in bn_stats

    def _fused_bn(self, h, params, op, t, bn_params):
        """Per-task batch-statistics BatchNorm on `[B, H, W, T*C]` as one fused kernel."""
        layer, gamma_i, beta_i, bn_index = op[1], op[2], op[3], op[4]
        width = tf.shape(h)[-1]
        if h.dtype not in (tf.float32, tf.bfloat16):
            h = tf.cast(h, tf.float32)
        if bn_params is not None and bn_index in bn_params:
            g, b = bn_params[bn_index]
            gamma = None if g is None else tf.tile(g, [t])
            beta = None if b is None else tf.tile(b, [t])
        else:
            gamma = None if gamma_i is None else tf.reshape(params[gamma_i], [-1])
            beta = None if beta_i is None else tf.reshape(params[beta_i], [-1])
        if gamma is None:
            gamma = tf.ones([width], h.dtype)
        if beta is None:
            beta = tf.zeros([width], h.dtype)
        out, _, _ = tf.compat.v1.nn.fused_batch_norm(
            h, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32),
            epsilon=layer.epsilon, is_training=True,
        )  # 16-bit inputs are normalised in float32 inside the kernel, as Keras does
        return _compute(layer, out)

    def _bn(self, h, params, op, t, image, channels, bn_params, bn_stats, collect):
        layer, gamma_i, beta_i, bn_index = op[1], op[2], op[3], op[4]
        # Like Keras: 16-bit inputs are normalised in float32, the output is in compute dtype.
        h = tf.cast(h, tf.experimental.numpy.result_type(h.dtype, tf.float32))
        if image:
            # h: [B, H, W, T*C]; per-task per-channel statistics = per-channel of T*C.
            axes = [0, 1, 2]
            per_task = lambda v: tf.reshape(v, [-1])  # [T, C] -> [T*C]  # noqa: E731
            shared = lambda v: tf.tile(v, [t])  # [C] -> [T*C]  # noqa: E731
        else:
            # h: [T, B, C]
            axes = [1]
            per_task = lambda v: v[:, tf.newaxis, :]  # noqa: E731
            shared = lambda v: v  # noqa: E731
        if bn_stats is not None and bn_index in bn_stats:
            mean, var = (shared(s) for s in bn_stats[bn_index])
            if not image:
                mean, var = mean[tf.newaxis, tf.newaxis], var[tf.newaxis, tf.newaxis]
        else:
            mean, var = tf.nn.moments(h, axes=axes, keepdims=not image)
            if collect is not None:
                if image:
                    m = tf.reduce_mean(tf.reshape(mean, [t, -1]), 0)
                    v = tf.reduce_mean(tf.reshape(var, [t, -1]), 0)
                else:
                    m = tf.reduce_mean(mean, [0, 1])
                    v = tf.reduce_mean(var, [0, 1])
                collect.append((m, v))
        if bn_params is not None and bn_index in bn_params:
            g, bta = bn_params[bn_index]
            gamma = None if g is None else shared(g)
            beta = None if bta is None else shared(bta)
            if not image:
                gamma = None if gamma is None else gamma[tf.newaxis, tf.newaxis]
                beta = None if beta is None else beta[tf.newaxis, tf.newaxis]
        else:
            gamma = None if gamma_i is None else per_task(params[gamma_i])
            beta = None if beta_i is None else per_task(params[beta_i])
        cast = lambda v: None if v is None else tf.cast(v, h.dtype)  # noqa: E731
        out = tf.nn.batch_normalization(
            h, cast(mean), cast(var), cast(beta), cast(gamma), layer.epsilon
        )
        return _compute(layer, out)


def _compute(layer, value):
    """`value` in `layer`'s compute dtype (its Keras dtype policy, e.g. `mixed_bfloat16`)."""
    dtype = tf.as_dtype(layer.compute_dtype)
    return value if value.dtype == dtype else tf.cast(value, dtype)


@functools.lru_cache(maxsize=None)
def grouped_conv_gradients_supported(dtype: str = "float32") -> bool:
    """Whether this TensorFlow build can differentiate grouped convolutions in `dtype`.

    MAML's vectorised path runs the tasks of a meta-batch as one grouped convolution
    (`feature_group_count` = tasks) and differentiates it to second order. TensorFlow's CPU
    kernels without oneDNN reject the gradients of grouped convolutions, and oneDNN handles
    bfloat16/float16 only on CPUs with AVX-512, so the answer depends on the machine and on
    `TF_ENABLE_ONEDNN_OPTS`. It is found by running the two gradient kernels of a tiny grouped
    convolution (their own derivatives are convolutions of the same kinds), eagerly, on the
    default device; the answer is cached per dtype.

    Args:
        dtype: Compute dtype of the convolutions, e.g. `"float32"` or `"bfloat16"`.

    Example:

    >>> grouped_conv_gradients_supported("float32")  # with oneDNN on, or on a GPU
    True
    >>> grouped_conv_gradients_supported("bfloat16")  # a CPU without AVX-512
    False
    """
    dtype = tf.as_dtype(dtype)
    # The kernels a first and a second derivative of a grouped Conv2D run, called directly
    # (tapes do not record under init_scope, which keeps this eager inside a tf.function).
    with tf.init_scope():
        try:
            x = tf.ones([1, 4, 4, 4], dtype)
            k = tf.ones([3, 3, 2, 4], dtype)  # 2 groups of 2 input channels
            dy = tf.nn.conv2d(x, k, [1, 1, 1, 1], "SAME")
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=k, out_backprop=dy, strides=[1, 1, 1, 1],
                padding="SAME",
            )
            tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=tf.shape(k), out_backprop=dy, strides=[1, 1, 1, 1],
                padding="SAME",
            )
            return True
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
                tf.errors.NotFoundError):
            return False


def _auto_conv_mode(model: keras.Model) -> str:
    dtypes = sorted({
        layer.compute_dtype for layer in flatten_layers(model)
        if isinstance(layer, layers.Conv2D)
    })
    unsupported = [d for d in dtypes if not grouped_conv_gradients_supported(d)]
    if not unsupported:
        return "grouped"
    warnings.warn(
        f"tfmeta: this TensorFlow build cannot differentiate grouped convolutions in "
        f"{', '.join(unsupported)} (they need oneDNN: TF_ENABLE_ONEDNN_OPTS=1 set before "
        "TensorFlow is imported, and for bfloat16/float16 a CPU with AVX-512), so MAML runs one "
        "convolution per task (conv_mode='split'), which is slower.",
        stacklevel=4,
    )
    return "split"


def make_runner(
    model: keras.Model, fast_path: bool | str = "auto", conv_mode: str = "auto"
) -> KerasRunner | VectorizedRunner:
    """Returns a `VectorizedRunner` when `model` is supported (checked numerically), else a
    `KerasRunner`.

    Args:
        model: A built Keras model.
        fast_path: `"auto"` (vectorised when supported), `True` (vectorised or raise) or
            `False` (always the per-task `stateless_call` loop).
        conv_mode: See `VectorizedRunner`.
    """
    if fast_path not in ("auto", True, False):
        raise ValueError(f"`fast_path` must be 'auto', True or False; received {fast_path!r}.")
    if fast_path is False:
        return KerasRunner(model)
    try:
        runner = VectorizedRunner(model, conv_mode=conv_mode)
        _check_same(runner, model)
        return runner
    except Exception as err:  # noqa: BLE001 - any unsupported model falls back
        if fast_path is True:
            raise ValueError(f"`fast_path=True` but the model is not supported: {err}") from err
        warnings.warn(f"tfmeta: using the per-task loop for this model ({err}).", stacklevel=3)
        return KerasRunner(model)


def _check_same(runner: VectorizedRunner, model: keras.Model) -> None:
    """Checks the vectorised runner against `model(x, training=True)` on random inputs."""
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise NotImplementedError(f"input shape {shape} is not fully defined.")
    rng = np.random.default_rng(0)
    dtype = getattr(model.inputs[0], "dtype", "float32") if getattr(model, "inputs", None) else "float32"
    x = rng.uniform(-1, 1, size=(2, 3) + shape).astype(dtype)
    # Distinct weights per task, so that mixing up tasks would show.
    params = [
        tf.stack([v.value, v.value * 0.5 + 0.01]) for v in runner.variables
    ]
    got = tf.cast(runner(params, tf.constant(x)), tf.float32).numpy()
    ref = tf.cast(KerasRunner(model)(params, tf.constant(x)), tf.float32).numpy()
    half = any(
        tf.as_dtype(layer.compute_dtype).size == 2 for layer in flatten_layers(model)
    )  # bfloat16 keeps 8 bits of mantissa: the two orders of operations round differently
    rtol, atol = (5e-2, 5e-2) if half else (1e-3, 1e-4)
    if got.shape != ref.shape or not np.allclose(got, ref, rtol=rtol, atol=atol):
        raise AssertionError("vectorised outputs differ from the Keras model's")


def tile_params(variables: Sequence, tasks) -> list:
    """Stacks `tasks` copies of each variable: `[T, *shape]` (differentiable w.r.t. them)."""
    out = []
    for v in variables:
        v = tf.convert_to_tensor(v)
        out.append(tf.broadcast_to(v[tf.newaxis], tf.concat([[tasks], tf.shape(v)], 0)))
    return out


__all__ = ["KerasRunner", "VectorizedRunner", "make_runner", "tile_params", "flatten_layers"]
