"""The controller RNN of Zoph & Le (2017) / ENAS (Pham et al. 2018), trained with REINFORCE.

An LSTM emits the decisions of a search space one after another. At step t the LSTM output
goes through decision t's softmax head; the logits are divided by `temperature` and squashed
as `tanh_constant * tanh(logits)` (ENAS's logit clipping); the sampled choice's embedding is
the next input. The first input is a learned vector.

`reinforce(indices, reward)` applies one REINFORCE step with a moving-average baseline:

    baseline <- decay * baseline + (1 - decay) * reward      (first reward initialises it)
    loss = -(reward - baseline) * log p(arch) - entropy_weight * H(policy at the sampled path)

Defaults are ENAS's: LSTM 64, tanh constant 1.1, entropy weight 1e-4, baseline decay 0.99,
Adam learning rate 0.0035 (beta_1 = 0, epsilon = 1e-3 as in ENAS), temperature 1.

Anchor-point attention (Zoph & Le, section 3.3): a binary decision "does layer j feed this
layer?" can be given by content-based attention instead of a softmax head. `attention={t: s}`
makes decision t such a decision, with s the step of layer j's anchor point (a step of layer
j, earlier than t): `q = v . tanh(W_prev h_s + W_curr h_t)`, and the logits `[-q, q]` (as
ENAS writes them; the probability of the connection is `sigmoid(2q)`), then the temperature
and tanh as for every step. The paper takes `h_t` at one anchor step of the current layer for
all its connections; here each connection has its own step, so it also sees the layer's
earlier connection choices. `LayerwiseSpace.controller_attention()` gives this mapping.

The whole state (LSTM and head weights, Adam slots, baseline, update count) round-trips
through `get_state()` / `set_state()` as plain JSON (weights as base64 `.npz` bytes), which
`tfmeta.nas.oracles.ControllerOracle` stores in KerasTuner's `oracle.json`.

Example:

>>> c = ControllerRNN([3] * 8, seed=0)
>>> indices, log_prob, entropy = c.sample(seed=1)
>>> stats = c.reinforce(indices, reward=0.9)
>>> c.probability(indices) > 0
True
"""

from __future__ import annotations

import base64
import io
import numbers
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf


