"""The held-out-alphabet Omniglot split that the recipes and benchmarks share."""

import numpy as np
import pytest

from tfmeta.data.ink_box import normalize_images
from tfmeta.data.omniglot import DEFAULT_HELD_OUT_ALPHABETS, load_omniglot
from tfmeta.data.omniglot_splits import RAW_IMAGE_SIZE, load_omniglot_split


@pytest.fixture(scope="module")
def split(data_dir):
    return load_omniglot_split(data_dir=data_dir)


def test_default_split_holds_out_two_alphabets_and_rotates_the_rest(split):
    assert split.held_out_alphabets == DEFAULT_HELD_OUT_ALPHABETS == ("Balinese", "Korean")
    assert split.train_characters == 242 - 64 and split.held_out.num_classes == 24 + 40
    assert split.train.num_classes == 4 * 178 and len(split.train) == 20 * 4 * 178
    assert not set(split.train.alphabets) & set(split.held_out_alphabets)
    assert set(split.held_out.alphabets) == set(split.held_out_alphabets)
    held_out_names = set(split.held_out.class_names)
    assert not {name.split("/rot")[0] for name in split.train.class_names} & held_out_names
    assert split.train.x.shape[1:] == (28, 28, 1) and split.held_out.x.shape[1:] == (28, 28, 1)


def test_test_sets_are_each_protocols_classes_in_order(split, data_dir):
    assert split.protocols == ["characters", "rotations"]
    assert split.test_sets["characters"].num_classes == 64
    assert split.test_sets["rotations"].num_classes == 4 * 64
    arrays = split.test_arrays()
    assert list(arrays) == split.protocols
    for protocol, (x, y) in arrays.items():
        assert x is split.test_sets[protocol].x and y is split.test_sets[protocol].y
    reordered = load_omniglot_split(test_protocols="rotations,characters", data_dir=data_dir)
    assert reordered.protocols == ["rotations", "characters"]
    assert "characters 64, rotations 256" in split.summary()


def test_split_is_the_data_the_recipes_built_by_hand(split, data_dir):
    """The same arrays as loading, splitting and rotating step by step: the same training."""
    train, test = load_omniglot(("small1", "small2"), data_dir=data_dir).split_by_alphabet(
        DEFAULT_HELD_OUT_ALPHABETS)
    train = train.with_rotations()
    np.testing.assert_array_equal(split.train.x, train.x)
    np.testing.assert_array_equal(split.train.y, train.y)
    assert split.train.class_names == train.class_names
    np.testing.assert_array_equal(split.held_out.x, test.x)


def test_mirrors_and_composites_add_training_classes_only(data_dir):
    more = load_omniglot_split(mirrors=True, composites=10, seed=3, data_dir=data_dir)
    assert more.train.num_classes == 8 * (178 + 10) and more.held_out.num_classes == 64
    assert sum("+" in name for name in more.train.class_names) == 8 * 10
    assert "188" not in more.summary() and "+ 10 composites" in more.summary()
    assert more.mirrors and more.composites == 10


def test_ink_box_normalises_every_image_from_the_originals(data_dir):
    split = load_omniglot_split(40, ink_box=34, held_out=["Greek"], splits=("small1",),
                                test_protocols="characters", data_dir=data_dir)
    assert split.train.x.shape[1:] == split.held_out.x.shape[1:] == (40, 40, 1)
    greek = load_omniglot("small1", image_size=RAW_IMAGE_SIZE, data_dir=data_dir, alphabets=["Greek"])
    expected = normalize_images(greek.x[:40], box_size=34, output_size=40)
    np.testing.assert_allclose(split.held_out.x[:40], expected, atol=1e-6)
    # The box is centred: three pixels of background on every side.
    assert split.held_out.x[:, :3].max() == 0 and split.held_out.x[:, -3:].max() == 0
    assert "ink box 34" in split.summary()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ink_box=-1), "`ink_box` must be an int >= 0"),
        (dict(image_size=28, ink_box=30), "`ink_box` needs a square int `image_size`"),
        (dict(image_size=(28, 32), ink_box=24), "received ink_box=24, image_size=(28, 32)"),
        (dict(composites=-2), "`composites` must be an int >= 0; received -2"),
        (dict(test_protocols="characters,mirrors"), "`test_protocols` must name some of"),
        (dict(held_out=["Klingon"]), "`held_out` names alphabets not in the data: ['Klingon']"),
    ],
)
def test_bad_arguments_are_named(data_dir, kwargs, message):
    with pytest.raises(ValueError) as err:
        load_omniglot_split(data_dir=data_dir, **kwargs)
    assert message in str(err.value)
