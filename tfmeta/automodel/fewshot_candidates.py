"""The few-shot learners AutoModel chooses among, each behind one small builder.

A candidate builds a learner for an input shape around an encoder that holds the
preprocessing, trains it on base classes for a budget of steps, and is scored on validation
episodes drawn from held-out base classes.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import keras

from tfmeta import backbones
from tfmeta.automodel.pipeline import Preprocessing
from tfmeta.data import EpisodeSampler, PairSampler


def encoder_for(pre: Preprocessing, name: str = "encoder") -> keras.Model:
    """conv4-style encoder (as many blocks as the image size allows) or an MLP for tables."""
    shape = pre.model_input_shape
    if pre.kind == "image":
        blocks = max(1, min(4, int(math.log2(max(1, min(shape[0], shape[1]))))))
        return pre.wrap(lambda s: backbones.conv4(s, blocks=blocks), name=name)
    return pre.wrap(lambda s: backbones.mlp(s, hidden=(128, 64)), name=name)


def _episodes(x, y, ways, shots, queries, seed, meta_batch=1):
    return EpisodeSampler(x, y, ways=ways, shots=shots, queries=queries, seed=seed).dataset(meta_batch=meta_batch)


def train_protonet(pre, x, y, ways, shots, steps, seed, verbose=0):
    from tfmeta.metric.protonet import PrototypicalNetwork

    model = PrototypicalNetwork(encoder=encoder_for(pre))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    queries = _max_queries(y, shots, 5)
    model.fit(_episodes(x, y, ways, shots, queries, seed), steps_per_epoch=steps, epochs=1, verbose=verbose)
    return model


def train_siamese(pre, x, y, ways, shots, steps, seed, verbose=0):
    from tfmeta.metric.siamese import SiameseNetwork

    model = SiameseNetwork(encoder=encoder_for(pre), input_shape=pre.raw_shape)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False)
    model.fit(PairSampler(x, y, seed=seed).dataset(batch_size=64), steps_per_epoch=steps, epochs=1, verbose=verbose)
    return model


def train_maml(pre, x, y, ways, shots, steps, seed, verbose=0):
    from tfmeta.gradient.maml import MAML

    body = encoder_for(pre, name="body")
    inputs = keras.Input(pre.raw_shape, dtype=pre.raw_dtype)
    net = keras.Model(inputs, keras.layers.Dense(ways, name="head")(body(inputs)))
    # 0.4 (the MAML paper's Omniglot rate) diverges here: on digits (3-way 1-shot, 8x8) one
    # step took the logits from ~3 to ~15 and every query to one class (chance accuracy);
    # 0.1 learns (200 steps: 0.62 / 0.66 on new classes for seeds 0 / 1, see the tests).
    model = MAML(net, inner_lr=0.1, inner_steps=1, order=1, ways=ways)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    queries = _max_queries(y, shots, 5)
    model.fit(_episodes(x, y, ways, shots, queries, seed, meta_batch=4), steps_per_epoch=max(1, steps // 4), epochs=1, verbose=verbose)
    return model


def _max_queries(y, shots, wanted):
    import numpy as np

    smallest = int(np.bincount(y).min()) if len(y) else 0
    return max(1, min(wanted, smallest - shots))


CANDIDATES: dict[str, Callable] = {
    "protonet": train_protonet,
    "maml": train_maml,
    "siamese": train_siamese,
}


def check_candidates(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        raise ValueError(f"`learners` must be a non-empty subset of {sorted(CANDIDATES)}; received {list(names)}.")
    return list(names)
