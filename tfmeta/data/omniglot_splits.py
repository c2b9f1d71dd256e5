"""The held-out-alphabet Omniglot split that tfmeta's recipes and benchmarks train and test on.

One call prepares everything an Omniglot experiment needs before its model exists:

1. the shared background sets (`small1` + `small2`: 8 alphabets, 242 characters) are loaded,
   at `image_size`, or, with `ink_box`, at Omniglot's 105 x 105 and size-normalised
   (`tfmeta.data.ink_box`: each drawing's ink bounding box scaled into a centred `ink_box`
   square of the `image_size` input);
2. whole alphabets are held out (`DEFAULT_HELD_OUT_ALPHABETS`: Balinese and Korean, 64
   characters never seen in training);
3. the training characters get more classes: optional composites (two characters of one
   alphabet overlaid), then their 90/180/270-degree rotations (x4), then optionally their
   mirror images (x8 with the rotations);
4. the held-out characters become the test classes of each test protocol
   (`tfmeta.data.omniglot.TEST_PROTOCOLS`: `characters` as drawn, `rotations` with their
   rotations as more classes, the protocol of the published figures).

Example:

>>> split = load_omniglot_split(image_size=28, mirrors=True)
>>> print(split.summary())
>>> sampler = EpisodeSampler(split.train.x, split.train.y, ways=60, shots=1, queries=5)
>>> score_grid(learner, split.test_arrays())     # tfmeta.fewshot.evaluation
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from typing import Iterable, Sequence

import numpy as np

from tfmeta.data.omniglot import (
    DEFAULT_HELD_OUT_ALPHABETS,
    TEST_PROTOCOLS,
    OmniglotData,
    load_omniglot,
    parse_test_protocols,
)

#: Side of Omniglot's original drawings.
RAW_IMAGE_SIZE = 105

#: The shared background sets every recipe loads.
BACKGROUND_SPLITS = ("small1", "small2")


@dataclasses.dataclass
class OmniglotSplit:
    """Training classes and test classes per protocol, all at the model's input size.

    Attributes:
        train: The training classes (characters of the other alphabets, with the rotations,
            mirrors and composites asked for), relabelled 0..C-1.
        held_out: The held-out characters as drawn, one class each.
        test_sets: `{protocol: OmniglotData}`, the held-out characters as each protocol's
            test classes, in the order asked for.
        held_out_alphabets: The alphabets held out.
        train_characters: Training characters before any class was added.
        image_size: Side (or `(height, width)`) of every image.
        ink_box: Side of the ink box every image was normalised into (0: plain downsampling).
        mirrors: Whether the training classes include mirror images.
        composites: Composite classes added to the training characters.
    """

    train: OmniglotData
    held_out: OmniglotData
    test_sets: dict[str, OmniglotData]
    held_out_alphabets: tuple[str, ...]
    train_characters: int
    image_size: int | tuple[int, int]
    ink_box: int = 0
    mirrors: bool = False
    composites: int = 0

    def test_arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """`{protocol: (x, y)}`, the `test_sets` argument of `tfmeta.fewshot` scoring grids."""
        return {protocol: (data.x, data.y) for protocol, data in self.test_sets.items()}

    @property
    def protocols(self) -> list[str]:
        """The test protocols, in order (the first is a recipe's headline figure)."""
        return list(self.test_sets)

    def summary(self) -> str:
        """One line: the training classes and where they come from, and the test classes."""
        composites = f" + {self.composites} composites" if self.composites else ""
        symmetries = "8 (rotations and mirrors)" if self.mirrors else "4 rotations"
        height, width = self.train.x.shape[1:3]
        box = f", ink box {self.ink_box}" if self.ink_box else ""
        tests = ", ".join(f"{p} {d.num_classes}" for p, d in self.test_sets.items())
        return (
            f"train: ({self.train_characters} characters{composites}) x {symmetries} = "
            f"{self.train.num_classes} classes, {len(self.train)} images of {height} x {width}"
            f"{box}; held out: "
            f"{', '.join(self.held_out_alphabets)} ({self.held_out.num_classes} characters); "
            f"test classes per protocol: {tests}"
        )


def load_omniglot_split(
    image_size: int | tuple[int, int] = 28,
    *,
    ink_box: int = 0,
    mirrors: bool = False,
    composites: int = 0,
    test_protocols: str | Sequence[str] = TEST_PROTOCOLS,
    held_out: Iterable[str] = DEFAULT_HELD_OUT_ALPHABETS,
    splits: Sequence[str] = BACKGROUND_SPLITS,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> OmniglotSplit:
    """Loads Omniglot and splits it by alphabet into training classes and test classes.

    Args:
        image_size: Side of the images the model takes (or `(height, width)` without
            `ink_box`).
        ink_box: When > 0, every drawing is read at 105 x 105 and its ink bounding box scaled
            into a centred square of this side within `image_size`
            (`tfmeta.data.ink_box.normalize_images`); 0 downsamples the whole drawing.
        mirrors: Add every training class's mirror image as a class (after the rotations).
        composites: Add this many training classes, each two characters of one alphabet
            overlaid (`OmniglotData.with_composites`), before the rotations.
        test_protocols: Test protocols (a comma list or a sequence of `TEST_PROTOCOLS`).
        held_out: Alphabets held out of training.
        splits: Omniglot splits to load (see `load_omniglot`).
        data_dir: Folder holding `omniglot/` (default `$TFMETA_DATA_DIR`).
        seed: Seed of the composite pairs.

    Returns:
        An `OmniglotSplit`.

    Raises:
        ValueError: If `ink_box` is negative or larger than `image_size`, or used with a
            non-square `image_size`; if `composites` is negative; if a protocol or held-out
            alphabet is unknown.
    """
    protocols = parse_test_protocols(test_protocols)
    if isinstance(ink_box, bool) or not isinstance(ink_box, numbers.Integral) or ink_box < 0:
        raise ValueError(f"`ink_box` must be an int >= 0 (0 = off); received {ink_box!r}.")
    ink_box = int(ink_box)
    if ink_box and (isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral)
                    or ink_box > image_size):
        raise ValueError(
            "`ink_box` needs a square int `image_size` at least as large as the box; received "
            f"ink_box={ink_box}, image_size={image_size!r}."
        )
    if isinstance(composites, bool) or not isinstance(composites, numbers.Integral) or composites < 0:
        raise ValueError(f"`composites` must be an int >= 0; received {composites!r}.")
    composites = int(composites)
    held_out = tuple(held_out)
    data = load_omniglot(splits, image_size=RAW_IMAGE_SIZE if ink_box else image_size,
                         data_dir=data_dir)
    if ink_box:
        from tfmeta.data.ink_box import normalize_images

        data = dataclasses.replace(
            data, x=normalize_images(data.x, box_size=ink_box, output_size=image_size)
        )
    train, test = data.split_by_alphabet(held_out)
    characters = train.num_classes
    if composites:
        train = train.with_composites(composites, seed=seed)
    train = train.with_rotations()
    if mirrors:
        train = train.with_mirrors()
    return OmniglotSplit(
        train=train,
        held_out=test,
        test_sets={protocol: test.test_classes(protocol) for protocol in protocols},
        held_out_alphabets=held_out,
        train_characters=characters,
        image_size=image_size,
        ink_box=ink_box,
        mirrors=bool(mirrors),
        composites=composites,
    )
