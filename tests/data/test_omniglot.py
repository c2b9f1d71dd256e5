"""Omniglot loading from the shared zips, extracted folders and tensorflow-datasets."""

import hashlib
import io
import zipfile
from unittest import mock

import numpy as np
import pytest

from tfmeta.data.omniglot import (
    DEFAULT_HELD_OUT_ALPHABETS,
    TEST_PROTOCOLS,
    from_tfds_examples,
    load_omniglot,
    load_omniglot_tfds,
)


@pytest.fixture(scope="module")
def omniglot(data_dir):
    return load_omniglot(("small1", "small2"), data_dir=data_dir, source="files")


def test_both_background_sets_load_without_duplicates(omniglot):
    # small1: 136 characters, small2: 156; Greek (24) and Latin (26) are in both.
    assert omniglot.num_classes == 136 + 156 - 24 - 26
    assert omniglot.x.shape == (20 * omniglot.num_classes, 28, 28, 1)
    assert omniglot.x.dtype == np.float32
    assert np.bincount(omniglot.y).tolist() == [20] * omniglot.num_classes
    assert sorted(set(omniglot.drawers.tolist())) == list(range(1, 21))


def test_images_have_ink_as_one_on_zero_background(omniglot):
    x = omniglot.x
    assert x.min() == 0.0 and x.max() == 1.0
    # Strokes cover a small part of each image; the border is background.
    assert 0.02 < x.mean() < 0.2
    assert x[:, 0, :, :].mean() < 0.01


def test_image_size_is_configurable(data_dir):
    data = load_omniglot("small1", image_size=(20, 24), data_dir=data_dir, alphabets=["Greek"])
    assert data.x.shape == (24 * 20, 20, 24, 1)
    assert set(data.alphabets) == {"Greek"}


def test_split_by_alphabet_holds_out_whole_alphabets(omniglot):
    train, test = omniglot.split_by_alphabet(DEFAULT_HELD_OUT_ALPHABETS)
    assert set(test.alphabets) == set(DEFAULT_HELD_OUT_ALPHABETS)
    assert not set(train.alphabets) & set(DEFAULT_HELD_OUT_ALPHABETS)
    assert train.num_classes + test.num_classes == omniglot.num_classes
    assert test.num_classes == 24 + 40
    assert test.y.max() == test.num_classes - 1
    with pytest.raises(ValueError, match="Klingon"):
        omniglot.split_by_alphabet(["Klingon"])


def test_rotations_are_new_classes(omniglot):
    _, test = omniglot.split_by_alphabet()
    rotated = test.with_rotations()
    c = test.num_classes
    assert rotated.num_classes == 4 * c
    i = int(np.flatnonzero(test.y == 3)[0])
    j = int(np.flatnonzero(rotated.y == 3 + c)[0])  # first image of class 3 rotated by 90
    np.testing.assert_array_equal(rotated.x[j], np.rot90(test.x[i], 1, axes=(0, 1)))
    assert rotated.class_names[3 + c].endswith("/rot90")


def test_test_protocols_give_the_characters_or_their_rotations(omniglot):
    train, test = omniglot.split_by_alphabet()
    assert TEST_PROTOCOLS == ("characters", "rotations")
    assert test.test_classes() is test and test.test_classes("characters") is test
    rotated = test.test_classes("rotations")
    assert rotated.num_classes == 4 * test.num_classes == 256
    assert np.bincount(rotated.y).tolist() == [20] * 256
    np.testing.assert_array_equal(rotated.x, test.with_rotations().x)
    # Still only held-out characters: no training class appears under either protocol.
    assert {n.split("/rot")[0] for n in rotated.class_names} == set(test.class_names)
    assert not {n.split("/rot")[0] for n in rotated.class_names} & set(train.class_names)
    with pytest.raises(ValueError, match=r"`protocol` must be one of \['characters', 'rotations'\]; received 'rotated'"):
        test.test_classes("rotated")


def test_mirrors_are_new_classes_and_complete_the_symmetries(omniglot):
    _, test = omniglot.split_by_alphabet()
    c = test.num_classes
    both = test.with_rotations().with_mirrors()
    assert both.num_classes == 8 * c
    assert np.bincount(both.y).tolist() == [20] * (8 * c)
    i = int(np.flatnonzero(test.y == 3)[0])
    j = int(np.flatnonzero(both.y == 3 + c + 4 * c)[0])  # class 3 rotated by 90, mirrored
    np.testing.assert_array_equal(both.x[j], np.rot90(test.x[i], 1, axes=(0, 1))[:, ::-1])
    assert both.class_names[3 + 5 * c].endswith("/rot90/mirror")
    assert both.alphabets[3 + 5 * c] == test.alphabets[3]
    # The 8 images of one drawing are pairwise different (no symmetry class is a duplicate).
    views = both.x[[int(np.flatnonzero(both.y == 3 + k * c)[0]) for k in range(8)]]
    assert len({v.tobytes() for v in views}) == 8


