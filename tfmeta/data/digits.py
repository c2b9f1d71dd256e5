"""scikit-learn's handwritten digits (8 x 8, 1,797 images): the data that ships with the install.

The quickstart, the AutoModel examples, the NAS digits search and the tests all load digits
here, with the same stratified, seeded splits.

Example:

>>> splits = load_digits_splits(test_size=0.25, seed=0)
>>> x_train, y_train = splits["train"]
>>> x_train.shape, x_train.max()
((1347, 8, 8), 16.0)
"""

from __future__ import annotations

import numpy as np


def load_digits_splits(
    test_size: float = 0.25,
    validation_size: float = 0.0,
    seed: int = 0,
    scaled: bool = False,
    channel_axis: bool = False,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded splits of scikit-learn's digits.

    Args:
        test_size: Fraction of all images held out for testing.
        validation_size: Fraction of all images held out for validation (0: no validation split).
        seed: Seed of the splits.
        scaled: Pixel values in [0, 1] instead of the raw 0..16.
        channel_axis: Images `[N, 8, 8, 1]` instead of `[N, 8, 8]`.

    Returns:
        `{"train": (x, y), "test": (x, y)}`, with `"validation"` when `validation_size > 0`;
        `x` float32 images, `y` int64 labels 0..9.

    Raises:
        ValueError: Fractions outside (0, 1) or summing to 1 or more.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"`test_size` must be in (0, 1); received {test_size!r}.")
    if not 0.0 <= validation_size < 1.0 or test_size + validation_size >= 1.0:
        raise ValueError(
            "`validation_size` must be in [0, 1) with `test_size + validation_size` < 1; received "
            f"validation_size={validation_size!r}, test_size={test_size!r}."
        )
    data = load_digits()
    x = data.images.astype(np.float32)
    if scaled:
        x = x / 16.0
    if channel_axis:
        x = x[..., None]
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    splits = {"train": (x_tr, y_tr), "test": (x_te, y_te)}
    if validation_size > 0:
        fraction = validation_size / (1.0 - test_size)
        x_tr, x_va, y_tr, y_va = train_test_split(
            x_tr, y_tr, test_size=fraction, random_state=seed, stratify=y_tr
        )
        splits.update(train=(x_tr, y_tr), validation=(x_va, y_va))
    return splits