class ControllerRNN(keras.Model):
    """LSTM controller emitting one softmax decision per step.

    Args:
        num_choices: Choices of each decision, in order (`space.num_choices`).
        units: LSTM units (ENAS: 64).
        tanh_constant: Logits become `c * tanh(logits / temperature)`; None disables it.
        temperature: Softmax temperature applied before the tanh.
        entropy_weight: Weight of the entropy bonus in the loss.
        baseline_decay: Decay of the moving-average reward baseline.
        learning_rate: Adam learning rate.
        seed: Seeds the weight initialisers (sampling takes its own seed).
        attention: `{step: anchor step}`: the binary decisions given by anchor-point attention
            to the hidden state of an earlier step (see the module docstring). None: every
            decision has its softmax head.

    Example:

    >>> c = ControllerRNN([2, 2], units=8, seed=0)
    >>> round(c.probability([0, 1]), 2) > 0
    True
    """

    def __init__(
        self,
        num_choices: Sequence[int],
        units: int = 64,
        tanh_constant: float | None = 1.1,
        temperature: float = 1.0,
        entropy_weight: float = 1e-4,
        baseline_decay: float = 0.99,
        learning_rate: float = 0.0035,
        seed: int | None = None,
        attention: dict[int, int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_choices = [int(n) for n in num_choices]
        if not num_choices or min(num_choices) < 1:
            raise ValueError(f"`num_choices` must be positive ints; received {num_choices}.")
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units < 1:
            raise ValueError(f"`units` must be a positive int; received {units!r}.")
        units = int(units)
        if temperature <= 0:
            raise ValueError(f"`temperature` must be > 0; received {temperature}.")
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"`baseline_decay` must be in [0, 1); received {baseline_decay}.")
        if learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be > 0; received {learning_rate}.")
        self.attention = _check_attention(attention, num_choices)
        self.num_choices = num_choices
        self.units = units
        self.tanh_constant = tanh_constant
        self.temperature = float(temperature)
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.learning_rate = float(learning_rate)
        self.baseline: float | None = None
        self.num_updates = 0
        offsets = np.concatenate([[0], np.cumsum(num_choices)]).astype(int)
        self._offsets = [int(o) for o in offsets]
        total = int(offsets[-1])
        self._seed = seed
        init = self._initializer
        self.cell = keras.layers.LSTMCell(units, kernel_initializer=init(0), recurrent_initializer=init(1))
        self.g_emb = self.add_weight(shape=(1, units), initializer=init(2), name="g_emb")
        # One embedding row and one softmax column per (decision, choice), sliced per step.
        self.w_emb = self.add_weight(shape=(total, units), initializer=init(3), name="w_emb")
        self.w_soft = self.add_weight(shape=(units, total), initializer=init(4), name="w_soft")
        self.b_soft = self.add_weight(shape=(total,), initializer="zeros", name="b_soft")
        if self.attention:
            self.w_attn_prev = self.add_weight(shape=(units, units), initializer=init(5), name="w_attn_prev")
            self.w_attn_curr = self.add_weight(shape=(units, units), initializer=init(6), name="w_attn_curr")
            self.v_attn = self.add_weight(shape=(units, 1), initializer=init(7), name="v_attn")
        self.cell.build((1, units))
        self.optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate, beta_1=0.0, epsilon=1e-3)
        self.optimizer.build(self.trainable_variables)
        self._sample_fn = tf.function(self._sample, reduce_retracing=True)
        self._logp_fn = tf.function(self._log_prob, reduce_retracing=True)
        self._update_fn = tf.function(self._update, reduce_retracing=True)

    def _initializer(self, offset: int):
        seed = None if self._seed is None else int(self._seed) * 16 + offset
        return keras.initializers.RandomUniform(-0.1, 0.1, seed=seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-initialises weights, Adam slots and baseline as a fresh `ControllerRNN(seed=seed)`.

        Reusing one controller through `reset` avoids re-tracing its TF functions (about 5 s
        on CPU), which matters when running many short searches (benchmarks).
        """
        self._seed = seed
        cell = self.cell
        shapes = [
            (cell.kernel, 0), (cell.recurrent_kernel, 1), (self.g_emb, 2), (self.w_emb, 3), (self.w_soft, 4),
        ]
        if self.attention:
            shapes += [(self.w_attn_prev, 5), (self.w_attn_curr, 6), (self.v_attn, 7)]
        for var, offset in shapes:
            var.assign(self._initializer(offset)(var.shape))
        # LSTMCell default: unit forget bias (zeros, ones for the forget gate, zeros).
        cell.bias.assign(np.concatenate([np.zeros(self.units), np.ones(self.units), np.zeros(2 * self.units)]).astype("float32"))
        self.b_soft.assign(np.zeros(self.b_soft.shape, "float32"))
        for v in self.optimizer.variables:
            if v is self.optimizer._learning_rate or "learning_rate" in v.path:
                continue
            v.assign(np.zeros(v.shape, v.dtype))
        self.baseline = None
        self.num_updates = 0

    # -- the policy ----------------------------------------------------------------------
    def _squash(self, logits):
        logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * tf.tanh(logits)
        return logits

    def _attention_query(self, h_anchor, h):
        """`v . tanh(W_prev h_anchor + W_curr h)`: `[..., 1]`."""
        query = tf.tanh(tf.einsum("...u,uv->...v", h_anchor, self.w_attn_prev) + tf.einsum("...u,uv->...v", h, self.w_attn_curr))
        return tf.einsum("...u,uv->...v", query, self.v_attn)

    def _logits(self, t: int, h, hidden: list):
        """Step t's squashed logits from its LSTM output `h` (`hidden`: the earlier outputs)."""
        if t in self.attention:
            q = self._attention_query(hidden[self.attention[t]], h)
            return self._squash(tf.concat([-q, q], axis=-1))
        lo, hi = self._offsets[t], self._offsets[t + 1]
        return self._squash(tf.matmul(h, self.w_soft[:, lo:hi]) + self.b_soft[lo:hi])

    def _run(self, indices=None, seed=None, batch: int = 1):
        """Runs the LSTM over all decisions; samples when `indices` is None."""
        x = tf.tile(self.g_emb, [batch, 1])
        state = [tf.zeros([batch, self.units]), tf.zeros([batch, self.units])]
        chosen, log_prob, entropy, hidden = [], tf.zeros([batch]), tf.zeros([batch]), []
        for t in range(len(self.num_choices)):
            h, state = self.cell(x, state)
            logits = self._logits(t, h, hidden)
            hidden.append(h)
            if indices is None:
                step_seed = tf.random.experimental.stateless_fold_in(seed, t)
                a = tf.random.stateless_categorical(logits, 1, seed=step_seed)[:, 0]
                a = tf.cast(a, tf.int32)
            else:
                a = indices[:, t]
            log_p = tf.nn.log_softmax(logits)
            log_prob += tf.gather(log_p, a, batch_dims=1)
            entropy += -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
            chosen.append(a)
            x = tf.gather(self.w_emb, a + self._offsets[t])
        return tf.stack(chosen, axis=1), log_prob, entropy

    def _sample(self, seed):
        return self._run(seed=seed)

    def _log_prob(self, indices):
        """Teacher-forced `(log p, entropy)` of given architectures, all decisions at once.

        The LSTM inputs are known in advance (the embeddings of the given choices), so the
        recurrence runs as one `tf.scan` and the softmaxes as one masked matmul: the same
        numbers as stepping `_run`, with a graph (and a REINFORCE trace) a fraction of the size.
        """
        batch = tf.shape(indices)[0]
        offsets = tf.constant(self._offsets[:-1], tf.int32)
        columns = indices + offsets  # [B, T] rows of w_emb / columns of w_soft
        previous = tf.gather(self.w_emb, columns[:, :-1])  # inputs of steps 1..T-1
        inputs = tf.concat([tf.tile(self.g_emb[None], [batch, 1, 1]), previous], axis=1)  # [B, T, U]

        def step(carry, x):
            h, c = carry
            _, (h, c) = self.cell(x, [h, c])
            return h, c

        zeros = tf.zeros([batch, self.units])
        hidden, _ = tf.scan(step, tf.transpose(inputs, [1, 0, 2]), initializer=(zeros, zeros))  # [T, B, U]
        logits = tf.einsum("tbu,uk->btk", hidden, self.w_soft) + self.b_soft  # [B, T, total]
        if self.attention:
            # Each attention step owns two columns: put [-q, q] there (every step sees every
            # column, the mask below keeps each step to its own).
            steps = sorted(self.attention)
            q = self._attention_query(tf.gather(hidden, [self.attention[t] for t in steps]),
                                      tf.gather(hidden, steps))[..., 0]  # [A, B]
            sign = np.zeros((len(steps), self._offsets[-1]), "float32")
            for a, t in enumerate(steps):
                sign[a, self._offsets[t]], sign[a, self._offsets[t] + 1] = -1.0, 1.0
            attended = tf.einsum("ab,ak->bk", q, tf.constant(sign))[:, None, :]  # [B, 1, total]
            logits = tf.where(tf.constant(sign.any(axis=0)), attended, logits)
        logits = self._squash(logits)
        owned = tf.constant(self._step_mask())  # [T, total]: step t's slice of the columns
        log_p = tf.nn.log_softmax(tf.where(owned, logits, -1e9))
        log_prob = tf.reduce_sum(tf.gather(log_p, columns, batch_dims=2), axis=1)
        plogp = tf.where(owned, tf.exp(log_p) * log_p, 0.0)
        entropy = -tf.reduce_sum(plogp, axis=[1, 2])
        return log_prob, entropy

    def _step_mask(self) -> np.ndarray:
        mask = np.zeros((len(self.num_choices), self._offsets[-1]), bool)
        for t in range(len(self.num_choices)):
            mask[t, self._offsets[t]:self._offsets[t + 1]] = True
        return mask

    def _update(self, indices, advantages):
        with tf.GradientTape() as tape:
            lp, ent = self._log_prob(indices)
            loss = tf.reduce_mean(-advantages * lp - self.entropy_weight * ent)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return loss, tf.reduce_mean(ent)

    # -- public API --------------------------------------------------------------------
    def sample(self, seed: int | Sequence[int]) -> tuple[list[int], float, float]:
        """Samples one architecture; deterministic given the weights and `seed`.

        Returns:
            `(indices, log_prob, entropy)`: the choice index per decision, the log-probability
            of the sampled architecture and the summed entropy of the visited softmaxes.
        """
        seed = tf.constant([int(seed), 0] if np.isscalar(seed) else list(seed), tf.int64)
        idx, lp, ent = self._sample_fn(seed)
        return [int(i) for i in idx.numpy()[0]], float(lp.numpy()[0]), float(ent.numpy()[0])

    def log_probability(self, indices: Sequence[int]) -> float:
        """log p(architecture) under the current policy."""
        idx = self._check_indices(indices)
        lp, _ = self._logp_fn(tf.constant(idx[None], tf.int32))
        return float(lp.numpy()[0])

    def probability(self, indices: Sequence[int]) -> float:
        """p(architecture) under the current policy."""
        return float(np.exp(self.log_probability(indices)))

    def marginals(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The softmax of each decision along the path `indices` (for inspection)."""
        idx = self._check_indices(indices)
        x, state, out, hidden = self.g_emb, [tf.zeros([1, self.units]), tf.zeros([1, self.units])], [], []
        for t in range(len(self.num_choices)):
            h, state = self.cell(x, state)
            out.append(tf.nn.softmax(self._logits(t, h, hidden))[0].numpy())
            hidden.append(h)
            x = self.w_emb[idx[t] + self._offsets[t]][None]
        return out

    def reinforce(self, indices: Sequence[int] | np.ndarray, reward: float | Sequence[float]) -> dict:
        """One REINFORCE step on one architecture (or a batch) and its reward.

        The baseline is updated first (initialised with the first reward), then the policy
        gradient step uses `advantage = reward - baseline`.

        Returns:
            `{"loss", "advantage", "baseline", "entropy"}` as floats.
        """
        idx = np.asarray(indices, dtype=np.int32)
        if idx.ndim == 1:
            idx = idx[None]
        rewards = np.atleast_1d(np.asarray(reward, dtype=np.float64))
        if rewards.shape[0] != idx.shape[0]:
            raise ValueError(f"`reward` must have one value per architecture ({idx.shape[0]}); received {rewards.shape[0]}.")
        if not np.all(np.isfinite(rewards)):
            raise ValueError(f"`reward` must be finite; received {rewards.tolist()}.")
        for row in idx:
            self._check_indices(row)
        advantages = []
        for r in rewards:
            if self.baseline is None:
                self.baseline = float(r)
            else:
                self.baseline = self.baseline_decay * self.baseline + (1.0 - self.baseline_decay) * float(r)
            advantages.append(float(r) - self.baseline)
        loss, ent = self._update_fn(tf.constant(idx), tf.constant(advantages, tf.float32))
        self.num_updates += 1
        return {"loss": float(loss), "advantage": float(np.mean(advantages)), "baseline": self.baseline, "entropy": float(ent)}

    def _check_indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int32).reshape(-1)
        if idx.shape[0] != len(self.num_choices) or np.any(idx < 0) or np.any(idx >= np.asarray(self.num_choices)):
            raise ValueError(
                f"`indices` must hold one index per decision with choices {self.num_choices}; received {idx.tolist()}."
            )
        return idx

    # -- state -------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "num_choices": self.num_choices,
            "units": self.units,
            "tanh_constant": self.tanh_constant,
            "temperature": self.temperature,
            "entropy_weight": self.entropy_weight,
            "baseline_decay": self.baseline_decay,
            "learning_rate": self.learning_rate,
            "attention": {str(t): s for t, s in self.attention.items()},
        }

    def _all_variables(self):
        return list(self.trainable_variables) + list(self.optimizer.variables)

    def weights_bytes(self) -> bytes:
        """Policy weights and Adam slots as `.npz` bytes."""
        buf = io.BytesIO()
        np.savez(buf, *[v.numpy() for v in self._all_variables()])
        return buf.getvalue()

    def load_weights_bytes(self, data: bytes) -> None:
        arrays = np.load(io.BytesIO(data))
        variables = self._all_variables()
        if len(arrays.files) != len(variables):
            raise ValueError(
                f"Controller weights do not match this controller: expected {len(variables)} arrays, "
                f"received {len(arrays.files)}."
            )
        for i, v in enumerate(variables):
            v.assign(arrays[f"arr_{i}"])

    def get_state(self) -> dict:
        """JSON-serialisable state: config, weights (+ Adam slots), baseline, update count."""
        return {
            "config": self.get_config(),
            "weights_npz_b64": base64.b64encode(self.weights_bytes()).decode("ascii"),
            "baseline": self.baseline,
            "num_updates": self.num_updates,
        }

    def set_state(self, state: dict) -> None:
        if state["config"]["num_choices"] != self.num_choices:
            raise ValueError(
                f"Controller state is for decisions {state['config']['num_choices']}; this controller has {self.num_choices}."
            )
        attention = {int(t): int(a) for t, a in state["config"].get("attention", {}).items()}
        if attention != self.attention:
            raise ValueError(f"Controller state has attention steps {attention}; this controller has {self.attention}.")
        self.load_weights_bytes(base64.b64decode(state["weights_npz_b64"]))
        self.baseline = state["baseline"]
        self.num_updates = int(state["num_updates"])


def _check_attention(attention, num_choices: Sequence[int]) -> dict[int, int]:
    """`attention` as `{int step: int anchor step}`, each step binary and after its anchor."""
    if attention is None:
        return {}
    if not isinstance(attention, dict):
        raise ValueError(f"`attention` must be a dict {{step: anchor step}} or None; received {attention!r}.")
    checked = {}
    for t, a in attention.items():
        if not (isinstance(t, numbers.Integral) and isinstance(a, numbers.Integral) and 0 <= a < t < len(num_choices)):
            raise ValueError(f"`attention` must map steps to earlier steps in [0, {len(num_choices)}); received {t!r}: {a!r}.")
        if num_choices[t] != 2:
            raise ValueError(f"`attention` steps must be binary decisions; step {t} has {num_choices[t]} choices.")
        checked[int(t)] = int(a)
    return checked