def test_composites_overlay_two_characters_drawer_by_drawer(omniglot):
    _, test = omniglot.split_by_alphabet()
    c = test.num_classes
    both = test.with_composites(10, seed=3)
    assert both.num_classes == c + 10 and len(both.alphabets) == c + 10
    assert np.bincount(both.y).tolist() == [20] * (c + 10)
    np.testing.assert_array_equal(both.x[: len(test)], test.x)  # the originals come first
    pairs = set()
    for k in range(10):
        name = both.class_names[c + k]
        first, second = name.split("+")
        a = test.class_names.index(first)
        b = test.class_names.index(f"{first.split('/')[0]}/{second}")
        assert test.alphabets[a] == test.alphabets[b] == both.alphabets[c + k]
        pairs.add((a, b))
        new = np.flatnonzero(both.y == c + k)
        for i in new[[0, 7, 19]]:
            d = both.drawers[i]
            ia = np.flatnonzero((test.y == a) & (test.drawers == d))[0]
            ib = np.flatnonzero((test.y == b) & (test.drawers == d))[0]
            np.testing.assert_array_equal(both.x[i], np.maximum(test.x[ia], test.x[ib]))
    assert len(pairs) == 10  # distinct pairs
    # Seeded; composites rotate with the rest when added before the rotations.
    again = test.with_composites(10, seed=3)
    assert again.class_names == both.class_names
    assert both.with_rotations().num_classes == 4 * (c + 10)


def test_composites_count_error_names_the_limit(omniglot):
    _, test = omniglot.split_by_alphabet()  # Balinese (24) + Korean (40) characters
    limit = 24 * 23 // 2 + 40 * 39 // 2
    with pytest.raises(ValueError, match=rf"`count` must be in \[0, {limit}\].*received {limit + 1}"):
        test.with_composites(limit + 1)


def test_extracted_folder_gives_the_same_data(tmp_path, data_dir):
    with zipfile.ZipFile(data_dir / "omniglot" / "images_background_small1.zip") as zf:
        zf.extractall(tmp_path / "omniglot")
    from_folder = load_omniglot("small1", data_dir=tmp_path, source="files", alphabets=["Latin"])
    from_zip = load_omniglot("small1", data_dir=data_dir, source="files", alphabets=["Latin"])
    np.testing.assert_array_equal(from_folder.x, from_zip.x)
    assert from_folder.class_names == from_zip.class_names


def test_missing_files_error_names_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="images_background_small1"):
        load_omniglot("small1", data_dir=tmp_path, source="files")


def test_tfds_examples_convert_like_the_zips(omniglot):
    # tensorflow-datasets gives uint8 RGB images with black ink on white.
    ink = (omniglot.x[:40, :, :, 0] > 0.5)
    images = np.where(ink[..., None], 0, 255).astype(np.uint8).repeat(3, -1)
    examples = [
        {"image": images[i], "alphabet": 1, "alphabet_char_id": int(omniglot.y[i]), "label": 0}
        for i in range(40)
    ]
    data = from_tfds_examples(examples, ["A", "Greek"], image_size=28)
    assert data.num_classes == 2 and data.alphabets == ["Greek", "Greek"]
    np.testing.assert_array_equal(data.x[..., 0] > 0.5, ink)


