"""Are the samplers a bottleneck? Sampler throughput vs. Siamese training throughput.

Measures, on Omniglot-sized data (28x28x1 images, 712 classes x 20 drawings, like the
rotated background-minus-held-out training set; random pixels, since only speed matters):

- `episodes_per_s`: `EpisodeSampler` 5-way 1-shot 15-query episodes per second from the
  tf.data pipeline alone, at meta-batch 32 and meta-batch 1 (and 20-way 1-shot 5-query, the
  recipe's training episodes);
- `pairs_per_s`: `PairSampler` pairs per second (batches of 128) alone;
- `siamese_train`: `SiameseNetwork` (conv4, Koch L1) `train_on_batch` steps per second and
  pairs per second on pair batches of 128, and steps/s on 20-way 1-shot 5-query episodes
  (the recipe's training input), fed from already-materialised batches, so it measures the
  model alone.

- `ch01_default`: the same for ch01's default training input (40-way 1-shot 5-query episodes of
  `--image-size` 40 images with its affine distortions) and model (contrastive N-pair Siamese).

The samplers are not the bottleneck when their rates are far above the model's rates.

Usage:

    python benchmarks/sampler_throughput.py [--seconds 5] [--quick] [--image-size 40]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import tfmeta  # before keras and tensorflow: sets TensorFlow's environment defaults

import keras
import numpy as np
import tensorflow as tf

from tfmeta.data import EpisodeSampler, PairSampler
from tfmeta.data.augment import RandomAffine


def omniglot_sized(classes: int = 712, per_class: int = 20, seed: int = 0, image_size: int = 28):
    """Random sparse "drawings" of the training split's size: `classes` x `per_class` images."""
    rng = np.random.default_rng(seed)
    x = (rng.random((classes * per_class, image_size, image_size, 1)) < 0.08).astype(np.float32)
    y = np.repeat(np.arange(classes), per_class).astype(np.int64)
    return x, y


def rate(iterator, seconds: float, warmup: int = 3) -> tuple[float, int]:
    """Elements per second pulled from `iterator` during `seconds` (after a warm-up)."""
    for _ in range(warmup):
        next(iterator)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        n += 1
    return n / (time.perf_counter() - start), n


def train_steps_per_s(model, batches, seconds: float) -> float:
    """`model.train_on_batch` steps per second, cycling over already-materialised `batches`."""
    cycle = (batches[i % len(batches)] for i in range(10**9))

    def steps():
        while True:
            xb, yb = next(cycle)
            model.train_on_batch(xb, yb)
            yield None

    return rate(steps(), seconds, warmup=3)[0]


def ch01_default_rates(seconds: float, image_size: int) -> dict:
    """ch01's default training input against its model: 40-way 1-shot 5-query episodes of
    `image_size` images with the recipe's affine distortions, and the contrastive N-pair
    Siamese network (conv4, euclidean, softmax episode loss) training on them."""
    x, y = omniglot_sized(seed=1, image_size=image_size)
    augment = RandomAffine.for_image_size(image_size, rotation=8.6, scale=0.1, shear=8.6)
    sampler = EpisodeSampler(x, y, ways=40, shots=1, queries=5, seed=0)
    episodes_per_s, _ = rate(iter(sampler.dataset(meta_batch=1, augment=augment)), seconds)
    model = tfmeta.SiameseNetwork(
        tfmeta.backbones.conv4((image_size, image_size, 1)),
        objective="contrastive", distance="euclidean", episode_loss="softmax",
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batches = [b for b in sampler.dataset(meta_batch=1, episodes=4, augment=augment)]
    steps_per_s = train_steps_per_s(model, batches, seconds)
    return {
        "image_size": image_size,
        "episodes_40way1shot5q_augmented_per_s": round(episodes_per_s, 1),
        "train_steps_per_s": round(steps_per_s, 2),
        "sampler_over_model": round(episodes_per_s / max(steps_per_s, 1e-9), 1),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    p.add_argument("--quick", action="store_true", help="1 s per measurement")
    p.add_argument(
        "--image-size", type=int, default=40,
        help="image side for the ch01-default measurement (ch01's --image-size)",
    )
    args = p.parse_args(argv)
    seconds = 1.0 if args.quick else args.seconds
    keras.utils.set_random_seed(0)
    x, y = omniglot_sized()
    result: dict = {
        "data": {"images": int(len(x)), "classes": 712, "shape": [28, 28, 1]},
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "seconds_per_measurement": seconds,
    }

    episodes = EpisodeSampler(x, y, ways=5, shots=1, queries=15, seed=0)
    result["episodes_per_s"] = {}
    for meta_batch in (32, 1):
        it = iter(episodes.dataset(meta_batch=meta_batch))
        batches_per_s, _ = rate(it, seconds)
        result["episodes_per_s"][f"5way1shot15q_meta_batch_{meta_batch}"] = round(
            batches_per_s * meta_batch, 1
        )

    ep20 = EpisodeSampler(x, y, ways=20, shots=1, queries=5, seed=0)
    batches_per_s, _ = rate(iter(ep20.dataset(meta_batch=1)), seconds)
    result["episodes_per_s"]["20way1shot5q_meta_batch_1"] = round(batches_per_s, 1)

    pairs = PairSampler(x, y, seed=0)
    batches_per_s, _ = rate(iter(pairs.dataset(batch_size=128)), seconds)
    result["pairs_per_s"] = {"batch_128": round(batches_per_s * 128, 1)}

    model = tfmeta.SiameseNetwork(input_shape=(28, 28, 1), objective="koch", distance="l1")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    pair_batches = [b for b in pairs.dataset(batch_size=128, batches=4)]
    episode_batches = [b for b in ep20.dataset(meta_batch=1, episodes=4)]

    pair_steps = train_steps_per_s(model, pair_batches, seconds)
    episode_steps = train_steps_per_s(model, episode_batches, seconds)
    result["siamese_train"] = {
        "pairs_batch_128_steps_per_s": round(pair_steps, 2),
        "pairs_per_s": round(pair_steps * 128, 1),
        "episodes_20way1shot5q_steps_per_s": round(episode_steps, 2),
        "episode_pairs_per_s": round(episode_steps * 100 * 20, 1),
        "episode_images_per_s": round(episode_steps * 120, 1),
    }
    result["sampler_over_model"] = {
        "pairs": round(result["pairs_per_s"]["batch_128"] / max(pair_steps * 128, 1e-9), 1),
        "episodes_20way1shot5q": round(
            result["episodes_per_s"]["20way1shot5q_meta_batch_1"] / max(episode_steps, 1e-9), 1
        ),
    }
    result["ch01_default"] = ch01_default_rates(seconds, args.image_size)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