def test_tfds_omniglot_builder_is_usable_offline(tmp_path):
    """The tensorflow-datasets path (`source="tfds"`) gets as far as the download: building the
    builder and reading its features need no network (tfds 4.9.10 needs importlib_resources)."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("omniglot", data_dir=str(tmp_path))
    features = builder.info.features
    assert features["alphabet"].num_classes == 50
    assert {"image", "alphabet", "alphabet_char_id", "label"} <= set(features.keys())


# --- The tensorflow-datasets path on the real images, without the network -------------------
#
# tfds's `omniglot` builder downloads four zips: the two small background sets, which the shared
# data holds (the same bytes as tfds's registered checksums), and the full background and
# evaluation sets, which it does not. Its split generation reads all four, and needs their
# characters only to name 50 alphabets and 1,623 characters. The test's download manager hands
# tfds's own extractor the shared zips, and stands in for the full sets with one blank drawing
# of every character the small sets lack; everything after the download is tfds's own code.

TFDS_FULL_SETS = {"images_background.zip": range(1, 965), "images_evaluation.zip": range(965, 1624)}


def _stand_in_full_sets(root, small_zips):
    """`{zip name: folder}`: one blank drawing of each character `small_zips` lack, laid out
    as the full sets are, in stand-in alphabets (30 background and 20 evaluation alphabets)."""
    from PIL import Image

    alphabets, characters = set(), set()
    for path in small_zips:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if name.endswith(".png"):  # <set>/<Alphabet>/<characterNN>/<id>_<drawer>.png
                    parts = name.split("/")
                    alphabets.add(parts[-3])
                    characters.add(int(parts[-1].split("_")[0]))
    blank = io.BytesIO()
    Image.new("1", (105, 105), 1).save(blank, format="PNG")
    folders = {}
    for zip_name, ids in TFDS_FULL_SETS.items():
        stem = zip_name[: -len(".zip")]
        count = 30 - len(alphabets) if stem == "images_background" else 20
        missing = [i for i in ids if i not in characters]
        for k, character in enumerate(missing):
            folder = root / stem / stem / f"Stand_in_{stem[7:]}_{k % count:02d}" / f"character{k // count + 1:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{character:04d}_01.png").write_bytes(blank.getvalue())
        folders[zip_name] = root / stem
    return folders


@pytest.fixture(scope="module")
def tfds_data_dir(data_dir, tmp_path_factory):
    """A tfds data dir with `omniglot` prepared from the shared zips, no network involved."""
    import tensorflow_datasets as tfds

    root = tmp_path_factory.mktemp("tfds_omniglot")
    shared = data_dir / "omniglot"
    small = {name: shared / name for name in ("images_background_small1.zip", "images_background_small2.zip")}
    registered = {url.rsplit("/", 1)[-1]: info for url, info in tfds.builder_cls("omniglot").url_infos.items()}
    for name, path in small.items():  # the shared zips are the files tfds downloads
        assert hashlib.sha256(path.read_bytes()).hexdigest() == registered[name].checksum
    stand_ins = _stand_in_full_sets(root / "stand_ins", small.values())

    def download_and_extract(self, urls):
        def one(url):
            name = url.rsplit("/", 1)[-1]
            return self.extract(small[name]) if name in small else stand_ins[name]

        return {key: one(url) for key, url in urls.items()}

    def no_download(self, *args, **kwargs):
        raise AssertionError(f"tfds tried to download {args}")

    with mock.patch.object(tfds.download.DownloadManager, "download_and_extract", download_and_extract), \
            mock.patch.object(tfds.download.DownloadManager, "download", no_download):
        tfds.builder("omniglot", data_dir=str(root / "tfds")).download_and_prepare()
    return root / "tfds"


def _images_by_class(data):
    """`{class name: sorted image bytes}`: the drawings of each class, whatever their order."""
    return {name: sorted(x.tobytes() for x in data.x[data.y == c]) for c, name in enumerate(data.class_names)}


@pytest.mark.parametrize("split", ["small1", "small2"])
def test_tfds_path_gives_the_images_and_labels_of_the_zips(tfds_data_dir, data_dir, monkeypatch, split):
    import tensorflow_datasets as tfds

    # `source="tfds"` uses tfds's default data dir, which tfds reads from TFDS_DATA_DIR at import.
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tfds_data_dir))
    from_tfds = load_omniglot(split, source="tfds")
    from_zip = load_omniglot(split, data_dir=data_dir, source="files")
    assert from_tfds.class_names == from_zip.class_names
    assert from_tfds.alphabets == from_zip.alphabets
    assert from_tfds.x.shape == from_zip.x.shape and from_tfds.x.dtype == np.float32
    assert np.bincount(from_tfds.y).tolist() == [20] * from_zip.num_classes
    assert _images_by_class(from_tfds) == _images_by_class(from_zip)
    # The explicit data dir and the image size reach tfds the same way.
    greek = load_omniglot_tfds([split], image_size=40, data_dir=tfds_data_dir, alphabets=["Greek"])
    zip_greek = load_omniglot(split, image_size=40, data_dir=data_dir, source="files", alphabets=["Greek"])
    assert greek.x.shape == (24 * 20, 40, 40, 1) and set(greek.alphabets) == {"Greek"}
    assert _images_by_class(greek) == _images_by_class(zip_greek)


def test_tfds_path_loads_a_character_of_two_splits_once(tfds_data_dir, omniglot):
    both = load_omniglot_tfds(("small1", "small2"), data_dir=tfds_data_dir)
    assert both.class_names == omniglot.class_names
    assert np.bincount(both.y).tolist() == [20] * omniglot.num_classes
